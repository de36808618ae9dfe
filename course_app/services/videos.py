"""Videos: their rows, order, chapter, and the storage deletion outbox.

A row and its stored file change together or leave a record that a retry
finishes: removing a row writes its pending storage deletion in the same
transaction; the deletion is carried out afterwards and retried until storage
confirms (``process_pending_deletions``).
"""

from __future__ import annotations

import unicodedata
import uuid
from pathlib import PurePath

from sqlmodel import Session, func, select

from course_app.errors import Conflict, InvalidInput, NotFound, TooLarge
from course_app.models import TITLE_MAX, Chapter, StorageDeletion, User, Video, utcnow
from course_app.services.courses import owned_chapter, owned_course
from course_app.services.ordering import in_requested_order, renumber
from course_app.services.outbox import enqueue_storage_deletion, remove_video_row
from course_app.services.validation import clean_text, parse_uuid
from course_app.storage.base import StoredObject, video_key


FILENAME_MAX = 255
MAX_VIDEOS_PER_CHAPTER = 1000


# Lookups ---------------------------------------------------------------------


def owned_video(*, session: Session, user: User, video_id: object) -> Video:
    video = session.get(Video, parse_uuid(video_id, what="video"))
    if video is None:
        raise NotFound("That video does not exist.")
    owned_course(session=session, user=user, course_id=video.course_id)
    return video


def chapter_videos(*, session: Session, chapter_id: uuid.UUID) -> list[Video]:
    return list(session.exec(select(Video).where(Video.chapter_id == chapter_id).order_by(Video.position)))


def course_videos(*, session: Session, course_id: uuid.UUID) -> list[Video]:
    """Every video of a course, in chapter order then video order."""
    return list(
        session.exec(
            select(Video)
            .join(Chapter, Chapter.id == Video.chapter_id)
            .where(Video.course_id == course_id)
            .order_by(Chapter.position, Video.position)
        )
    )


def stream_url(video_id: uuid.UUID) -> str:
    return f"/api/videos/{video_id}/stream"


# Order -----------------------------------------------------------------------


def _next_position(session: Session, chapter_id: uuid.UUID) -> int:
    count, top = session.exec(
        select(func.count(Video.id), func.max(Video.position)).where(Video.chapter_id == chapter_id)
    ).one()
    if count >= MAX_VIDEOS_PER_CHAPTER:
        raise Conflict(f"A chapter holds at most {MAX_VIDEOS_PER_CHAPTER} videos.")
    return (top + 1) if top is not None else 0


def rename_video(*, session: Session, user: User, video_id: object, title: object) -> Video:
    video = owned_video(session=session, user=user, video_id=video_id)
    video.title = clean_text(title, field="Video title", max_length=TITLE_MAX)
    video.updated_at = utcnow()
    session.add(video)
    session.flush()
    return video


def reorder_videos(*, session: Session, user: User, chapter_id: object, video_ids: object) -> list[Video]:
    chapter = owned_chapter(session=session, user=user, chapter_id=chapter_id)
    ordered = in_requested_order(
        chapter_videos(session=session, chapter_id=chapter.id), video_ids, what="video", parent="chapter",
        limit=MAX_VIDEOS_PER_CHAPTER,
    )
    renumber(session, ordered)
    return ordered


def move_video(*, session: Session, user: User, video_id: object, chapter_id: object, position: object = None) -> Video:
    """Move a video to another chapter of the same course (at ``position``, default last)."""
    video = owned_video(session=session, user=user, video_id=video_id)
    target = owned_chapter(session=session, user=user, chapter_id=chapter_id, course_id=video.course_id)
    if position is not None and (not isinstance(position, int) or isinstance(position, bool) or position < 0):
        raise InvalidInput("The position must be a whole number from 0.")
    source_id = video.chapter_id
    if target.id == source_id:
        siblings = [v for v in chapter_videos(session=session, chapter_id=source_id) if v.id != video.id]
        siblings.insert(min(position if position is not None else len(siblings), len(siblings)), video)
        renumber(session, siblings)
        return video
    # Park the video outside both chapters' positions, then renumber both.
    video.position = -(MAX_VIDEOS_PER_CHAPTER + 1)
    video.chapter_id = target.id
    session.add(video)
    session.flush()
    renumber(session, chapter_videos(session=session, chapter_id=source_id))
    others = [v for v in chapter_videos(session=session, chapter_id=target.id) if v.id != video.id]
    others.insert(min(position if position is not None else len(others), len(others)), video)
    renumber(session, others)
    return video


# Deletion (through the outbox) ---------------------------------------------------


def delete_video(*, session: Session, user: User, video_id: object) -> StorageDeletion:
    video = owned_video(session=session, user=user, video_id=video_id)
    chapter_id = video.chapter_id
    pending = remove_video_row(session=session, video=video, reason="video deleted")
    renumber(session, chapter_videos(session=session, chapter_id=chapter_id))
    return pending


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
) -> Video:
    """Write the row first (status ``uploading``), before any byte is stored."""
    chapter = owned_chapter(session=session, user=user, chapter_id=chapter_id, course_id=course_id)
    if declared_size is not None and declared_size > max_bytes:
        raise TooLarge(f"The file is larger than the {format_size(max_bytes)} limit.")
    name = clean_filename(filename)
    if title is None or (isinstance(title, str) and not title.strip()):
        title = title_from_filename(name)
    video_id = uuid.uuid4()
    video = Video(
        id=video_id,
        course_id=chapter.course_id,
        chapter_id=chapter.id,
        title=clean_text(title, field="Video title", max_length=TITLE_MAX),
        filename=name,
        storage_key=video_key(user.id, video_id),
        content_type=content_type,
        status="uploading",
        position=_next_position(session, chapter.id),
    )
    session.add(video)
    session.flush()
    return video


def finish_upload(*, session: Session, video_id: uuid.UUID, stored: StoredObject) -> Video | None:
    """Mark the row ready once storage has confirmed size and SHA1. If the row was
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
    video.video_url = stream_url(video.id)
    video.status = "ready"
    video.error = None
    video.updated_at = utcnow()
    session.add(video)
    session.flush()
    return video


def fail_upload(*, session: Session, video_id: uuid.UUID, reason: str, remove_row: bool) -> StorageDeletion | None:
    """An upload ended without its bytes: remove the row (refused input) or keep
    it as ``failed`` with a reason the instructor sees (storage trouble). Returns
    the outbox row that cleans up whatever may be stored under its key."""
    video = session.get(Video, video_id)
    if video is None:
        return None
    if remove_row:
        chapter_id = video.chapter_id
        pending = remove_video_row(session=session, video=video, reason="upload abandoned")
        renumber(session, chapter_videos(session=session, chapter_id=chapter_id))
        return pending
    video.status = "failed"
    video.error = reason[:1000]
    video.updated_at = utcnow()
    session.add(video)
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
