"""Courses and their ordered chapters. Every function checks ownership itself.
Deleting a chapter moves it to the course trash (trash.py); only live chapters
(``deleted_at IS NULL``) are shown or ordered here. Deleting a course is final."""

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
    VideoStatus,
    utcnow,
)
from course_app.services.ordering import current, in_requested_order, lock_course, renumber
from course_app.services.outbox import remove_videos_of
from course_app.services.users import can_create_courses
from course_app.services.validation import clean_text, owned, parse_uuid

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
    return owned(session, Course, course_id, user=user, what="course")


def owned_chapter(*, session: Session, user: User, chapter_id: object, course_id: object | None = None) -> Chapter:
    chapter = session.get(Chapter, parse_uuid(chapter_id, what="chapter"))
    if chapter is None:
        raise NotFound("That chapter does not exist.")
    course = owned_course(session=session, user=user, course_id=chapter.course_id)
    if course_id is not None and course.id != parse_uuid(course_id, what="course"):
        raise InvalidInput("That chapter is not part of this course.")
    if chapter.deleted_at is not None:
        raise NotFound("That chapter is in the course's trash; restore it first.")
    return chapter


def ordered_chapters(*, session: Session, course_id: uuid.UUID) -> list[Chapter]:
    """The course's live chapters as stored now (rows already in the session are refreshed)."""
    return list(
        session.exec(
            select(Chapter)
            .where(Chapter.course_id == course_id, Chapter.deleted_at.is_(None))  # type: ignore[union-attr]
            .order_by(Chapter.position)
            .execution_options(populate_existing=True)
        )
    )


def list_courses(*, session: Session, user: User) -> list[CourseSummary]:
    chapter_counts = (
        select(Chapter.course_id, func.count(Chapter.id).label("n"))
        .where(Chapter.deleted_at.is_(None))  # type: ignore[union-attr]
        .group_by(Chapter.course_id).subquery()
    )
    video_counts = (
        select(Video.course_id, func.count(Video.id).label("n"))
        .where(Video.deleted_at.is_(None))  # type: ignore[union-attr]
        .group_by(Video.course_id).subquery()
    )
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
    if status == CourseStatus.PUBLISHED and course.status != CourseStatus.PUBLISHED:
        if not ordered_chapters(session=session, course_id=course.id):
            raise Conflict("Add at least one chapter before publishing.")
        check_all_ready(session=session, course_id=course.id)
    course.status = str(status)
    session.add(course)
    session.flush()
    return course


class NotReady(Conflict):
    """Publishing refused: some videos cannot play yet. Names them (``not_ready``)."""

    code = "videos_not_ready"
    NAMED = 5

    def __init__(self, videos: list[tuple[str, str, str]]) -> None:
        self.videos = videos  # (id, title, status)
        count = len(videos)
        named = ", ".join(f"'{title}' ({status})" for _, title, status in videos[:self.NAMED])
        more = f" and {count - self.NAMED} more" if count > self.NAMED else ""
        verb = "video is" if count == 1 else "videos are"
        super().__init__(f"Cannot publish yet: {count} {verb} not ready: {named}{more}. Publish once every video "
                         "is ready: wait for processing, retry or replace failed ones, or move them to the trash.")

    def details(self) -> dict:
        return {"not_ready": [{"id": i, "title": t, "status": s} for i, t, s in self.videos]}


def check_all_ready(*, session: Session, course_id: uuid.UUID) -> None:
    """Raise NotReady naming every live video of the course that is not ready, in course order."""
    rows = session.exec(
        select(Video.id, Video.title, Video.status)
        .join(Chapter, Chapter.id == Video.chapter_id)
        .where(Video.course_id == course_id, Video.deleted_at.is_(None),  # type: ignore[union-attr]
               Video.status != VideoStatus.READY)
        .order_by(Chapter.position, Video.position)
    ).all()
    if rows:
        raise NotReady([(str(i), t, s) for i, t, s in rows])


def delete_course(*, session: Session, user: User, course_id: object, revision: int | None = None) -> list[int]:
    """The course, its chapters and videos, trashed ones too, for good; returns the
    outbox ids of the stored files."""
    course = owned_course(session=session, user=user, course_id=course_id)
    lock_course(session, course.id, revision=revision)  # no upload or move lands in the course while it goes
    pending = remove_videos_of(session=session, course_id=course.id)
    for chapter in session.exec(select(Chapter).where(Chapter.course_id == course.id)):
        session.delete(chapter)
    session.flush()
    session.delete(course)
    session.flush()
    return pending


# Chapters -------------------------------------------------------------------


def next_chapter_position(session: Session, course_id: uuid.UUID) -> int:
    """The position after the course's last live chapter. Call with the course lock held."""
    count, top = session.exec(
        select(func.count(Chapter.id), func.max(Chapter.position))
        .where(Chapter.course_id == course_id, Chapter.deleted_at.is_(None))  # type: ignore[union-attr]
    ).one()
    if count >= MAX_CHAPTERS:
        raise Conflict(f"A course has at most {MAX_CHAPTERS} chapters.")
    return (top + 1) if top is not None else 0


def add_chapter(
    *, session: Session, user: User, course_id: object, title: object, revision: int | None = None
) -> Chapter:
    course = owned_course(session=session, user=user, course_id=course_id)
    title = clean_text(title, field="Chapter title", max_length=TITLE_MAX)
    lock_course(session, course.id, revision=revision)
    chapter = Chapter(course_id=course.id, title=title, position=next_chapter_position(session, course.id))
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
