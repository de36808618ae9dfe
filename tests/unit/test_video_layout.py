"""Undoing moves on SQLite and PostgreSQL: a move records the order of the chapters
it touches, and restoring it puts every video back, keeps what arrived since,
skips what was deleted since, and is refused on a stale revision or a chapter
that no longer exists."""

from __future__ import annotations

import pytest

from course_app.errors import Forbidden, NotFound, Stale
from course_app.services import trash, video_layout, videos
from tests.unit.test_batch import call, course_with, order


def ids(rows) -> list[str]:
    return [str(v.id) for v in rows]


def test_a_move_across_chapters_records_the_order_before_and_restoring_it_puts_it_back(engine, session, make_user):
    user = make_user()
    course, (one, two), (a, b) = course_with(session, user, 3, 2)
    before = {str(one.id): ids(a), str(two.id): ids(b)}
    layout = call(engine, video_layout.move_recording_layout, user=user, video_ids=[str(a[0].id), str(a[2].id)],
                  chapter_id=str(two.id), before_id=str(b[1].id))
    assert layout == before
    assert [str(i) for i in order(engine, two)] == [str(b[0].id), str(a[0].id), str(a[2].id), str(b[1].id)]
    call(engine, video_layout.restore_layout, user=user, course_id=course.id, layout=layout)
    assert [str(i) for i in order(engine, one)] == ids(a)
    assert [str(i) for i in order(engine, two)] == ids(b)


def test_restoring_keeps_videos_that_arrived_since_and_skips_deleted_ones(engine, session, make_user):
    user = make_user()
    course, (one,), (a,) = course_with(session, user, 3)
    layout = call(engine, video_layout.move_recording_layout, user=user, video_ids=[str(a[0].id)],
                  chapter_id=str(one.id), before_id=None)
    new = call(engine, videos.begin_upload, user=user, course_id=course.id, chapter_id=one.id, filename="new.mp4",
               content_type="video/mp4", declared_size=None, max_bytes=10_000)
    call(engine, trash.trash_video, user=user, video_id=a[1].id)
    call(engine, video_layout.restore_layout, user=user, course_id=course.id, layout=layout)
    assert [str(i) for i in order(engine, one)] == [str(a[0].id), str(a[2].id), str(new.id)]


def test_restoring_is_revision_checked_and_refused_for_a_deleted_chapter(engine, session, make_user):
    user = make_user()
    course, (one, two), (a, _) = course_with(session, user, 2, 1)
    layout = call(engine, video_layout.move_recording_layout, user=user, video_ids=[str(a[0].id)],
                  chapter_id=str(two.id))
    with pytest.raises(Stale):
        call(engine, video_layout.restore_layout, user=user, course_id=course.id, layout=layout, revision=0)
    call(engine, trash.trash_chapter, user=user, chapter_id=one.id)
    with pytest.raises(NotFound):
        call(engine, video_layout.restore_layout, user=user, course_id=course.id, layout=layout)


def test_a_stranger_cannot_restore_a_layout_into_someone_elses_course(engine, session, make_user):
    owner, stranger = make_user(), make_user()
    course, (one,), (a,) = course_with(session, owner, 2)
    before = order(engine, one)
    with pytest.raises(Forbidden):
        call(engine, video_layout.restore_layout, user=stranger, course_id=course.id,
             layout={str(one.id): [str(a[1].id), str(a[0].id)]})
    assert order(engine, one) == before
