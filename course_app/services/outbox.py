"""The outbox of storage deletions.

Removing a video row records its stored file's deletion in the same
transaction; ``process_pending_deletions`` carries them out afterwards and
retries each until storage confirms, so a storage outage never leaves an
orphaned file or a dangling row.

Both doors (API routes and Reflex State) tell storage at once with
``await carry_out(ids=[...])`` after the transaction that queued the rows;
the upkeep task calls ``carry_out()`` for whatever is still due.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import Session, delete, select

from course_app.db import session_scope
from course_app.models import StorageDeletion, Video, utcnow
from course_app.storage import get_storage
from course_app.storage.base import Storage, StorageError

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = timedelta(hours=1)
DERIVED_MARKER = ".thumb-"  # objects named ``<video key>.thumb-...`` belong to that video (services/media.py)


def enqueue_storage_deletion(*, session: Session, storage_key: str, file_id: str | None, reason: str) -> StorageDeletion:
    row = StorageDeletion(storage_key=storage_key, file_id=file_id, reason=reason[:200])
    session.add(row)
    session.flush()
    return row


def enqueue_multipart_abort(*, session: Session, storage_key: str, upload_id: str, reason: str) -> StorageDeletion:
    """Record that an unfinished multipart upload must be cancelled in storage."""
    row = StorageDeletion(storage_key=storage_key, multipart_upload_id=upload_id, reason=reason[:200])
    session.add(row)
    session.flush()
    return row


def remove_video_row(*, session: Session, video: Video, reason: str) -> StorageDeletion:
    """Delete the row and record its file's deletion in the same transaction (its
    thumbnails, stored beside it, go with it: see ``process_pending_deletions``; so
    does a replacement on its way, services/replacements.py)."""
    from course_app.services.replacements import remove_of_video

    remove_of_video(session=session, video_id=video.id, reason=reason)
    pending = enqueue_storage_deletion(
        session=session, storage_key=video.storage_key, file_id=video.backblaze_file_id, reason=reason
    )
    session.delete(video)
    session.flush()
    return pending


def remove_videos_of(
    *, session: Session, course_id: uuid.UUID, chapter_id: uuid.UUID | None = None, reason: str = "course deleted"
) -> list[int]:
    """Remove the videos of a course (or one of its chapters), trashed ones too, through the outbox."""
    query = select(Video).where(Video.course_id == course_id)
    if chapter_id is not None:
        query = query.where(Video.chapter_id == chapter_id)
    return [remove_video_row(session=session, video=v, reason=reason).id for v in list(session.exec(query))]


def process_pending_deletions(
    *, session_factory, storage: Storage, ids: Sequence[int] | None = None, limit: int = 200, due_only: bool = True
) -> tuple[int, int]:
    """Carry out pending storage deletions; returns (done, still pending).

    Each deletion is its own transaction, so a crash part-way leaves the rest
    recorded. Deleting a file storage no longer has counts as done."""
    with session_factory() as session:
        query = select(StorageDeletion.id).order_by(StorageDeletion.id).limit(limit)
        if ids is not None:
            query = query.where(StorageDeletion.id.in_(list(ids)))
        if due_only:
            query = query.where(StorageDeletion.next_attempt_at <= utcnow())
        todo = list(session.exec(query))
    done = failed = 0
    for deletion_id in todo:
        with session_factory() as session:
            row = session.get(StorageDeletion, deletion_id)
            if row is None:
                continue
            try:
                if row.multipart_upload_id:
                    storage.abort_multipart(row.storage_key, row.multipart_upload_id)
                elif row.file_id:
                    storage.delete(row.storage_key, row.file_id)
                else:  # the upload never finished: remove whatever is stored under the key
                    for obj in storage.list(row.storage_key):
                        if obj.key == row.storage_key:
                            storage.delete(obj.key, obj.file_id)
                if not row.multipart_upload_id:  # what processing stored beside it (thumbnails)
                    for obj in storage.list(row.storage_key + DERIVED_MARKER):
                        storage.delete(obj.key, obj.file_id)
            except StorageError as exc:
                row.attempts += 1
                row.last_error = str(exc)[:1000]
                row.next_attempt_at = utcnow() + min(timedelta(seconds=2**row.attempts), MAX_RETRY_DELAY)
                session.add(row)
                failed += 1
                log.warning("Storage deletion of %s failed (attempt %d): %s", row.storage_key, row.attempts, exc)
                continue
            # Another worker may have finished the same entry meanwhile: a plain
            # DELETE is fine either way (the storage calls are idempotent).
            session.exec(delete(StorageDeletion).where(StorageDeletion.id == deletion_id))
            done += 1
    return done, failed


async def run_pending_deletions(storage: Storage, ids: Sequence[int] | None = None) -> tuple[int, int]:
    """``process_pending_deletions`` off the event loop, each row in its own session."""
    return await asyncio.to_thread(process_pending_deletions, session_factory=session_scope, storage=storage, ids=ids)


async def carry_out(ids: Sequence[int] | None = None) -> None:
    """Tell the configured storage now about the given outbox rows (all due rows
    when ``ids`` is None). What storage refuses stays queued and is retried later."""
    await run_pending_deletions(get_storage(), ids=ids)
