"""Deleting for good as the product now does it: into the course trash, then
purged from it (services/trash.py). For tests about what happens after a row and
its file are gone (the outbox, reconciliation, races with uploads)."""

from __future__ import annotations

from course_app.models import StorageDeletion
from course_app.services import trash


def delete_video_for_good(*, session, user, video_id) -> StorageDeletion:
    """Trash and purge one video in the caller's transaction; its outbox row."""
    trash.trash_video(session=session, user=user, video_id=video_id)
    [pending] = trash.purge_video(session=session, user=user, video_id=video_id)
    return session.get(StorageDeletion, pending)


def delete_chapter_for_good(*, session, user, chapter_id) -> list[int]:
    """Trash and purge a chapter with its videos in the caller's transaction; the outbox ids."""
    trash.trash_chapter(session=session, user=user, chapter_id=chapter_id)
    return trash.purge_chapter(session=session, user=user, chapter_id=chapter_id)
