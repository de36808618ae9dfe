"""A course as a student sees it: its live chapters in order, each with its ready
videos in order (videos still processing, failed or trashed are left out). Two
queries at any size. The owner may preview a draft; anyone signed in may see a
published course (services/playback.py decides, for the links too)."""

from __future__ import annotations

import dataclasses
import uuid

from sqlmodel import Session, func, select

from course_app.errors import Forbidden, NotFound
from course_app.models import Chapter, Course, User, Video, VideoStatus
from course_app.services.courses import ordered_chapters
from course_app.services.playback import may_watch
from course_app.services.validation import parse_uuid


@dataclasses.dataclass(frozen=True)
class Lesson:
    id: uuid.UUID
    title: str
    duration_seconds: float | None


@dataclasses.dataclass(frozen=True)
class PreviewChapter:
    id: uuid.UUID
    title: str
    lessons: list[Lesson]


@dataclasses.dataclass(frozen=True)
class CoursePreview:
    course: Course
    is_owner: bool
    chapters: list[PreviewChapter]  # chapters with no ready video are left out
    left_out: int  # live videos that are not ready (shown to the owner as a count)


def course_preview(*, session: Session, user: User, course_id: object) -> CoursePreview:
    course = session.get(Course, parse_uuid(course_id, what="course"))
    if course is None:
        raise NotFound("That course does not exist.")
    if not may_watch(user, course):
        raise Forbidden("This course is not published yet: only its owner can preview it.")
    lessons: dict[uuid.UUID, list[Lesson]] = {}
    rows = session.exec(
        select(Video.id, Video.chapter_id, Video.title, Video.duration_seconds)
        .where(Video.course_id == course.id, Video.deleted_at.is_(None),  # type: ignore[union-attr]
               Video.status == VideoStatus.READY)
        .order_by(Video.position)
    )
    for video_id, chapter_id, title, seconds in rows:
        lessons.setdefault(chapter_id, []).append(Lesson(video_id, title, seconds))
    chapters = [PreviewChapter(c.id, c.title, lessons[c.id])
                for c in ordered_chapters(session=session, course_id=course.id) if c.id in lessons]
    left_out = session.exec(
        select(func.count(Video.id)).join(Chapter, Chapter.id == Video.chapter_id)
        .where(Video.course_id == course.id, Video.deleted_at.is_(None),  # type: ignore[union-attr]
               Video.status != VideoStatus.READY)
    ).one()
    return CoursePreview(course=course, is_owner=course.owner_id == user.id, chapters=chapters, left_out=int(left_out))
