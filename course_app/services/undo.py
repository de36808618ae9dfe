"""Putting a deletion back: what the editor's Undo needs after videos or chapters
went to the trash.

``trash_videos_recording_layout`` trashes videos and returns the order their
chapters had; ``untrash`` brings trashed videos and chapters back and puts that
order (and the chapters' order) back, in one transaction, checked against the
revision like every edit.
"""

from __future__ import annotations

from sqlmodel import Session

from course_app.models import User
from course_app.services import trash
from course_app.services.courses import ordered_chapters, owned_course
from course_app.services.ordering import lock_course, renumber
from course_app.services.validation import parse_uuid
from course_app.services.video_layout import Layout, layout_of, restore_layout


def trash_videos_recording_layout(
    *, session: Session, user: User, video_ids: object, revision: int | None = None
) -> tuple[list[int], Layout]:
    """``trash.trash_videos``, returning also the order their chapters had before."""
    layout = layout_of(session=session, video_ids=video_ids)
    return trash.trash_videos(session=session, user=user, video_ids=video_ids, revision=revision), layout


def untrash(
    *, session: Session, user: User, course_id: object, video_ids: object = (), chapter_ids: object = (),
    layout: object = None, chapter_order: object = None, revision: int | None = None,
) -> None:
    """Restore trashed chapters (with the videos trashed with them) and videos, then
    put the chapters in ``chapter_order`` and the videos in ``layout`` (ids no longer
    there are skipped; what arrived since stays, after them)."""
    course = owned_course(session=session, user=user, course_id=course_id)
    lock_course(session, course.id, revision=revision)
    for chapter_id in chapter_ids or ():
        trash.restore_chapter(session=session, user=user, chapter_id=chapter_id)
    for video_id in video_ids or ():
        trash.restore_video(session=session, user=user, video_id=video_id)
    if isinstance(chapter_order, list) and chapter_order:
        live = ordered_chapters(session=session, course_id=course.id)
        rank = {str(parse_uuid(c, what="chapter")): n for n, c in enumerate(chapter_order)}
        renumber(session, sorted(live, key=lambda c: (rank.get(str(c.id), len(rank)), c.position)))
    if isinstance(layout, dict) and layout:
        restore_layout(session=session, user=user, course_id=course.id, layout=layout)
