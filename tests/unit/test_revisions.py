"""The course revision on SQLite and PostgreSQL: every edit advances it in its own
transaction, an edit made on an older view is refused and changes nothing, and of
two edits racing from the same view exactly one wins. Status changes (an upload
starting or ending) only advance the pulse open editors watch."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session, select

from course_app.errors import Stale
from course_app.models import Chapter, Course, Video
from course_app.services import courses, ordering, trash, undo, videos
from course_app.storage.base import StoredObject
from tests.unit.test_batch import call, course_with, order, snapshot


def revision_and_pulse(engine, course: Course) -> tuple[int, int]:
    with Session(engine) as fresh:
        return fresh.exec(select(Course.revision, Course.pulse).where(Course.id == course.id)).one()


def edits(course: Course, chapters: list[Chapter], rows: list[list[Video]]):
    """One of every editing service, each as (name, callable taking session, user, revision)."""
    first, second = rows[0][0], rows[0][1]
    return [
        ("update_course", lambda **kw: courses.update_course(course_id=course.id, title="New", **kw)),
        ("set_course_status", lambda **kw: publish_when_ready(course, **kw)),
        ("add_chapter", lambda **kw: courses.add_chapter(course_id=course.id, title="Extra", **kw)),
        ("rename_chapter", lambda **kw: courses.rename_chapter(chapter_id=chapters[0].id, title="Renamed", **kw)),
        ("reorder_chapters", lambda **kw: courses.reorder_chapters(
            course_id=course.id, chapter_ids=[str(chapters[1].id), str(chapters[0].id)], **kw)),
        ("rename_video", lambda **kw: videos.rename_video(video_id=first.id, title="Renamed", **kw)),
        ("reorder_videos", lambda **kw: videos.reorder_videos(
            chapter_id=chapters[0].id, video_ids=[str(second.id), str(first.id)], **kw)),
        ("move_video", lambda **kw: videos.move_video(video_id=first.id, chapter_id=chapters[1].id, **kw)),
        ("move_videos", lambda **kw: videos.move_videos(video_ids=[str(second.id)], chapter_id=chapters[1].id, **kw)),
        ("trash_video", lambda **kw: trash.trash_video(video_id=first.id, **kw)),
        ("trash_videos", lambda **kw: trash.trash_videos(video_ids=[str(second.id)], **kw)),
        ("trash_chapter", lambda **kw: trash.trash_chapter(chapter_id=chapters[1].id, **kw)),
        ("trash_chapters", lambda **kw: trash.trash_chapters(chapter_ids=[str(chapters[1].id)], **kw)),
        ("untrash", lambda **kw: untrash_after(course, rows, **kw)),
    ]


COMPOSITE = {"untrash"}  # several edits in one transaction
EDIT_NAMES = [
    "update_course", "set_course_status", "add_chapter", "rename_chapter", "reorder_chapters", "rename_video",
    "reorder_videos", "move_video", "move_videos", "trash_video", "trash_videos", "trash_chapter",
    "trash_chapters", "untrash",
]


def publish_when_ready(course, *, session, user, revision):
    """Publishing, once every video is ready (processing marks them outside the measured
    edit, without touching the revision)."""
    with Session(session.get_bind()) as other:
        for video in other.exec(select(Video).where(Video.course_id == course.id)):
            video.status = "ready"
            other.add(video)
        other.commit()
    return courses.set_course_status(session=session, user=user, course_id=course.id, status="published",
                                     revision=revision)


def untrash_after(course, rows, *, session, user, revision):
    """Undo of a delete: the video goes to the trash first (outside the measured edit)."""
    video = rows[1][0]
    with Session(session.get_bind()) as other:
        trash.trash_video(session=other, user=user, video_id=video.id)
        other.commit()
    revision = None if revision is None else revision + 1
    return undo.untrash(session=session, user=user, course_id=course.id, video_ids=[str(video.id)], revision=revision)


@pytest.mark.parametrize("name", EDIT_NAMES)
def test_every_edit_advances_the_revision_and_reports_it(engine, session, make_user, name):
    user = make_user()
    course, chapters, rows = course_with(session, user, 2, 1)
    before, pulse = revision_and_pulse(engine, course)
    action = dict(edits(course, chapters, rows))[name]
    with Session(engine) as edit:
        action(session=edit, user=user, revision=before)
        edit.commit()
        reported = edit.info[ordering.REVISION]
    revision, new_pulse = revision_and_pulse(engine, course)
    assert reported == revision  # what the caller adopts is what the database holds
    if name in COMPOSITE:  # several edits in one transaction (each restore, then the order)
        assert revision > before + 1 and new_pulse > pulse + 1
    else:
        assert (revision, new_pulse) == (before + 1, pulse + 1)


@pytest.mark.parametrize("name", [n for n in EDIT_NAMES if n not in COMPOSITE])
def test_an_edit_from_an_older_view_is_refused_and_changes_nothing(engine, session, make_user, name):
    user = make_user()
    course, chapters, rows = course_with(session, user, 2, 1)
    call(engine, courses.rename_chapter, user=user, chapter_id=chapters[1].id, title="Changed elsewhere")
    seen = revision_and_pulse(engine, course)[0] - 1  # the view was built before that rename
    before = snapshot(engine)
    with pytest.raises(Stale) as refused:
        call(engine, dict(edits(course, chapters, rows))[name], user=user, revision=seen)
    assert refused.value.revision == seen + 1
    assert str(refused.value) == "This course changed in another window; your view is now up to date."
    assert snapshot(engine) == before


def test_without_a_revision_an_edit_applies_to_whatever_is_current(engine, session, make_user):
    """Scripts that do not send If-Match still work."""
    user = make_user()
    course, chapters, _ = course_with(session, user, 1)
    call(engine, courses.rename_chapter, user=user, chapter_id=chapters[0].id, title="One")
    call(engine, courses.rename_chapter, user=user, chapter_id=chapters[0].id, title="Two")
    with Session(engine) as fresh:
        assert fresh.get(Chapter, chapters[0].id).title == "Two"


def test_uploads_starting_and_ending_move_the_pulse_not_the_revision(engine, session, make_user):
    """An upload is not an edit: views built before it stay valid for edits."""
    user = make_user()
    course, chapters, _ = course_with(session, user, 1)
    revision, pulse = revision_and_pulse(engine, course)
    video = call(engine, videos.begin_upload, user=user, course_id=course.id, chapter_id=chapters[0].id,
                 filename="a.mp4", content_type="video/mp4", declared_size=None, max_bytes=10_000)
    assert revision_and_pulse(engine, course) == (revision, pulse + 1)
    with Session(engine) as done:
        videos.finish_upload(session=done, video_id=video.id, stored=StoredObject(
            key=video.storage_key, file_id="f", size=3, sha1="a" * 40))
        done.commit()
    assert revision_and_pulse(engine, course) == (revision, pulse + 2)
    call(engine, videos.rename_video, user=user, video_id=video.id, title="Still my view", revision=revision)


def test_two_edits_racing_from_one_view_one_wins_one_is_refused(engine, session, make_user):
    """Two transactions hold the same view: the first takes the course's lock; the
    second waits for it, then finds the revision moved and is refused."""
    user = make_user()
    course, chapters, rows = course_with(session, user, 3)
    seen = revision_and_pulse(engine, course)[0]
    a, b, c = (str(v.id) for v in rows[0])
    first_locked, outcome = threading.Event(), {}

    def second() -> None:
        first_locked.wait(10)
        try:
            call(engine, videos.reorder_videos, user=user, chapter_id=chapters[0].id, video_ids=[a, c, b],
                 revision=seen)
            outcome["second"] = "applied"
        except Stale:
            outcome["second"] = "refused"

    racer = threading.Thread(target=second)
    racer.start()
    with Session(engine) as first:
        videos.reorder_videos(session=first, user=user, chapter_id=chapters[0].id, video_ids=[b, a, c],
                              revision=seen)
        first_locked.set()
        racer.join(0.5)
        assert racer.is_alive(), "the second edit must wait for the first one's lock"
        first.commit()
    racer.join(30)
    assert outcome == {"second": "refused"}
    with Session(engine) as fresh:
        ids = list(fresh.exec(select(Video.id).where(Video.chapter_id == chapters[0].id).order_by(Video.position)))
    assert [str(i) for i in ids] == [b, a, c]
    assert revision_and_pulse(engine, course)[0] == seen + 1


def test_undoing_a_delete_from_an_older_view_is_refused_and_the_video_stays_in_the_trash(engine, session, make_user):
    user = make_user()
    course, chapters, rows = course_with(session, user, 2)
    video = rows[0][0]
    call(engine, trash.trash_video, user=user, video_id=video.id)
    after_delete = revision_and_pulse(engine, course)[0]
    call(engine, courses.rename_chapter, user=user, chapter_id=chapters[0].id, title="Changed elsewhere")
    with pytest.raises(Stale):
        call(engine, undo.untrash, user=user, course_id=course.id, video_ids=[str(video.id)], revision=after_delete)
    with Session(engine) as fresh:
        assert fresh.get(Video, video.id).deleted_at is not None
    call(engine, undo.untrash, user=user, course_id=course.id, video_ids=[str(video.id)],
         layout={str(chapters[0].id): [str(v.id) for v in rows[0]]}, revision=after_delete + 1)
    assert [str(i) for i in order(engine, chapters[0])] == [str(v.id) for v in rows[0]]
