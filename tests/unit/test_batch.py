"""Batch moves on SQLite and PostgreSQL (videos.move_videos): one transaction,
refused or failing part-way, it leaves the database exactly as it was. Batch moves
to the trash are tests/unit/test_trash.py."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from course_app.db import session_scope
from course_app.errors import Conflict, Forbidden, InvalidInput, NotFound
from course_app.models import Chapter, Course, StorageDeletion, User, Video
from course_app.services import courses, ordering, videos


def course_with(session, user: User, *counts: int, title: str = "Course") -> tuple[Course, list[Chapter], list[list[Video]]]:
    """A committed course with one chapter per count, holding that many videos."""
    course = courses.create_course(session=session, user=user, title=title)
    chapters, rows = [], []
    for i, count in enumerate(counts):
        chapter = courses.add_chapter(session=session, user=user, course_id=course.id, title=f"Chapter {i}")
        chapters.append(chapter)
        rows.append([
            videos.begin_upload(session=session, user=user, course_id=course.id, chapter_id=chapter.id,
                                filename=f"c{i}v{j}.mp4", content_type="video/mp4", declared_size=None,
                                max_bytes=10_000_000)
            for j in range(count)
        ])
    session.commit()
    return course, chapters, rows


def call(engine, fn, **kwargs):
    """What a route or handler does: the service in its own transaction, rolled back on error."""
    with session_scope(engine) as session:
        return fn(session=session, **kwargs)


def order(engine, chapter: Chapter) -> list[uuid.UUID]:
    """The chapter's live video ids as committed; positions must be exactly 0..n-1."""
    with Session(engine) as fresh:
        rows = list(fresh.exec(
            select(Video.id, Video.position)
            .where(Video.chapter_id == chapter.id, Video.deleted_at.is_(None))  # type: ignore[union-attr]
            .order_by(Video.position)
        ))
    assert [position for _, position in rows] == list(range(len(rows)))
    return [video_id for video_id, _ in rows]


def snapshot(engine) -> dict:
    """Everything a batch operation may change, as committed."""
    with Session(engine) as fresh:
        return {
            "videos": sorted((str(v.id), str(v.chapter_id), v.position) for v in fresh.exec(select(Video))),
            "chapters": sorted((str(c.id), c.position) for c in fresh.exec(select(Chapter))),
            "courses": sorted((str(c.id), c.updated_at.isoformat()) for c in fresh.exec(select(Course))),
            "outbox": sorted(d.storage_key for d in fresh.exec(select(StorageDeletion))),
        }


def vids(rows) -> list[uuid.UUID]:
    return [v.id for v in rows]


# move_videos: the orders ---------------------------------------------------------------------


def test_move_before_a_video_of_another_chapter(session, engine, make_user):
    user = make_user()
    _, (a, b), ([a0, a1, a2], [b0, b1]) = course_with(session, user, 3, 2)

    moved = call(engine, videos.move_videos, user=user, video_ids=[a2.id, a0.id], chapter_id=b.id, before_id=b1.id)

    assert vids(moved) == [a2.id, a0.id]
    assert order(engine, b) == [b0.id, a2.id, a0.id, b1.id]
    assert order(engine, a) == [a1.id]


def test_move_appends_at_the_end_without_before_id(session, engine, make_user):
    user = make_user()
    _, (a, b), ([a0, a1], [b0]) = course_with(session, user, 2, 1)

    call(engine, videos.move_videos, user=user, video_ids=[str(a1.id), str(a0.id)], chapter_id=str(b.id))

    assert order(engine, b) == [b0.id, a1.id, a0.id]
    assert order(engine, a) == []


def test_move_within_one_chapter_onto_another_row(session, engine, make_user):
    user = make_user()
    _, (a,), ([v0, v1, v2, v3],) = course_with(session, user, 4)

    call(engine, videos.move_videos, user=user, video_ids=[v3.id], chapter_id=a.id, before_id=v1.id)
    assert order(engine, a) == [v0.id, v3.id, v1.id, v2.id]
    call(engine, videos.move_videos, user=user, video_ids=[v0.id], chapter_id=a.id, before_id=v2.id)
    assert order(engine, a) == [v3.id, v1.id, v0.id, v2.id]
    call(engine, videos.move_videos, user=user, video_ids=[v3.id], chapter_id=a.id)
    assert order(engine, a) == [v1.id, v0.id, v2.id, v3.id]


def test_move_gathers_videos_from_several_chapters_including_the_target(session, engine, make_user):
    user = make_user()
    _, (a, b, c), ([a0, a1], [b0, b1, b2], [c0]) = course_with(session, user, 2, 3, 1)

    call(engine, videos.move_videos, user=user, video_ids=[c0.id, b2.id, a0.id, b0.id], chapter_id=b.id, before_id=b1.id)

    assert order(engine, b) == [c0.id, b2.id, a0.id, b0.id, b1.id]
    assert order(engine, a) == [a1.id]
    assert order(engine, c) == []


def test_move_into_an_empty_chapter(session, engine, make_user):
    user = make_user()
    _, (a, empty), ([a0, a1, a2], []) = course_with(session, user, 3, 0)

    call(engine, videos.move_videos, user=user, video_ids=[a1.id], chapter_id=empty.id)

    assert order(engine, empty) == [a1.id]
    assert order(engine, a) == [a0.id, a2.id]


# move_videos: refusals change nothing ------------------------------------------------------------


def test_one_strangers_video_in_the_list_refuses_the_whole_move(session, engine, make_user):
    user, stranger = make_user(), make_user()
    _, (a, b), ([a0, a1], [b0]) = course_with(session, user, 2, 1)
    _, _, ([theirs],) = course_with(session, stranger, 1)
    before = snapshot(engine)

    with pytest.raises(Forbidden):
        call(engine, videos.move_videos, user=user, video_ids=[a0.id, theirs.id, a1.id], chapter_id=b.id)

    assert snapshot(engine) == before


def test_a_stranger_cannot_move_into_or_out_of_your_course(session, engine, make_user):
    user, stranger = make_user(), make_user()
    _, (a, b), ([a0], []) = course_with(session, user, 1, 0)
    _, (their_chapter,), ([theirs],) = course_with(session, stranger, 1)
    before = snapshot(engine)

    with pytest.raises(Forbidden):  # your videos into their chapter, as them
        call(engine, videos.move_videos, user=stranger, video_ids=[a0.id], chapter_id=their_chapter.id)
    with pytest.raises(Forbidden):  # their video into your chapter, as them
        call(engine, videos.move_videos, user=stranger, video_ids=[theirs.id], chapter_id=b.id)
    with pytest.raises(Forbidden):  # their video into your chapter, as you
        call(engine, videos.move_videos, user=user, video_ids=[theirs.id], chapter_id=b.id)

    assert snapshot(engine) == before


@pytest.mark.parametrize(("video_ids", "error"), [
    (lambda v: [], InvalidInput),
    (lambda v: None, InvalidInput),
    (lambda v: str(v[0].id), InvalidInput),
    (lambda v: {"id": str(v[0].id)}, InvalidInput),
    (lambda v: [v[0].id, "not-an-id"], InvalidInput),
    (lambda v: [v[0].id, 12], InvalidInput),
    (lambda v: [v[0].id, v[1].id, str(v[0].id)], InvalidInput),
    (lambda v: [str(uuid.uuid4()) for _ in range(1001)], InvalidInput),
    (lambda v: [v[0].id, uuid.uuid4()], NotFound),
])
def test_move_validates_the_list(session, engine, make_user, video_ids, error):
    user = make_user()
    _, (a, b), (rows, _) = course_with(session, user, 2, 1)
    before = snapshot(engine)

    with pytest.raises(error):
        call(engine, videos.move_videos, user=user, video_ids=video_ids(rows), chapter_id=b.id)

    assert snapshot(engine) == before


def test_move_refuses_a_video_of_another_of_your_courses(session, engine, make_user):
    user = make_user()
    _, (a, b), ([a0], _) = course_with(session, user, 1, 1)
    _, _, ([elsewhere],) = course_with(session, user, 1, title="Other")
    before = snapshot(engine)

    with pytest.raises(InvalidInput):
        call(engine, videos.move_videos, user=user, video_ids=[a0.id, elsewhere.id], chapter_id=b.id)

    assert snapshot(engine) == before


@pytest.mark.parametrize("where", ["moving", "other chapter", "unknown", "malformed"])
def test_move_refuses_a_bad_before_id(session, engine, make_user, where):
    user = make_user()
    _, (a, b), ([a0, a1], [b0]) = course_with(session, user, 2, 1)
    before_id = {"moving": a0.id, "other chapter": a1.id, "unknown": uuid.uuid4(), "malformed": "x"}[where]
    before = snapshot(engine)

    with pytest.raises(InvalidInput):
        call(engine, videos.move_videos, user=user, video_ids=[a0.id], chapter_id=b.id, before_id=before_id)

    assert snapshot(engine) == before


def test_move_refuses_an_unknown_target_chapter(session, engine, make_user):
    user = make_user()
    _, _, ([a0],) = course_with(session, user, 1)
    with pytest.raises(NotFound):
        call(engine, videos.move_videos, user=user, video_ids=[a0.id], chapter_id=uuid.uuid4())


def test_move_respects_the_chapter_limit(session, engine, make_user, monkeypatch):
    user = make_user()
    _, (a, b), ([a0, a1], [b0, b1]) = course_with(session, user, 2, 2)
    monkeypatch.setattr(videos, "MAX_VIDEOS_PER_CHAPTER", 3)
    before = snapshot(engine)

    with pytest.raises(Conflict):
        call(engine, videos.move_videos, user=user, video_ids=[a0.id, a1.id], chapter_id=b.id)
    assert snapshot(engine) == before

    call(engine, videos.move_videos, user=user, video_ids=[a0.id], chapter_id=b.id)  # 3 fit
    assert order(engine, b) == [b0.id, b1.id, a0.id]
    call(engine, videos.move_videos, user=user, video_ids=[b0.id], chapter_id=b.id)  # a full chapter's own order
    assert order(engine, b) == [b1.id, a0.id, b0.id]


def test_a_move_failing_midway_changes_nothing(session, engine, make_user, monkeypatch):
    user = make_user()
    _, (a, b, c), ([a0, a1], [b0], [c0]) = course_with(session, user, 2, 1, 1)
    before = snapshot(engine)
    real_renumber, calls = ordering.renumber, []

    def renumber_then_fail(session, rows):
        calls.append(len(rows))
        if len(calls) == 2:  # the rows are parked and one source chapter is renumbered
            raise RuntimeError("the database went away")
        real_renumber(session, rows)

    monkeypatch.setattr(videos, "renumber", renumber_then_fail)
    with pytest.raises(RuntimeError):
        call(engine, videos.move_videos, user=user, video_ids=[a0.id, c0.id], chapter_id=b.id)

    assert len(calls) == 2
    assert snapshot(engine) == before
