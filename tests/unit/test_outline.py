"""course_app/services/outline.py on SQLite and PostgreSQL: what the editor reads
of a course, in a constant number of queries."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlmodel import Session

from course_app.errors import Forbidden, InvalidInput, NotFound
from course_app.models import Chapter, Course, User, Video
from course_app.services import courses, outline


def build_course(
    session, user: User, chapters: int, videos_each: int, title: str = "Course"
) -> tuple[Course, list[Chapter], dict]:
    """A committed course; videos cycle through the statuses, ready ones 1000*(j+1) bytes."""
    course = courses.create_course(session=session, user=user, title=title)
    made = [courses.add_chapter(session=session, user=user, course_id=course.id, title=f"Chapter {i}")
            for i in range(chapters)]
    by_chapter: dict[uuid.UUID, list[Video]] = {}
    for chapter in made:
        for j in range(videos_each):
            status = ("ready", "uploading", "failed")[j % 3]
            video = Video(course_id=course.id, chapter_id=chapter.id, title=f"Clip {j}", filename=f"clip_{j}.mp4",
                          storage_key=f"videos/{user.id}/{uuid.uuid4()}", status=status, position=j,
                          size_bytes=1000 * (j + 1) if status == "ready" else None)
            session.add(video)
            by_chapter.setdefault(chapter.id, []).append(video)
    session.commit()
    return course, made, by_chapter


def add(session, chapter: Chapter, title: str, filename: str = "clip.mp4", status: str = "ready",
        position: int = 0) -> Video:
    video = Video(course_id=chapter.course_id, chapter_id=chapter.id, title=title, filename=filename,
                  storage_key=f"videos/x/{uuid.uuid4()}", status=status, position=position)
    session.add(video)
    session.commit()
    return video


@contextmanager
def counted(engine):
    """Count the SQL statements sent while the block runs."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def ids(videos) -> list[uuid.UUID]:
    return [v.id for v in videos]


# editor_outline --------------------------------------------------------------------------


def test_outline_summarizes_every_chapter_in_order(session, make_user):
    user = make_user()
    course, chapters, by_chapter = build_course(session, user, 3, 4)
    courses.reorder_chapters(session=session, user=user, course_id=course.id,
                             chapter_ids=[chapters[2].id, chapters[0].id, chapters[1].id])
    empty = courses.add_chapter(session=session, user=user, course_id=course.id, title="Empty")
    session.commit()

    result = outline.editor_outline(session=session, user=user, course_id=course.id)

    assert result.course.id == course.id
    assert [s.chapter.id for s in result.chapters] == [chapters[2].id, chapters[0].id, chapters[1].id, empty.id]
    first = result.chapters[0]
    # four videos: ready (1000 bytes), uploading, failed, ready (4000 bytes)
    assert (first.video_count, first.total_bytes) == (4, 5000)
    assert first.status_counts == {"ready": 2, "uploading": 1, "processing": 0, "failed": 1}
    assert (result.chapters[-1].video_count, result.chapters[-1].total_bytes) == (0, 0)
    assert result.chapters[-1].status_counts == {"ready": 0, "uploading": 0, "processing": 0, "failed": 0}
    assert result.videos == {}


def test_outline_returns_the_videos_of_open_chapters_only_in_order(session, make_user):
    user = make_user()
    course, chapters, by_chapter = build_course(session, user, 3, 3)
    empty = courses.add_chapter(session=session, user=user, course_id=course.id, title="Empty")
    session.commit()
    courses_videos = by_chapter[chapters[1].id]
    # reverse chapter 1 so position order differs from insertion order
    from course_app.services import videos as video_service
    video_service.reorder_videos(session=session, user=user, chapter_id=chapters[1].id,
                                 video_ids=list(reversed(ids(courses_videos))))
    session.commit()

    result = outline.editor_outline(session=session, user=user, course_id=course.id,
                                    open_chapter_ids=[str(chapters[1].id), empty.id])

    assert set(result.videos) == {chapters[1].id, empty.id}
    assert ids(result.videos[chapters[1].id]) == list(reversed(ids(courses_videos)))
    assert result.videos[empty.id] == []


def test_outline_ignores_open_ids_that_are_not_chapters_of_the_course(session, make_user):
    user, stranger = make_user(), make_user()
    course, chapters, _ = build_course(session, user, 2, 2)
    other_course, other_chapters, _ = build_course(session, user, 1, 2, title="Other")
    _, strangers_chapters, _ = build_course(session, stranger, 1, 2)

    result = outline.editor_outline(
        session=session, user=user, course_id=course.id,
        open_chapter_ids=[chapters[0].id, other_chapters[0].id, strangers_chapters[0].id, uuid.uuid4(),
                          "not-an-id", 42, None, {"id": 1}],
    )

    assert set(result.videos) == {chapters[0].id}
    assert all(v.course_id == course.id for v in result.videos[chapters[0].id])


@pytest.mark.parametrize("open_ids", ["abc", 7, {"a": 1}, None])
def test_outline_refuses_open_ids_that_are_not_a_list(session, make_user, open_ids):
    user = make_user()
    course, _, _ = build_course(session, user, 1, 1)
    with pytest.raises(InvalidInput):
        outline.editor_outline(session=session, user=user, course_id=course.id, open_chapter_ids=open_ids)


def test_outline_is_for_the_owner_only(session, make_user):
    user, stranger = make_user(), make_user()
    course, chapters, _ = build_course(session, user, 1, 1)
    with pytest.raises(Forbidden):
        outline.editor_outline(session=session, user=stranger, course_id=course.id, open_chapter_ids=[chapters[0].id])
    with pytest.raises(Forbidden):
        outline.chapter_summaries(session=session, user=stranger, course_id=course.id)
    with pytest.raises(Forbidden):
        outline.videos_of_chapters(session=session, user=stranger, course_id=course.id, chapter_ids=[chapters[0].id])
    with pytest.raises(Forbidden):
        outline.find_videos(session=session, user=stranger, course_id=course.id, text="clip")
    with pytest.raises(NotFound):
        outline.editor_outline(session=session, user=user, course_id=uuid.uuid4())
    with pytest.raises(InvalidInput):
        outline.editor_outline(session=session, user=user, course_id="nope")


def test_chapter_summaries_match_the_outline(session, make_user):
    user = make_user()
    course, _, _ = build_course(session, user, 3, 5)
    summaries = outline.chapter_summaries(session=session, user=user, course_id=course.id)
    assert summaries == outline.editor_outline(session=session, user=user, course_id=course.id).chapters
    assert [s.video_count for s in summaries] == [5, 5, 5]
    assert summaries[0].status_counts == {"ready": 2, "uploading": 2, "processing": 0, "failed": 1}
    assert summaries[0].total_bytes == 1000 + 4000


# videos_of_chapters ----------------------------------------------------------------------


def test_videos_of_chapters_in_chapter_order_ignoring_foreign_ids(session, make_user):
    user, stranger = make_user(), make_user()
    course, chapters, by_chapter = build_course(session, user, 3, 2)
    _, other_chapters, _ = build_course(session, user, 1, 2, title="Other")
    _, strangers_chapters, _ = build_course(session, stranger, 1, 2)
    empty = courses.add_chapter(session=session, user=user, course_id=course.id, title="Empty")
    session.commit()

    grouped = outline.videos_of_chapters(
        session=session, user=user, course_id=course.id,
        chapter_ids=[empty.id, str(chapters[2].id), chapters[0].id, other_chapters[0].id, strangers_chapters[0].id, "x"],
    )

    assert list(grouped) == [chapters[0].id, chapters[2].id, empty.id]
    assert ids(grouped[chapters[0].id]) == ids(by_chapter[chapters[0].id])
    assert ids(grouped[chapters[2].id]) == ids(by_chapter[chapters[2].id])
    assert grouped[empty.id] == []
    assert outline.videos_of_chapters(session=session, user=user, course_id=course.id, chapter_ids=[]) == {}


# find_videos -------------------------------------------------------------------------------


@pytest.fixture
def searchable(session, make_user):
    user = make_user()
    course = courses.create_course(session=session, user=user, title="Searchable")
    first, second = (courses.add_chapter(session=session, user=user, course_id=course.id, title=t) for t in ("A", "B"))
    session.commit()
    made = {
        "intro": add(session, second, "Intro to Rust", "intro.mp4", position=0),
        "percent": add(session, first, "100% done", "final.mp4", position=0),
        "underscore": add(session, first, "Lesson", "week_1.MP4", status="failed", position=1),
        "plain": add(session, first, "Week 11 recap", "week11.mp4", status="uploading", position=2),
        "bang": add(session, second, "Wow! Great", "wow.mp4", position=1),
    }
    return user, course, first, second, made


def test_find_matches_title_or_filename_in_any_case(session, searchable):
    user, course, first, second, made = searchable
    found = outline.find_videos(session=session, user=user, course_id=course.id, text="  INTRO ")
    assert {k: ids(v) for k, v in found.items()} == {second.id: [made["intro"].id]}
    found = outline.find_videos(session=session, user=user, course_id=course.id, text=".mp4")
    assert list(found) == [first.id, second.id]  # chapter order, and in each chapter position order
    assert ids(found[first.id]) == [made["percent"].id, made["underscore"].id, made["plain"].id]
    assert ids(found[second.id]) == [made["intro"].id, made["bang"].id]


@pytest.mark.parametrize(("text", "expected"), [
    ("%", ["percent"]),  # not "everything"
    ("0% d", ["percent"]),
    ("k_1", ["underscore"]),  # "_" is not "any one character": "week11" does not match
    ("_", ["underscore"]),
    ("!", ["bang"]),  # the escape character itself
    ("w! g", ["bang"]),
    ("nothing like this", []),
])
def test_like_wildcards_match_literally(session, searchable, text, expected):
    user, course, _, _, made = searchable
    found = outline.find_videos(session=session, user=user, course_id=course.id, text=text)
    assert sorted(v.id for vs in found.values() for v in vs) == sorted(made[k].id for k in expected)


def test_find_filters_by_status_with_or_without_text(session, searchable):
    user, course, first, _, made = searchable
    found = outline.find_videos(session=session, user=user, course_id=course.id, statuses=["failed", "uploading"])
    assert {k: ids(v) for k, v in found.items()} == {first.id: [made["underscore"].id, made["plain"].id]}
    found = outline.find_videos(session=session, user=user, course_id=course.id, text="week", statuses=("uploading",))
    assert {k: ids(v) for k, v in found.items()} == {first.id: [made["plain"].id]}
    everything = outline.find_videos(session=session, user=user, course_id=course.id)
    assert sum(len(v) for v in everything.values()) == len(made)


def test_find_stays_inside_the_course(session, searchable, make_user):
    user, course, _, _, _ = searchable
    other, (chapter,), _ = build_course(session, user, 1, 0, title="Other")
    add(session, chapter, "Intro elsewhere")
    found = outline.find_videos(session=session, user=user, course_id=course.id, text="intro")
    assert all(v.course_id == course.id for vs in found.values() for v in vs)
    assert len([v for vs in found.values() for v in vs]) == 1


@pytest.mark.parametrize(("text", "statuses"), [
    (None, ()), (5, ()), (["intro"], ()), ("x" * 201, ()), ("bad\x00text", ()), ("tab\there", ()),
    ("", ["deleted"]), ("", "ready"), ("", [None]), ("", [["ready"]]), ("", None),
])
def test_find_validates_its_input(session, searchable, text, statuses):
    user, course, _, _, _ = searchable
    with pytest.raises(InvalidInput):
        outline.find_videos(session=session, user=user, course_id=course.id, text=text, statuses=statuses)


def test_find_accepts_the_longest_search(session, searchable):
    user, course, _, _, _ = searchable
    assert outline.find_videos(session=session, user=user, course_id=course.id, text="x" * 200) == {}


# Query counts ------------------------------------------------------------------------------


def count_queries(engine, user: User, course: Course, chapters: list[Chapter]) -> dict[str, int]:
    """Statements each read sends, in a fresh session (nothing cached), opening half the chapters."""
    open_ids = [c.id for c in chapters[::2]]
    counts = {}
    calls = {
        "outline": lambda s: outline.editor_outline(session=s, user=user, course_id=course.id, open_chapter_ids=open_ids),
        "summaries": lambda s: outline.chapter_summaries(session=s, user=user, course_id=course.id),
        "videos": lambda s: outline.videos_of_chapters(session=s, user=user, course_id=course.id, chapter_ids=open_ids),
        "find": lambda s: outline.find_videos(session=s, user=user, course_id=course.id, text="clip", statuses=["ready"]),
    }
    for name, call in calls.items():
        with Session(engine) as fresh:
            fresh.connection()  # check out the connection first: a pool ping is no query of ours
            with counted(engine) as statements:
                result = call(fresh)
                if name == "outline":  # every attribute the editor reads is loaded already
                    [(s.chapter.title, s.video_count) for s in result.chapters]
                    [v.title for vs in result.videos.values() for v in vs]
            counts[name] = len(statements)
    return counts


def test_queries_do_not_grow_with_the_course(session, engine, make_user):
    user = make_user()
    small = build_course(session, user, 2, 2, title="Small")
    large = build_course(session, user, 20, 20, title="Large")

    small_counts = count_queries(engine, user, small[0], small[1])
    large_counts = count_queries(engine, user, large[0], large[1])

    assert small_counts == large_counts
    assert large_counts == {"outline": 4, "summaries": 3, "videos": 2, "find": 2}
