"""Where a course's videos are, read and put back: what undoing a move needs.

``move_recording_layout`` moves videos and returns, from the same transaction, the
order its source and target chapters had before; ``restore_layout`` puts that
order back (revision-checked like every edit).
"""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from course_app.errors import Conflict, InvalidInput, NotFound
from course_app.models import Chapter, User, Video
from course_app.services.courses import owned_course
from course_app.services.ordering import lock_course, renumber
from course_app.services.validation import parse_uuid
from course_app.services.videos import CHAPTER_FULL, MAX_VIDEOS_PER_CHAPTER, chapter_videos, move_videos

Layout = dict[str, list[str]]  # chapter id -> its video ids in order


def read_layout(*, session: Session, chapter_ids: set[uuid.UUID]) -> Layout:
    layout: Layout = {str(c): [] for c in chapter_ids}
    rows = session.exec(
        select(Video.chapter_id, Video.id)
        .where(Video.chapter_id.in_(chapter_ids), Video.deleted_at.is_(None))  # type: ignore[attr-defined,union-attr]
        .order_by(Video.position)
    )
    for chapter_id, video_id in rows:
        layout[str(chapter_id)].append(str(video_id))
    return layout


def layout_of(*, session: Session, video_ids: object, also: set[uuid.UUID] = frozenset()) -> Layout:
    """The order of the chapters holding ``video_ids`` (and of the chapters ``also``)."""
    ids = [parse_uuid(i, what="video") for i in video_ids] if isinstance(video_ids, list) else []
    chapters = set(session.exec(select(Video.chapter_id).where(Video.id.in_(ids)))) if ids else set()  # type: ignore[attr-defined]
    chapters |= also
    return read_layout(session=session, chapter_ids=chapters) if chapters else {}


def move_recording_layout(
    *, session: Session, user: User, video_ids: object, chapter_id: object, before_id: object = None,
    revision: int | None = None,
) -> Layout:
    """``videos.move_videos``, returning the order the chapters it touches had before.
    The order is read just before the move's lock: an edit committed in between
    makes the move itself refused (its revision is checked), and an upload that
    lands in between is kept by ``restore_layout``."""
    layout = layout_of(session=session, video_ids=video_ids, also={parse_uuid(chapter_id, what="chapter")})
    move_videos(session=session, user=user, video_ids=video_ids, chapter_id=chapter_id, before_id=before_id,
                revision=revision)
    return layout


def restore_layout(
    *, session: Session, user: User, course_id: object, layout: object, revision: int | None = None
) -> None:
    """Put the listed videos back into the listed chapters in the listed order; a
    video now in one of those chapters that the layout does not list (an upload
    since) stays, after them. Videos deleted since are skipped; a chapter deleted
    since refuses the whole restore."""
    course = owned_course(session=session, user=user, course_id=course_id)
    if not isinstance(layout, dict) or not layout:
        raise InvalidInput("Nothing to put back.")
    lock_course(session, course.id, revision=revision)
    chapters = {c.id: c for c in session.exec(select(Chapter).where(
        Chapter.course_id == course.id, Chapter.deleted_at.is_(None)))}  # type: ignore[union-attr]
    wanted: dict[uuid.UUID, list[uuid.UUID]] = {}
    for chapter_key, ids in layout.items():
        chapter_id = parse_uuid(chapter_key, what="chapter")
        if chapter_id not in chapters:
            raise NotFound("A chapter of that change was deleted since; it cannot be undone.")
        if not isinstance(ids, list):
            raise InvalidInput("Nothing to put back.")
        wanted[chapter_id] = [parse_uuid(i, what="video") for i in ids]
    listed = {i for ids in wanted.values() for i in ids}
    found = {v.id: v for v in session.exec(select(Video).where(  # live videos only: trashed ones stay in the trash
        Video.course_id == course.id, Video.id.in_(listed), Video.deleted_at.is_(None)))}  # type: ignore[attr-defined,union-attr]
    affected = set(wanted) | {v.chapter_id for v in found.values()}
    final: dict[uuid.UUID, list[Video]] = {}
    for chapter_id in affected:
        first = [found[i] for i in wanted.get(chapter_id, []) if i in found]
        final[chapter_id] = first + [v for v in chapter_videos(session=session, chapter_id=chapter_id)
                                     if v.id not in listed]
        if len(final[chapter_id]) > MAX_VIDEOS_PER_CHAPTER:
            raise Conflict(CHAPTER_FULL)
    # Park every row below the positions renumber uses, in its final chapter, then renumber.
    offset = 0
    for chapter_id, rows in final.items():
        for video in rows:
            video.chapter_id, video.position = chapter_id, -(MAX_VIDEOS_PER_CHAPTER + 1 + offset)
            offset += 1
            session.add(video)
    session.flush()
    for rows in final.values():
        renumber(session, rows)
