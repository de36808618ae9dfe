"""course_app/services/preview.py: the course as a student sees it."""

from __future__ import annotations

import uuid

import pytest

from course_app.errors import Forbidden, NotFound
from course_app.models import Video, utcnow
from course_app.services import courses, preview


def _video(session, course, chapter, title: str, position: int, status: str = "ready", **fields) -> Video:
    video = Video(course_id=course.id, chapter_id=chapter.id, title=title, filename=f"{title}.mp4", position=position,
                  storage_key=f"videos/{course.owner_id}/{uuid.uuid4()}", status=status, **fields)
    session.add(video)
    session.flush()
    return video


@pytest.fixture
def course(session, make_user):
    owner = make_user()
    course = courses.create_course(session=session, user=owner, title="Course")
    first = courses.add_chapter(session=session, user=owner, course_id=course.id, title="First")
    empty = courses.add_chapter(session=session, user=owner, course_id=course.id, title="Only unready")
    last = courses.add_chapter(session=session, user=owner, course_id=course.id, title="Last")
    _video(session, course, first, "b", 1, duration_seconds=65.0)
    _video(session, course, first, "a", 0, duration_seconds=5.0)
    _video(session, course, first, "failed", 2, status="failed")
    _video(session, course, first, "trashed", -1_000_001, deleted_at=utcnow())
    _video(session, course, empty, "processing", 0, status="processing")
    _video(session, course, last, "c", 0)
    courses.reorder_chapters(session=session, user=owner, course_id=course.id,
                             chapter_ids=[str(last.id), str(empty.id), str(first.id)])
    session.commit()
    return owner, course


def test_the_owner_sees_the_ready_videos_in_course_order_and_how_many_are_left_out(session, course):
    owner, course = course

    seen = preview.course_preview(session=session, user=owner, course_id=course.id)

    assert seen.is_owner
    assert [(c.title, [v.title for v in c.lessons]) for c in seen.chapters] == [("Last", ["c"]), ("First", ["a", "b"])]
    assert [v.duration_seconds for v in seen.chapters[1].lessons] == [5.0, 65.0]
    assert seen.left_out == 2  # failed and processing; the trashed one is not counted


def test_a_draft_is_the_owners_alone_and_a_published_course_anyones_signed_in(session, course, make_user):
    owner, course = course
    student = make_user()

    with pytest.raises(Forbidden, match="only its owner"):
        preview.course_preview(session=session, user=student, course_id=course.id)
    with pytest.raises(NotFound):
        preview.course_preview(session=session, user=owner, course_id=uuid.uuid4())
    course.status = "published"
    session.add(course)
    session.commit()

    seen = preview.course_preview(session=session, user=student, course_id=course.id)
    assert not seen.is_owner and [v.title for c in seen.chapters for v in c.lessons] == ["c", "a", "b"]
