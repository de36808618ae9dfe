"""The single-request upload (``POST /api/upload``): sniff the type, write the
row, stream the bytes to storage while counting them, then mark the row ready (or
clean up), in an order that a crash at any step leaves repairable. Resumable
uploads in parts are services/upload_sessions.py.

1. the first bytes must look like a video (magic bytes), else nothing is written;
2. the row is written with status ``uploading`` (the intent);
3. the bytes stream to storage through a small bounded queue, never held whole;
   past the size limit the stream stops and nothing stays stored;
4. the row becomes ``ready`` with storage's file id, size and SHA1 (retried while
   the database is unreachable; if it stays down the row stays ``uploading`` with
   its file stored, and ``course-app check-videos --repair`` marks it ready).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sqlalchemy.exc import OperationalError

from course_app.db import run_in_session
from course_app.errors import DatabaseUnavailable, InvalidInput, StorageUnavailable, TooLarge
from course_app.models import User, Video
from course_app.services import outbox, videos
from course_app.services.byte_pump import stream_to_thread
from course_app.services.video_types import SNIFF_BYTES, sniff_video_type
from course_app.storage.base import Storage, StorageError, StoredObject

log = logging.getLogger(__name__)

# Waits before retrying to mark an upload ready while the database is unreachable.
FINISH_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


async def _read_head(chunks: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """At least SNIFF_BYTES from the stream (less if it ends); returns (head, ended)."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            return bytes(head), False
    return bytes(head), True


async def ingest(
    *,
    user: User,
    storage: Storage,
    course_id: object,
    chapter_id: object,
    filename: object,
    title: object,
    chunks: AsyncIterator[bytes],
    max_bytes: int,
    declared_size: int | None = None,
) -> Video:
    head, ended = await _read_head(chunks)
    if not head:
        raise InvalidInput("The file is empty.")
    content_type = sniff_video_type(head)
    if declared_size is not None and declared_size > max_bytes:
        raise TooLarge(f"The file is larger than the {videos.format_size(max_bytes)} limit.")

    video: Video = await run_in_session(
        videos.begin_upload,
        user=user,
        course_id=course_id,
        chapter_id=chapter_id,
        filename=filename,
        title=title,
        content_type=content_type,
        declared_size=declared_size,
        max_bytes=max_bytes,
    )
    too_large = f"The file is larger than the {videos.format_size(max_bytes)} limit."
    try:
        stored: StoredObject = await stream_to_thread(
            lambda source: storage.put_stream(video.storage_key, source, content_type=content_type),
            chunks,
            head=head,
            limit=max_bytes,
            too_large=too_large,
        )
    except BaseException as exc:
        await _settle_failed(video, exc, storage)
        if isinstance(exc, StorageError):
            raise StorageUnavailable(f"Storage could not save the video: {exc}") from exc
        raise
    if declared_size is not None and stored.size != declared_size:
        log.info("Upload %s: declared %s bytes, received %s", video.id, declared_size, stored.size)
    finished = await _record_finished(video, stored)
    if finished is None:  # deleted while uploading: the stored file went to the outbox
        raise InvalidInput("The video was deleted while it was uploading.")
    return finished


async def _record_finished(video: Video, stored: StoredObject) -> Video | None:
    """Mark the row ready, retrying while the database is unreachable: the bytes are
    stored and must not be lost track of. If it stays down, the row stays
    ``uploading`` and ``course-app check-videos --repair`` marks it ready from the
    stored file later."""
    for delay in (*FINISH_RETRY_DELAYS, None):
        try:
            return await run_in_session(videos.finish_upload, video_id=video.id, stored=stored)
        except OperationalError as exc:
            if delay is None:
                log.error("Video %s is stored as %s but could not be marked ready: %s", video.id, stored.key, exc)
                raise DatabaseUnavailable(
                    "The video was saved, but the database could not record it just now. It will appear in "
                    "the course once an administrator's check has run; there is no need to upload it again."
                ) from exc
            log.warning("Marking video %s ready failed (%s); retrying in %.1fs", video.id, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _settle_failed(video: Video, exc: BaseException, storage: Storage) -> None:
    """Nothing usable was stored: remove the row (refused or abandoned input) or
    keep it as ``failed`` with the reason (storage trouble), then carry out the
    outbox entry for its key at once (the outbox task retries it if this fails)."""
    storage_failed = isinstance(exc, StorageError)
    try:
        pending = await run_in_session(
            videos.fail_upload,
            video_id=video.id,
            reason=str(exc) if storage_failed else "upload stopped",
            remove_row=not storage_failed,
        )
    except Exception:  # the database is down too: the row stays "uploading" for the checker
        log.exception("Could not record the failed upload of video %s", video.id)
        return
    if pending is not None:
        try:
            await outbox.run_pending_deletions(storage, ids=[pending.id])
        except Exception:
            log.exception("Could not clean up after the failed upload of video %s", video.id)

