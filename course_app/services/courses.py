"""Courses and their ordered chapters. Every function checks ownership itself."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import Session, func, select

from course_app.errors import Conflict, Forbidden, InvalidInput, NotFound
from course_app.models import (
    COURSE_STATUSES,
    DESCRIPTION_MAX,
    TITLE_MAX,
    Chapter,
    Course,
    CourseStatus,
    User,
    Video,
    utcnow,
)
from course_app.services.ordering import current, in_requested_order, lock_course, parse_id_list, renumber
from course_app.services.outbox import remove_videos_of
from course_app.services.users import can_create_courses
from course_app.services.validation import clean_text, parse_uuid

MAX_CHAPTERS = 500
MAX_BATCH = 1000  # ids in one batch request


@dataclass(frozen=True)
class CourseSummary:
    course: Course
    chapter_count: int
    video_count: int


@dataclass(frozen=True)
class CourseTree:
    course: Course
    chapters: list[Chapter]


# Lookups --------------------------------------------------------------------


def owned_course(*, session: Session, user: User, course_id: object) -> Course:
    """The course if ``user`` owns it; NotFound / Forbidden otherwise."""
    course = session.get(Course, parse_uuid(course_id, what="course"))
    if course is None:
        raise NotFound("That course does not exist.")
    if course.owner_id != user.id:
        raise Forbidden("You do not have access to this course.")
    return course


def owned_chapter(*, session: Session, user: User, chapter_id: object, course_id: object | None = None) -> Chapter:
    chapter = session.get(Chapter, parse_uuid(chapter_id, what="chapter"))
    if chapter is None:
        raise NotFound("That chapter does not exist.")
    course = owned_course(session=session, user=user, course_id=chapter.course_id)
    if course_id is not None and course.id != parse_uuid(course_id, what="course"):
        raise InvalidInput("That chapter is not part of this course.")
    return chapter


def ordered_chapters(*, session: Session, course_id: uuid.UUID) -> list[Chapter]:
    """The course's chapters as stored now (rows already in the session are refreshed)."""
    return list(
        session.exec(
            select(Chapter)
            .where(Chapter.course_id == course_id)
            .order_by(Chapter.position)
            .execution_options(populate_existing=True)
        )
    )


def list_courses(*, session: Session, user: User) -> list[CourseSummary]:
    chapter_counts = (
        select(Chapter.course_id, func.count(Chapter.id).label("n")).group_by(Chapter.course_id).subquery()
    )
    video_counts = select(Video.course_id, func.count(Video.id).label("n")).group_by(Video.course_id).subquery()
    rows = session.exec(
        select(Course, func.coalesce(chapter_counts.c.n, 0), func.coalesce(video_counts.c.n, 0))
        .outerjoin(chapter_counts, chapter_counts.c.course_id == Course.id)
        .outerjoin(video_counts, video_counts.c.course_id == Course.id)
        .where(Course.owner_id == user.id)
        .order_by(Course.updated_at.desc(), Course.id)
    )
    return [CourseSummary(course=c, chapter_count=int(nc), video_count=int(nv)) for c, nc, nv in rows]


def course_tree(*, session: Session, user: User, course_id: object) -> CourseTree:
    course = owned_course(session=session, user=user, course_id=course_id)
    return CourseTree(course=course, chapters=ordered_chapters(session=session, course_id=course.id))


# Courses --------------------------------------------------------------------


def create_course(*, session: Session, user: User, title: object, description: object = "") -> Course:
    if not can_create_courses(user):
        raise Forbidden("Only instructors can create courses.")
    course = Course(
        owner_id=user.id,
        title=clean_text(title, field="Course title", max_length=TITLE_MAX),
        description=clean_text(description, field="Description", max_length=DESCRIPTION_MAX, required=False, multiline=True),
    )
    session.add(course)
    session.flush()
    return course


def update_course(
    *, session: Session, user: User, course_id: object, title: object | None = None, description: object | None = None,
    revision: int | None = None,
) -> Course:
    course = owned_course(session=session, user=user, course_id=course_id)
    if title is not None:
        title = clean_text(title, field="Course title", max_length=TITLE_MAX)
    if description is not None:
        description = clean_text(
            description, field="Description", max_length=DESCRIPTION_MAX, required=False, multiline=True
        )
    lock_course(session, course.id, revision=revision)
    course = current(session, course, gone="That course was deleted in the meantime.")
    if title is not None:
        course.title = title
    if description is not None:
        course.description = description
    session.add(course)
    session.flush()
    return course


def set_course_status(
    *, session: Session, user: User, course_id: object, status: object, revision: int | None = None
) -> Course:
    if status not in COURSE_STATUSES:
        raise InvalidInput(f"Status must be one of: {', '.join(COURSE_STATUSES)}.")
    course = owned_course(session=session, user=user, course_id=course_id)
    lock_course(session, course.id, revision=revision)
    course = current(session, course, gone="That course was deleted in the meantime.")
    if status == CourseStatus.PUBLISHED and not ordered_chapters(session=session, course_id=course.id):
        raise Conflict("Add at least one chapter before publishing.")
    course.status = str(status)
    session.add(course)
    session.flush()
    return course


def delete_course(*, session: Session, user: User, course_id: object, revision: int | None = None) -> list[int]:
    """The course, its chapters and videos; returns the outbox ids of the stored files."""
    course = owned_course(session=session, user=user, course_id=course_id)
    lock_course(session, course.id, revision=revision)  # no upload or move lands in the course while it goes
    pending = remove_videos_of(session=session, course_id=course.id)
    for chapter in ordered_chapters(session=session, course_id=course.id):
        session.delete(chapter)
    session.flush()
    session.delete(course)
    session.flush()
    return pending


# Chapters -------------------------------------------------------------------


def add_chapter(
    *, session: Session, user: User, course_id: object, title: object, revision: int | None = None
) -> Chapter:
    course = owned_course(session=session, user=user, course_id=course_id)
    title = clean_text(title, field="Chapter title", max_length=TITLE_MAX)
    lock_course(session, course.id, revision=revision)
    count, top = session.exec(
        select(func.count(Chapter.id), func.max(Chapter.position)).where(Chapter.course_id == course.id)
    ).one()
    if count >= MAX_CHAPTERS:
        raise Conflict(f"A course has at most {MAX_CHAPTERS} chapters.")
    chapter = Chapter(course_id=course.id, title=title, position=(top + 1) if top is not None else 0)
    session.add(chapter)
    session.flush()
    return chapter


def rename_chapter(
    *, session: Session, user: User, chapter_id: object, title: object, revision: int | None = None
) -> Chapter:
    chapter = owned_chapter(session=session, user=user, chapter_id=chapter_id)
    title = clean_text(title, field="Chapter title", max_length=TITLE_MAX)
    lock_course(session, chapter.course_id, revision=revision)
    chapter = current(session, chapter, gone="That chapter was deleted in the meantime.")
    chapter.title = title
    chapter.updated_at = utcnow()
    session.add(chapter)
    session.flush()
    return chapter


def delete_chapter(*, session: Session, user: User, chapter_id: object, revision: int | None = None) -> list[int]:
    """Delete a chapter and its videos; returns the outbox (StorageDeletion) ids of
    the videos' files, for the caller to carry out at once."""
    return delete_chapters(
        session=session, user=user, chapter_ids=[parse_uuid(chapter_id, what="chapter")], revision=revision
    )


def delete_chapters(*, session: Session, user: User, chapter_ids: object, revision: int | None = None) -> list[int]:
    """Delete chapters of one course and their videos (through the outbox) in one
    transaction, then renumber the remaining chapters. Returns the outbox ids."""
    ids = parse_id_list(chapter_ids, what="chapter", limit=MAX_BATCH)
    found = {c.id: c for c in session.exec(select(Chapter).where(Chapter.id.in_(ids)))}  # type: ignore[attr-defined]
    if len(found) != len(ids):
        raise NotFound("That chapter does not exist.")
    course_ids = {c.course_id for c in found.values()}
    for course_id in course_ids:
        owned_course(session=session, user=user, course_id=course_id)
    if len(course_ids) != 1:
        raise InvalidInput("The chapters must all be part of one course.")
    (course_id,) = course_ids
    lock_course(session, course_id, revision=revision)
    doomed = [current(session, found[i], gone="That chapter was deleted in the meantime.") for i in ids]
    pending: list[int] = []
    for chapter in doomed:
        pending += remove_videos_of(session=session, course_id=course_id, chapter_id=chapter.id)
    for chapter in doomed:
        session.delete(chapter)
    session.flush()
    renumber(session, ordered_chapters(session=session, course_id=course_id))
    return pending


def reorder_chapters(
    *, session: Session, user: User, course_id: object, chapter_ids: object, revision: int | None = None
) -> list[Chapter]:
    """Put the course's chapters in the given order; the list must name each chapter once."""
    course = owned_course(session=session, user=user, course_id=course_id)
    lock_course(session, course.id, revision=revision)
    ordered = in_requested_order(
        ordered_chapters(session=session, course_id=course.id), chapter_ids, what="chapter", parent="course",
        limit=MAX_CHAPTERS,
    )
    renumber(session, ordered)
    return ordered
