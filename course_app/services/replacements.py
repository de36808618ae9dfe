"""Replacing a lesson's video file in place.

A new file for an existing video travels in a ``VideoReplacement`` row, never a
second video: the lesson (its id, title, position, chapter) keeps its old file, and
keeps playing it, until the new one is stored, verified, probed and thumbnailed.

    begin (row: uploading) ──▶ finish_upload (processing: verifying ──▶ probing ──▶ thumbnail)
                                     │                                              │
                                     ▼                                              ▼
                   failed (shown on the lesson: Retry / Dismiss)     swap: one transaction

Order of effects, so that a crash at any step leaves something the sweep, the
reaper or ``course-app check-videos`` finishes (services/reconcile.py knows these rows):
- the row is written before a byte of the new file is stored, under a new key
  (``videos/{owner}/{replacement id}``: the old object is never overwritten);
- ``swap`` moves the new file's columns onto the video, deletes the row and queues
  the old object's deletion (with its thumbnails, stored beside it) in the outbox,
  all in one transaction: before it commits the lesson is exactly as it was, after
  it the outbox finishes the old object's removal whatever happens next;
- a failed or abandoned replacement keeps the lesson untouched; dismissing it
  removes the row and queues its objects' deletion together.
Deleting the video (purge, course deletion) takes its replacement with it
(``outbox.remove_video_row``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from sqlmodel import Session, select

from course_app.errors import Conflict, NotFound
from course_app.models import StorageDeletion, User, Video, VideoReplacement, VideoStatus, utcnow
from course_app.services import processing
from course_app.services.live import course_changed
from course_app.services.ordering import current, lock_course
from course_app.services.outbox import enqueue_storage_deletion
from course_app.settings import get_settings
from course_app.storage.base import StoredObject, video_key

# What the swap copies from the replacement onto the video: the file and what processing found.
FILE_COLUMNS = (
    "storage_key", "backblaze_file_id", "filename", "size_bytes", "sha1", "fingerprint", "content_type",
    "duration_seconds", "width", "height", "video_codec", "audio_codec", "bitrate",
    "thumbnail_small_key", "thumbnail_large_key",
)
IN_PROGRESS = (VideoStatus.UPLOADING, VideoStatus.PROCESSING)
REPLACEABLE = (VideoStatus.READY, VideoStatus.FAILED)
STAGE_WORDS = {"verifying": "verifying", "probing": "reading the video", "thumbnail": "making the thumbnail"}


def of_video(session: Session, video_id: uuid.UUID) -> VideoReplacement | None:
    return session.exec(select(VideoReplacement).where(VideoReplacement.video_id == video_id)).first()


def of_videos(*, session: Session, video_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, VideoReplacement]:
    """The pending replacements of these videos, by video id (one query)."""
    ids = list(video_ids)
    if not ids:
        return {}
    return {r.video_id: r for r in session.exec(select(VideoReplacement).where(VideoReplacement.video_id.in_(ids)))}


def describe(replacement: VideoReplacement | None) -> str:
    """What the lesson's row says about its replacement ("" when there is none)."""
    if replacement is None:
        return ""
    if replacement.status == VideoStatus.FAILED:
        return f"Replacement failed: {replacement.error or 'the new file could not be used.'}"
    if replacement.status == VideoStatus.UPLOADING:
        return f"Replacing with {replacement.filename}: uploading…"
    return f"Replacing with {replacement.filename}: {STAGE_WORDS.get(replacement.stage or '', 'processing')}…"


def _owned(session: Session, user: User, video_id: object) -> Video:
    from course_app.services.videos import owned_video

    return owned_video(session=session, user=user, video_id=video_id)


def _forget(session: Session, replacement: VideoReplacement, reason: str) -> list[StorageDeletion]:
    """Remove the row and queue its objects' deletion (the new file and, stored
    beside it, its thumbnails), in the caller's transaction."""
    pending = enqueue_storage_deletion(session=session, storage_key=replacement.storage_key,
                                       file_id=replacement.backblaze_file_id, reason=reason)
    session.delete(replacement)
    session.flush()
    return [pending]


def remove_of_video(*, session: Session, video_id: uuid.UUID, reason: str) -> list[StorageDeletion]:
    """The video is going: its replacement, if any, goes with it through the outbox."""
    replacement = of_video(session, video_id)
    return _forget(session, replacement, reason) if replacement is not None else []


# Begin, finish, fail (the upload's half) -------------------------------------------------


def begin(*, session: Session, user: User, video_id: object, filename: str, content_type: str,
          fingerprint: str | None) -> VideoReplacement:
    """Write the replacement row (``uploading``) before any byte is stored. A video
    still uploading or processing cannot be replaced yet; a failed replacement left
    on the video is dropped (through the outbox) for the new one."""
    from course_app.services.videos import clean_filename

    video = _owned(session, user, video_id)
    lock_course(session, video.course_id, edit=False)  # not an edit: views stay valid; the pulse moves
    video = current(session, video, gone="That video was deleted in the meantime.")
    if video.status not in REPLACEABLE:
        raise Conflict(f"This video is still {video.status}; replace it once it is ready.")
    existing = of_video(session, video.id)
    if existing is not None:
        if existing.status in IN_PROGRESS:
            raise Conflict("A new file for this video is already on its way. Cancel that upload first.")
        _forget(session, existing, "replacement superseded")
    replacement_id = uuid.uuid4()
    replacement = VideoReplacement(
        id=replacement_id, video_id=video.id, course_id=video.course_id, filename=clean_filename(filename),
        storage_key=video_key(user.id, replacement_id), content_type=content_type, fingerprint=fingerprint,
        status=VideoStatus.UPLOADING,
    )
    session.add(replacement)
    session.flush()
    return replacement


def finish_upload(*, session: Session, replacement_id: uuid.UUID, stored: StoredObject) -> VideoReplacement | None:
    """The new file is stored: hand it to processing (queued when the transaction
    commits). If the row went meanwhile (the video was deleted), the file goes too."""
    replacement = session.get(VideoReplacement, replacement_id)
    if replacement is None:
        enqueue_storage_deletion(session=session, storage_key=stored.key, file_id=stored.file_id,
                                 reason="replacement dropped during upload")
        return None
    replacement.backblaze_file_id = stored.file_id
    replacement.size_bytes = stored.size
    replacement.sha1 = stored.sha1 or None
    session.add(replacement)
    session.flush()
    processing.start(session=session, video_id=replacement.id, model=VideoReplacement,
                     queue_wait=timedelta(seconds=get_settings().processing_queue_wait_seconds))
    return replacement


def fail_upload(*, session: Session, replacement_id: uuid.UUID, reason: str,
                remove_row: bool) -> StorageDeletion | None:
    """The new file's upload ended without it: remove the row (cancelled) or keep
    it as ``failed`` so the lesson shows why; whatever may be stored is cleaned up
    through the outbox either way. The video itself is not touched."""
    replacement = session.get(VideoReplacement, replacement_id)
    if replacement is None:
        return None
    try:
        course_changed(session, replacement.course_id)
    except NotFound:
        pass
    if remove_row:
        return _forget(session, replacement, "replacement upload abandoned")[0]
    replacement.status, replacement.stage = VideoStatus.FAILED, None
    replacement.error, replacement.failure_code, replacement.retryable = reason[:1000], "upload_failed", False
    replacement.updated_at = utcnow()
    session.add(replacement)
    return enqueue_storage_deletion(session=session, storage_key=replacement.storage_key, file_id=None,
                                    reason="replacement upload failed")


# The swap ------------------------------------------------------------------------------


def swap(session: Session, replacement_id: uuid.UUID, *, only_if: Iterable = (), found: dict) -> uuid.UUID | None:
    """The replacement passed its last stage: in this one transaction, the video takes
    the new file and what processing found (keeping its id, title, position and
    chapter), the replacement row goes, and the old object's deletion (with its
    thumbnails) is queued in the outbox. Returns the course id, or None when nothing
    changed (the lease was lost, or the row or its video is gone)."""
    course_id = session.scalar(select(VideoReplacement.course_id).where(VideoReplacement.id == replacement_id))
    if course_id is None:
        return None
    try:  # the course row first, like every edit (no deadlock with them); tells open editors
        course_changed(session, course_id)
    except NotFound:
        return None
    replacement = session.exec(
        select(VideoReplacement).where(VideoReplacement.id == replacement_id, *only_if)
        .execution_options(populate_existing=True)
    ).first()
    if replacement is None:
        return None
    video = session.get(Video, replacement.video_id, populate_existing=True)
    if video is None:
        return None
    for name, value in found.items():
        setattr(replacement, name, value)
    new_file = {name: getattr(replacement, name) for name in FILE_COLUMNS}
    old_file = enqueue_storage_deletion(session=session, storage_key=video.storage_key,
                                        file_id=video.backblaze_file_id, reason="video replaced")
    session.info.setdefault(processing.REPLACED_FILES, []).append(old_file.id)
    session.delete(replacement)
    session.flush()  # the new key is free for the video (storage keys are unique)
    for name, value in new_file.items():
        setattr(video, name, value)
    video.status, video.stage, video.error = VideoStatus.READY, None, None
    video.failure_code = video.retryable = None
    video.lease_owner = video.lease_expires_at = None
    video.updated_at = utcnow()
    session.add(video)
    session.flush()
    return course_id


# The owner's actions on a failed replacement ------------------------------------------------


def owned_replacement(*, session: Session, user: User, video_id: object) -> VideoReplacement:
    video = _owned(session, user, video_id)
    replacement = of_video(session, video.id)
    if replacement is None:
        raise NotFound("This video has no replacement on its way.")
    return replacement


def retry(*, session: Session, user: User, video_id: object, revision: int | None = None) -> VideoReplacement:
    """The owner's Retry of a failed replacement (editor, API)."""
    replacement = owned_replacement(session=session, user=user, video_id=video_id)
    queue_wait = timedelta(seconds=get_settings().processing_queue_wait_seconds)
    return restart_failed(session=session, replacement=replacement, queue_wait=queue_wait)


def restart_failed(*, session: Session, replacement: VideoReplacement, queue_wait: timedelta,
                   force: bool = False) -> VideoReplacement:
    """Run a failed replacement's processing again from the stage it failed in."""
    if replacement.status == VideoStatus.FAILED and replacement.stage is None:
        raise Conflict("The new file never finished uploading: choose Replace file again.")
    return processing.restart_failed(session=session, video=replacement, queue_wait=queue_wait, force=force)


def restart_failed_of(*, session: Session, row_id: uuid.UUID, queue_wait: timedelta,
                      force: bool = False) -> Video | VideoReplacement:
    """What ``course-app retry-video ID`` runs again. A video's id: its replacement
    when that failed (the new file is what the lesson's row shows as failed and
    waits for), else the video itself. A replacement's id: that replacement."""
    video = session.get(Video, row_id)
    replacement = of_video(session, row_id) if video is not None else session.get(VideoReplacement, row_id)
    if replacement is not None and (video is None or replacement.status == VideoStatus.FAILED):
        return restart_failed(session=session, replacement=replacement, queue_wait=queue_wait, force=force)
    if video is None:
        raise NotFound(f"No video {row_id}.")
    return processing.restart_failed(session=session, video=video, queue_wait=queue_wait, force=force)


def dismiss(*, session: Session, user: User, video_id: object, revision: int | None = None) -> list[int]:
    """Drop a failed replacement: the lesson stays as it is; the new file's objects
    go through the outbox (their ids are returned, to carry out at once)."""
    replacement = owned_replacement(session=session, user=user, video_id=video_id)
    if replacement.status != VideoStatus.FAILED:
        raise Conflict("Only a failed replacement can be dismissed; cancel its upload instead.")
    lock_course(session, replacement.course_id, edit=False)
    replacement = session.get(VideoReplacement, replacement.id, populate_existing=True)
    if replacement is None:
        return []
    return [p.id for p in _forget(session, replacement, "replacement dismissed")]
