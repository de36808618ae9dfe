"""Videos: their rows, order and chapter, and the database half of an upload
(``begin_upload``, ``finish_upload``, ``fail_upload``; the bytes travel in
uploads.py and upload_sessions.py). Deleting a video moves it to the course
trash (trash.py); only live rows (``deleted_at IS NULL``) are shown or ordered here.

A row and its stored file change together or leave a record that a retry
finishes: removing a row writes its pending storage deletion in the same
transaction (outbox.py), which is carried out afterwards and retried until
storage confirms.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import timedelta
from pathlib import PurePath

from sqlmodel import Session, func, select

from course_app.errors import Conflict, InvalidInput, NotFound, TooLarge
from course_app.models import TITLE_MAX, Chapter, StorageDeletion, User, Video, utcnow
from course_app.services.courses import MAX_BATCH, owned_chapter, owned_course
from course_app.services.ordering import (
    current, in_requested_order, lock_course, parse_id_list, renumber,
)
from course_app.services import live, processing
from course_app.services.outbox import enqueue_storage_deletion, remove_video_row
from course_app.services.validation import clean_text, parse_uuid
from course_app.settings import get_settings
from course_app.storage.base import StoredObject, video_key


FILENAME_MAX = 255
MAX_VIDEOS_PER_CHAPTER = 1000


# Lookups ---------------------------------------------------------------------


def owned_video(*, session: Session, user: User, video_id: object) -> Video:
    video = session.get(Video, parse_uuid(video_id, what="video"))
    if video is None:
        raise NotFound("That video does not exist.")
    owned_course(session=session, user=user, course_id=video.course_id)
    if video.deleted_at is not None:
        raise NotFound("That video is in the course's trash; restore it first.")
    return video


def chapter_videos(*, session: Session, chapter_id: uuid.UUID) -> list[Video]:
    """The chapter's live videos as stored now (rows already in the session are refreshed)."""
    return list(
        session.exec(
            select(Video)
            .where(Video.chapter_id == chapter_id, Video.deleted_at.is_(None))  # type: ignore[union-attr]
            .order_by(Video.position)
            .execution_options(populate_existing=True)
        )
    )


def course_videos(*, session: Session, course_id: uuid.UUID) -> list[Video]:
    """Every live video of a course, in chapter order then video order."""
    return list(
        session.exec(
            select(Video)
            .join(Chapter, Chapter.id == Video.chapter_id)
            .where(Video.course_id == course_id, Video.deleted_at.is_(None))  # type: ignore[union-attr]
            .order_by(Chapter.position, Video.position)
        )
    )


def stream_url(video_id: uuid.UUID) -> str:
    """Where a ready video plays (the API's ``video_url``); derived, never stored."""
    return f"/api/videos/{video_id}/stream"


def thumbnail_urls(video: Video) -> dict[str, str]:
    """The thumbnails' URLs, versioned by their immutable keys (a new key, a new URL)."""
    keys = {"small": video.thumbnail_small_key, "large": video.thumbnail_large_key}
    return {size: f"/api/videos/{video.id}/thumbnail/{size}?v={key.rsplit('.thumb-', 1)[-1].split('-')[0]}"
            for size, key in keys.items() if key}


# Order -----------------------------------------------------------------------
# Every function here takes the course's write lock (ordering.lock_course) before
# it reads a position; rows loaded for the ownership check are reloaded after it.

CHAPTER_FULL = f"A chapter holds at most {MAX_VIDEOS_PER_CHAPTER} videos."


def next_position(session: Session, chapter_id: uuid.UUID) -> int:
    """The position after the chapter's last live video. Call with the course lock held."""
    count, top = session.exec(
        select(func.count(Video.id), func.max(Video.position))
        .where(Video.chapter_id == chapter_id, Video.deleted_at.is_(None))  # type: ignore[union-attr]
    ).one()
    if count >= MAX_VIDEOS_PER_CHAPTER:
        raise Conflict(CHAPTER_FULL)
    return (top + 1) if top is not None else 0


def _place(session: Session, moving: list[Video], target: Chapter, before: uuid.UUID | int | None) -> None:
    """Put ``moving`` (in that order) into ``target`` before the video ``before``
    (an id), at index ``before`` (an int), or at the end; renumber every chapter
    they leave and the target, gap-free. Call with the course lock held."""
    moving_ids = {v.id for v in moving}
    sources = {v.chapter_id for v in moving} - {target.id}
    stay = [v for v in chapter_videos(session=session, chapter_id=target.id) if v.id not in moving_ids]
    if isinstance(before, uuid.UUID):
        index = next((i for i, v in enumerate(stay) if v.id == before), None)
        if index is None:
            raise InvalidInput("Videos can only be placed before another video of the target chapter.")
    else:
        index = len(stay) if before is None else min(before, len(stay))
    if len(stay) + len(moving) > MAX_VIDEOS_PER_CHAPTER:
        raise Conflict(CHAPTER_FULL)
    # Park the moving rows below any position renumber uses (-1..-n), then renumber.
    for offset, video in enumerate(moving):
        video.chapter_id = target.id
        video.position = -(MAX_VIDEOS_PER_CHAPTER + 1 + offset)
        session.add(video)
    session.flush()
    for chapter_id in sorted(sources):
        renumber(session, chapter_videos(session=session, chapter_id=chapter_id))
    renumber(session, stay[:index] + moving + stay[index:])


def rename_video(*, session: Session, user: User, video_id: object, title: object, revision: int | None = None) -> Video:
    video = owned_video(session=session, user=user, video_id=video_id)
    title = clean_text(title, field="Video title", max_length=TITLE_MAX)
    lock_course(session, video.course_id, revision=revision)
    video = current(session, video, gone="That video was deleted in the meantime.")
    video.title = title
    video.updated_at = utcnow()
    session.add(video)
    session.flush()
    return video


def reorder_videos(
    *, session: Session, user: User, chapter_id: object, video_ids: object, revision: int | None = None
) -> list[Video]:
    chapter = owned_chapter(session=session, user=user, chapter_id=chapter_id)
    lock_course(session, chapter.course_id, revision=revision)
    current(session, chapter, gone="That chapter was deleted in the meantime.")
    ordered = in_requested_order(
        chapter_videos(session=session, chapter_id=chapter.id), video_ids, what="video", parent="chapter",
        limit=MAX_VIDEOS_PER_CHAPTER,
    )
    renumber(session, ordered)
    return ordered


def move_video(
    *, session: Session, user: User, video_id: object, chapter_id: object, position: object = None,
    revision: int | None = None,
) -> Video:
    """Move a video within its chapter or to another chapter of the same course
    (at index ``position`` among the target's other videos, default last)."""
    video = owned_video(session=session, user=user, video_id=video_id)
    target = owned_chapter(session=session, user=user, chapter_id=chapter_id, course_id=video.course_id)
    if position is not None and (not isinstance(position, int) or isinstance(position, bool) or position < 0):
        raise InvalidInput("The position must be a whole number from 0.")
    lock_course(session, video.course_id, revision=revision)
    current(session, video, gone="That video was deleted in the meantime.")
    current(session, target, gone="That chapter was deleted in the meantime.")
    _place(session, [video], target, position)
    return video


def move_videos(
    *, session: Session, user: User, video_ids: object, chapter_id: object, before_id: object = None,
    revision: int | None = None,
) -> list[Video]:
    """Move videos (from any chapters of the target's course) into ``chapter_id``,
    in the listed order, before the video ``before_id`` (one of the target's that is
    not itself moving) or at the end. One transaction: all of it or nothing.
    Also a single move within a chapter: a one-id list and the row to land before."""
    ids = parse_id_list(video_ids, what="video", limit=MAX_BATCH)
    before = None if before_id is None else parse_uuid(before_id, what="video")
    if before in ids:
        raise InvalidInput("A video cannot be placed before itself.")
    target = owned_chapter(session=session, user=user, chapter_id=chapter_id)
    found = owned_videos(session=session, user=user, ids=ids, course_id=target.course_id)
    lock_course(session, target.course_id, revision=revision)
    current(session, target, gone="That chapter was deleted in the meantime.")
    moving = [current(session, found[i], gone="A video was deleted in the meantime.") for i in ids]
    _place(session, moving, target, before)
    return moving


def owned_videos(
    *, session: Session, user: User, ids: list[uuid.UUID], course_id: uuid.UUID | None
) -> dict[uuid.UUID, Video]:
    """The live videos by id, one query; each must exist, be the user's, and belong
    to ``course_id`` (or, when None, all to one course)."""
    found = {v.id: v for v in session.exec(
        select(Video).where(Video.id.in_(ids), Video.deleted_at.is_(None)))}  # type: ignore[attr-defined,union-attr]
    if len(found) != len(ids):
        raise NotFound("That video does not exist.")
    course_ids = {v.course_id for v in found.values()}
    for other in sorted(course_ids):
        owned_course(session=session, user=user, course_id=other)
    if len(course_ids | ({course_id} if course_id is not None else set())) != 1:
        raise InvalidInput("The videos must all be part of one course.")
    return found


# Uploads (the database half; the bytes half is services/uploads.py) ------------------


def clean_filename(filename: object) -> str:
    """Keep the original file name as data only: no control characters, no path."""
    if not isinstance(filename, str):
        return "video"
    name = "".join(ch for ch in filename if unicodedata.category(ch)[0] != "C")
    name = PurePath(name.replace("\\", "/")).name.strip()
    if name in ("", ".", ".."):  # PurePath("..").name is ".."; a path token is no name
        name = "video"
    return name[:FILENAME_MAX]


def title_from_filename(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return (stem.replace("_", " ").strip() or "Untitled video")[:TITLE_MAX]


def begin_upload(
    *,
    session: Session,
    user: User,
    course_id: object,
    chapter_id: object,
    filename: object,
    title: object = None,
    content_type: str,
    declared_size: int | None,
    max_bytes: int,
    fingerprint: str | None = None,
) -> Video:
    """Write the row first (status ``uploading``), before any byte is stored."""
    chapter = owned_chapter(session=session, user=user, chapter_id=chapter_id, course_id=course_id)
    if declared_size is not None and declared_size > max_bytes:
        raise TooLarge(f"The file is larger than the {format_size(max_bytes)} limit.")
    name = clean_filename(filename)
    if title is None or (isinstance(title, str) and not title.strip()):
        title = title_from_filename(name)
    title = clean_text(title, field="Video title", max_length=TITLE_MAX)
    lock_course(session, chapter.course_id, edit=False)  # a new row is not an edit: views stay valid
    current(session, chapter, gone="That chapter was deleted in the meantime.")
    video_id = uuid.uuid4()
    video = Video(
        id=video_id,
        course_id=chapter.course_id,
        chapter_id=chapter.id,
        title=title,
        filename=name,
        storage_key=video_key(user.id, video_id),
        content_type=content_type,
        status="uploading",
        position=next_position(session, chapter.id),
        fingerprint=fingerprint,
    )
    session.add(video)
    session.flush()
    return video


def finish_upload(*, session: Session, video_id: uuid.UUID, stored: StoredObject) -> Video | None:
    """Once storage has confirmed size and SHA1, record them and hand the video to
    processing (its job is queued when the transaction commits). If the row was
    deleted while the bytes travelled, the stored file goes to the outbox."""
    video = session.get(Video, video_id)
    if video is None:
        enqueue_storage_deletion(
            session=session, storage_key=stored.key, file_id=stored.file_id, reason="video deleted during upload"
        )
        return None
    video.backblaze_file_id = stored.file_id
    video.size_bytes = stored.size
    video.sha1 = stored.sha1 or None  # unknown (a B2 large file without a declared SHA1), not ""
    session.add(video)
    session.flush()
    processing.start(session=session, video_id=video.id,
                     queue_wait=timedelta(seconds=get_settings().processing_queue_wait_seconds))
    return video


def fail_upload(*, session: Session, video_id: uuid.UUID, reason: str, remove_row: bool) -> StorageDeletion | None:
    """An upload ended without its bytes: remove the row (refused input) or keep
    it as ``failed`` with a reason the instructor sees (storage trouble). Returns
    the outbox row that cleans up whatever may be stored under its key."""
    video = session.get(Video, video_id)
    if video is None:
        return None
    if remove_row:
        try:
            lock_course(session, video.course_id, edit=False)
        except NotFound:  # the course, and so the row, was deleted meanwhile
            return None
        video = session.get(Video, video_id, populate_existing=True)
        if video is None:  # deleted meanwhile, by itself or with its chapter
            return None
        chapter_id = video.chapter_id
        pending = remove_video_row(session=session, video=video, reason="upload abandoned")
        renumber(session, chapter_videos(session=session, chapter_id=chapter_id))
        return pending
    video.status = "failed"
    video.error = reason[:1000]
    video.updated_at = utcnow()
    session.add(video)
    try:
        live.course_changed(session, video.course_id)
    except NotFound:  # the course went meanwhile; the outbox still cleans up
        pass
    # Nothing usable is stored, but a partial object may be: clean it through the outbox.
    return enqueue_storage_deletion(session=session, storage_key=video.storage_key, file_id=None, reason="upload failed")


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"



def videos_by_chapter(*, session: Session, user: User, course_id: object) -> dict[uuid.UUID, list[Video]]:
    """The course's videos grouped by chapter, each list in order (owner only)."""
    course = owned_course(session=session, user=user, course_id=course_id)
    grouped: dict[uuid.UUID, list[Video]] = {}
    for video in course_videos(session=session, course_id=course.id):
        grouped.setdefault(video.chapter_id, []).append(video)
    return grouped
