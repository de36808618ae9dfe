"""Courses and chapters for scripts, over the same services as the editor. Edits
take ``If-Match`` and ``Idempotency-Key`` (api/editing.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlmodel import Session

from course_app.api.deps import CurrentUser, DbSession
from course_app.api.editing import EDIT_HEADERS, EditDep, apply_edit
from course_app.api.schemas import (
    ChapterCreate, ChapterList, ChapterOrder, ChapterPublic, CourseCreate, CoursePublic, CourseSummaryPublic, CourseUpdate,
)
from course_app.errors import InvalidInput
from course_app.models import Course, User
from course_app.services import courses, ordering, outbox, videos

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


@router.post("", status_code=201, response_model=CoursePublic, summary="Create a course")
async def create_course(body: CourseCreate, edit: EditDep) -> Response:
    _, answer = await apply_edit(edit, courses.create_course, checked=False, status_code=201,
                                 present=CoursePublic.of, title=body.title, description=body.description)
    return answer


@router.get("/{course_id}", summary="A course with its chapters and videos, in order; its ETag is its revision")
def get_course(course_id: str, user: CurrentUser, db: DbSession, response: Response) -> CoursePublic:
    tree = courses.course_tree(session=db, user=user, course_id=course_id)  # the course (and revision) first
    by_chapter: dict = {}
    for video in videos.course_videos(session=db, course_id=tree.course.id):
        by_chapter.setdefault(video.chapter_id, []).append(video)
    response.headers["ETag"] = f'"{tree.course.revision}"'
    return CoursePublic.of(tree.course, [ChapterPublic.of(c, by_chapter.get(c.id, [])) for c in tree.chapters])


def _update_course(*, session: Session, user: User, revision: int | None, course_id: str, body: CourseUpdate) -> Course:
    """Title, description and status in one transaction, checked once against ``revision``."""
    if body.title is None and body.description is None and body.status is None:
        raise InvalidInput("Send at least one of 'title', 'description' and 'status'.")
    course = courses.owned_course(session=session, user=user, course_id=course_id)
    if body.title is not None or body.description is not None:
        course = courses.update_course(session=session, user=user, course_id=course_id, title=body.title,
                                       description=body.description, revision=revision)
        revision = ordering.then(session, revision)
    if body.status is not None:
        course = courses.set_course_status(session=session, user=user, course_id=course_id, status=body.status,
                                           revision=revision)
    return course


@router.patch("/{course_id}", response_model=CoursePublic, summary="Change a course's title, description or status",
              description=EDIT_HEADERS)
async def update_course(course_id: str, body: CourseUpdate, edit: EditDep) -> Response:
    _, answer = await apply_edit(edit, _update_course, present=CoursePublic.of, course_id=course_id, body=body)
    return answer


@router.delete("/{course_id}", status_code=204, summary="Delete a course with its chapters, videos and files",
               description=EDIT_HEADERS)
async def delete_course(course_id: str, edit: EditDep) -> Response:
    pending, answer = await apply_edit(edit, courses.delete_course, status_code=204, course_id=course_id)
    await outbox.carry_out(ids=pending)
    return answer


@router.post("/{course_id}/chapters", status_code=201, response_model=ChapterPublic,
             summary="Add a chapter at the end of a course", description=EDIT_HEADERS)
async def add_chapter(course_id: str, body: ChapterCreate, edit: EditDep) -> Response:
    _, answer = await apply_edit(edit, courses.add_chapter, status_code=201, present=ChapterPublic.of,
                                 course_id=course_id, title=body.title)
    return answer


@router.put("/{course_id}/chapter-order", response_model=list[ChapterPublic],
            summary="Put a course's chapters in a new order", description=EDIT_HEADERS)
async def reorder_chapters(course_id: str, body: ChapterOrder, edit: EditDep) -> Response:
    _, answer = await apply_edit(edit, courses.reorder_chapters, present=ChapterList.of, course_id=course_id,
                                 chapter_ids=body.chapter_ids)
    return answer
