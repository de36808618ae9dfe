"""Courses and chapters for scripts, over the same services as the editor."""

from __future__ import annotations

from fastapi import APIRouter

from course_app.api.deps import CurrentUser, DbSession
from course_app.api.schemas import ChapterCreate, ChapterPublic, CourseCreate, CoursePublic, CourseSummaryPublic
from course_app.services import courses, videos

router = APIRouter(prefix="/api/courses", tags=["courses"])


@router.get("", summary="Your courses with their chapter and video counts")
def list_courses(user: CurrentUser, db: DbSession) -> list[CourseSummaryPublic]:
    return [
        CourseSummaryPublic(
            id=s.course.id, title=s.course.title, description=s.course.description, status=s.course.status,
            chapter_count=s.chapter_count, video_count=s.video_count,
            created_at=s.course.created_at, updated_at=s.course.updated_at,
        )
        for s in courses.list_courses(session=db, user=user)
    ]


@router.post("", status_code=201, summary="Create a course")
def create_course(body: CourseCreate, user: CurrentUser, db: DbSession) -> CoursePublic:
    course = courses.create_course(session=db, user=user, title=body.title, description=body.description)
    db.commit()
    return CoursePublic.of(course)


@router.get("/{course_id}", summary="A course with its chapters and videos, in order")
def get_course(course_id: str, user: CurrentUser, db: DbSession) -> CoursePublic:
    tree = courses.course_tree(session=db, user=user, course_id=course_id)
    by_chapter: dict = {}
    for video in videos.course_videos(session=db, course_id=tree.course.id):
        by_chapter.setdefault(video.chapter_id, []).append(video)
    return CoursePublic.of(tree.course, [ChapterPublic.of(c, by_chapter.get(c.id, [])) for c in tree.chapters])


@router.post("/{course_id}/chapters", status_code=201, summary="Add a chapter at the end of a course")
def add_chapter(course_id: str, body: ChapterCreate, user: CurrentUser, db: DbSession) -> ChapterPublic:
    chapter = courses.add_chapter(session=db, user=user, course_id=course_id, title=body.title)
    db.commit()
    return ChapterPublic.of(chapter)
