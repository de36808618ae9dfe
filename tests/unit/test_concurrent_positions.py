"""Writes that assign or change positions, fired at once from many threads, on
SQLite and PostgreSQL: every one succeeds and the order stays 0..n-1 (the course
write lock in services/ordering.py; without it these fail with unique-constraint
errors or leave gaps)."""

from __future__ import annotations

import threading
import traceback
import uuid
from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from course_app.models import Chapter, Course, User, Video
from course_app.services import courses, videos

N = 50


def run_together(engine, work: Callable[[Session, int], object], n: int = N) -> tuple[list[object], list[str]]:
    """Call ``work(session, i)`` for i in 0..n-1, each in its own thread, session and
    transaction, all released at the same moment. Returns (results, failures)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    failures: list[str] = []

    def run(i: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            try:
                barrier.wait(timeout=60)
                results[i] = work(session, i)
                session.commit()
            except Exception:
                session.rollback()
                failures.append(traceback.format_exc(limit=1))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    return results, failures


def chapter_positions(engine, course_id) -> list[int]:
    with Session(engine) as fresh:
        return list(fresh.exec(select(Chapter.position).where(Chapter.course_id == course_id).order_by(Chapter.position)))


def video_order(engine, chapter_id) -> list[tuple[uuid.UUID, int]]:
    with Session(engine) as fresh:
        rows = fresh.exec(select(Video.id, Video.position).where(Video.chapter_id == chapter_id).order_by(Video.position))
        return [(video_id, position) for video_id, position in rows]


def setup_course(session, user: User, chapters: int) -> tuple[Course, list[Chapter]]:
    course = courses.create_course(session=session, user=user, title="Busy course")
    made = [courses.add_chapter(session=session, user=user, course_id=course.id, title=f"C{i}") for i in range(chapters)]
    session.commit()
    return course, made


def begin(session, user: User, chapter: Chapter, name: str = "clip.mp4") -> Video:
    return videos.begin_upload(
        session=session, user=user, course_id=chapter.course_id, chapter_id=chapter.id, filename=name,
        content_type="video/mp4", declared_size=None, max_bytes=10_000_000,
    )


def assert_all_succeeded(failures: list[str]) -> None:
    assert not failures, f"{len(failures)} of {N} failed; first:\n{failures[0]}"


def test_simultaneous_add_chapter_all_succeed_with_gap_free_positions(session, engine, make_user):
    user = make_user()
    course, _ = setup_course(session, user, 0)

    results, failures = run_together(
        engine, lambda s, i: courses.add_chapter(session=s, user=user, course_id=course.id, title=f"Chapter {i}")
    )

    assert_all_succeeded(failures)
    assert chapter_positions(engine, course.id) == list(range(N))
    assert len({chapter.id for chapter in results}) == N


def test_simultaneous_uploads_into_one_chapter_all_get_a_position(session, engine, make_user):
    user = make_user()
    _, (chapter,) = setup_course(session, user, 1)
    first = begin(session, user, chapter, "already-there.mp4")
    session.commit()

    results, failures = run_together(engine, lambda s, i: begin(s, user, chapter, f"clip-{i}.mp4"))

    assert_all_succeeded(failures)
    order = video_order(engine, chapter.id)
    assert [position for _, position in order] == list(range(N + 1))
    assert order[0][0] == first.id
    assert {video.id for video in results} == {video_id for video_id, _ in order[1:]}


def test_simultaneous_moves_from_many_chapters_into_one(session, engine, make_user):
    user = make_user()
    _, (target, *sources) = setup_course(session, user, N + 1)
    existing = [begin(session, user, target, f"kept-{i}.mp4") for i in range(3)]
    moving = [begin(session, user, source, f"moved-{i}.mp4") for i, source in enumerate(sources)]
    session.commit()

    _, failures = run_together(
        engine, lambda s, i: videos.move_video(session=s, user=user, video_id=moving[i].id, chapter_id=target.id)
    )

    assert_all_succeeded(failures)
    order = video_order(engine, target.id)
    assert [position for _, position in order] == list(range(N + 3))
    assert [video_id for video_id, _ in order[:3]] == [v.id for v in existing]  # appended after them
    assert {video_id for video_id, _ in order[3:]} == {v.id for v in moving}
    assert all(video_order(engine, source.id) == [] for source in sources)


def test_simultaneous_moves_out_of_one_chapter_into_another(session, engine, make_user):
    user = make_user()
    _, (source, target) = setup_course(session, user, 2)
    moving = [begin(session, user, source, f"moved-{i}.mp4") for i in range(N + 2)]
    session.commit()

    # Each moves to the front of the target: both chapters are renumbered by every call.
    _, failures = run_together(
        engine,
        lambda s, i: videos.move_video(session=s, user=user, video_id=moving[i].id, chapter_id=target.id, position=0),
    )

    assert_all_succeeded(failures)
    assert [position for _, position in video_order(engine, target.id)] == list(range(N))
    assert video_order(engine, source.id) == [(moving[N].id, 0), (moving[N + 1].id, 1)]


def test_simultaneous_uploads_and_deletes_in_one_chapter(session, engine, make_user):
    user = make_user()
    _, (chapter,) = setup_course(session, user, 1)
    doomed = [begin(session, user, chapter, f"old-{i}.mp4") for i in range(N // 2)]
    session.commit()

    def work(s: Session, i: int) -> object:
        if i % 2:
            return videos.delete_video(session=s, user=user, video_id=doomed[i // 2].id)
        return begin(s, user, chapter, f"new-{i}.mp4")

    _, failures = run_together(engine, work)

    assert_all_succeeded(failures)
    order = video_order(engine, chapter.id)
    assert [position for _, position in order] == list(range(N // 2))
    assert not {v.id for v in doomed} & {video_id for video_id, _ in order}


@pytest.mark.parametrize("batch", [1, 3])
def test_simultaneous_batch_moves_into_one_chapter(session, engine, make_user, batch):
    user = make_user()
    _, (target, *sources) = setup_course(session, user, 11)
    per_source = [[begin(session, user, source, f"v{j}.mp4") for j in range(batch)] for source in sources]
    session.commit()

    _, failures = run_together(
        engine,
        lambda s, i: videos.move_videos(session=s, user=user, video_ids=[v.id for v in per_source[i]], chapter_id=target.id),
        n=len(sources),
    )

    assert not failures, failures[0]
    order = video_order(engine, target.id)
    assert [position for _, position in order] == list(range(len(sources) * batch))
    ids = [video_id for video_id, _ in order]
    for group in per_source:  # each batch lands together, in its own order
        start = ids.index(group[0].id)
        assert ids[start:start + batch] == [v.id for v in group]


# Rows that change between the ownership check and the lock --------------------------------------


@pytest.fixture
def meanwhile(engine, monkeypatch):
    """``meanwhile(module, action)``: the next lock_course taken in ``module`` first
    lets ``action(session)`` run and commit in another transaction, as if it had
    won the race just before the lock."""
    from course_app.services import ordering

    def arrange(module, action: Callable[[Session], object]) -> None:
        def lock_after_the_other_writer(session, course_id, **kwargs):
            monkeypatch.setattr(module, "lock_course", ordering.lock_course)
            with Session(engine) as other:
                action(other)
                other.commit()
            return ordering.lock_course(session, course_id, **kwargs)

        monkeypatch.setattr(module, "lock_course", lock_after_the_other_writer)

    return arrange


def test_an_upload_into_a_chapter_deleted_meanwhile_is_not_found(session, engine, make_user, meanwhile):
    from course_app.errors import NotFound

    user = make_user()
    _, (chapter, other) = setup_course(session, user, 2)
    meanwhile(videos, lambda s: courses.delete_chapter(session=s, user=user, chapter_id=chapter.id))

    with Session(engine) as s, pytest.raises(NotFound):
        begin(s, user, chapter)

    assert chapter_positions(engine, chapter.course_id) == [0]


def test_moving_a_video_moved_meanwhile_renumbers_the_chapter_it_is_in_now(session, engine, make_user, meanwhile):
    user = make_user()
    _, (a, b, c) = setup_course(session, user, 3)
    a0, a1 = begin(session, user, a, "a0.mp4"), begin(session, user, a, "a1.mp4")
    b0 = begin(session, user, b, "b0.mp4")
    session.commit()
    meanwhile(videos, lambda s: videos.move_video(session=s, user=user, video_id=a0.id, chapter_id=b.id, position=0))

    with Session(engine) as s:
        videos.move_video(session=s, user=user, video_id=a0.id, chapter_id=c.id)
        s.commit()

    assert video_order(engine, a.id) == [(a1.id, 0)]
    assert video_order(engine, b.id) == [(b0.id, 0)]
    assert video_order(engine, c.id) == [(a0.id, 0)]


def test_a_failed_upload_removed_meanwhile_is_left_alone(session, engine, make_user, meanwhile):
    user = make_user()
    _, (chapter,) = setup_course(session, user, 1)
    video, kept = begin(session, user, chapter, "gone.mp4"), begin(session, user, chapter, "kept.mp4")
    session.commit()
    meanwhile(videos, lambda s: videos.delete_video(session=s, user=user, video_id=video.id))

    with Session(engine) as s:
        assert videos.fail_upload(session=s, video_id=video.id, reason="stopped", remove_row=True) is None
        s.commit()

    assert video_order(engine, chapter.id) == [(kept.id, 0)]


def test_an_upload_into_a_course_deleted_meanwhile_is_not_found(session, engine, make_user, meanwhile):
    from course_app.errors import NotFound

    user = make_user()
    course, (chapter,) = setup_course(session, user, 1)
    meanwhile(videos, lambda s: courses.delete_course(session=s, user=user, course_id=course.id))

    with Session(engine) as s, pytest.raises(NotFound):
        begin(s, user, chapter)
