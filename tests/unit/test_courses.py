"""course_app/services/courses.py (and the schema it relies on), on SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from course_app.errors import Conflict, Forbidden, InvalidInput, NotFound
from course_app.models import Chapter, Course, StorageDeletion, Video
from course_app.services import courses, outline, trash


def stored_chapters(engine, course_id) -> list[tuple[str, int]]:
    """(title, position) of a course's live chapters as committed, in position order."""
    with Session(engine) as fresh:
        rows = fresh.exec(select(Chapter).where(Chapter.course_id == course_id, Chapter.deleted_at.is_(None))
                          .order_by(Chapter.position))
        return [(c.title, c.position) for c in rows]


def stored_course(engine, course_id) -> Course | None:
    with Session(engine) as fresh:
        return fresh.get(Course, course_id)


def course_with_chapters(session, user, *titles: str, title: str = "Course") -> tuple[Course, list[Chapter]]:
    course = courses.create_course(session=session, user=user, title=title)
    chapters = [courses.add_chapter(session=session, user=user, course_id=course.id, title=t) for t in titles]
    session.commit()
    return course, chapters


def stored_video_ids(engine) -> list[uuid.UUID]:
    with Session(engine) as fresh:
        return list(fresh.exec(select(Video.id)))


def pending_deletion_keys(engine) -> list[str]:
    with Session(engine) as fresh:
        return list(fresh.exec(select(StorageDeletion.storage_key)))


def add_video(session, course: Course, chapter: Chapter) -> Video:
    video = Video(course_id=course.id, chapter_id=chapter.id, title="Clip", filename="clip.mp4",
                  storage_key=f"videos/{course.owner_id}/{uuid.uuid4()}", position=0)
    session.add(video)
    session.commit()
    return video


# Creating and looking up courses ----------------------------------------------------


def test_instructor_creates_a_draft_course(session, engine, make_user):
    user = make_user()

    course = courses.create_course(session=session, user=user, title="  Intro to Pottery ", description="Clay\n\tand wheels")
    session.commit()

    stored = stored_course(engine, course.id)
    assert stored.owner_id == user.id
    assert stored.title == "Intro to Pottery"
    assert stored.description == "Clay\n\tand wheels"
    assert stored.status == "draft"


def test_a_user_whose_role_cannot_create_courses_is_refused(session, engine, make_user):
    user = make_user()
    user.role = "viewer"

    with pytest.raises(Forbidden):
        courses.create_course(session=session, user=user, title="Sneaky")

    session.rollback()
    with Session(engine) as fresh:
        assert fresh.exec(select(Course)).all() == []


@pytest.mark.parametrize(
    ("title", "message"),
    [("", "cannot be empty"), ("   ", "cannot be empty"), ("x" * 201, "too long"),
     ("Tab\there", "control characters"), ("New\nline", "control characters"), ("Nul\x00", "control characters"),
     ("Lone \ud800", "control characters"), (None, "must be text"), (42, "must be text")],
)
def test_course_title_is_validated(session, engine, make_user, title, message):
    user = make_user()

    with pytest.raises(InvalidInput, match=message):
        courses.create_course(session=session, user=user, title=title)

    session.commit()
    with Session(engine) as fresh:
        assert fresh.exec(select(Course)).all() == []


def test_title_of_exactly_the_maximum_length_is_accepted(session, engine, make_user):
    course = courses.create_course(session=session, user=make_user(), title="é" * 200)
    session.commit()

    assert stored_course(engine, course.id).title == "é" * 200


def test_description_refuses_control_characters_but_not_newlines(session, make_user):
    user = make_user()

    with pytest.raises(InvalidInput, match="Description contains control characters"):
        courses.create_course(session=session, user=user, title="T", description="bell\x07")
    with pytest.raises(InvalidInput, match="Description is too long"):
        courses.create_course(session=session, user=user, title="T", description="d" * 5001)


def test_owned_course_returns_your_course(session, make_user):
    user = make_user()
    course, _ = course_with_chapters(session, user)

    assert courses.owned_course(session=session, user=user, course_id=str(course.id)).id == course.id
    assert courses.owned_course(session=session, user=user, course_id=course.id).id == course.id


def test_owned_course_refuses_another_user(session, make_user):
    owner, intruder = make_user(), make_user()
    course, _ = course_with_chapters(session, owner)

    with pytest.raises(Forbidden):
        courses.owned_course(session=session, user=intruder, course_id=course.id)


@pytest.mark.parametrize("course_id", ["not-a-uuid", "", None, 42, "'; DROP TABLE courses; --"])
def test_owned_course_refuses_bad_ids(session, make_user, course_id):
    with pytest.raises(InvalidInput, match="course id is not valid"):
        courses.owned_course(session=session, user=make_user(), course_id=course_id)


def test_owned_course_missing_is_not_found(session, make_user):
    with pytest.raises(NotFound):
        courses.owned_course(session=session, user=make_user(), course_id=uuid.uuid4())


def test_list_courses_shows_only_your_courses_with_chapter_counts(session, make_user):
    alice, bob = make_user(), make_user()
    three, chapters = course_with_chapters(session, alice, "A", "B", "C", title="Three chapters")
    empty, _ = course_with_chapters(session, alice, title="No chapters")
    theirs, _ = course_with_chapters(session, bob, "X", title="Bob's")
    add_video(session, three, chapters[0])

    alice_view = {s.course.id: (s.chapter_count, s.video_count) for s in courses.list_courses(session=session, user=alice)}
    bob_view = {s.course.id: (s.chapter_count, s.video_count) for s in courses.list_courses(session=session, user=bob)}

    assert alice_view == {three.id: (3, 1), empty.id: (0, 0)}
    assert bob_view == {theirs.id: (1, 0)}


def test_list_courses_puts_the_most_recently_changed_first(session, make_user):
    user = make_user()
    older, _ = course_with_chapters(session, user, title="Older")
    newer, _ = course_with_chapters(session, user, title="Newer")
    assert [s.course.id for s in courses.list_courses(session=session, user=user)] == [newer.id, older.id]

    courses.add_chapter(session=session, user=user, course_id=older.id, title="Touch")
    session.commit()

    assert [s.course.id for s in courses.list_courses(session=session, user=user)] == [older.id, newer.id]


def test_update_course_changes_title_and_description(session, engine, make_user):
    user = make_user()
    course, _ = course_with_chapters(session, user)

    courses.update_course(session=session, user=user, course_id=course.id, title="Renamed", description="New")
    session.commit()

    stored = stored_course(engine, course.id)
    assert (stored.title, stored.description) == ("Renamed", "New")


def test_update_course_by_another_user_is_refused(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, _ = course_with_chapters(session, owner, title="Original")

    with pytest.raises(Forbidden):
        courses.update_course(session=session, user=intruder, course_id=course.id, title="Hijacked")
    session.commit()

    assert stored_course(engine, course.id).title == "Original"


# Chapters -----------------------------------------------------------------------------


def test_add_chapter_appends_at_the_next_position(session, engine, make_user):
    user = make_user()
    course, _ = course_with_chapters(session, user, "One", "Two")

    chapter = courses.add_chapter(session=session, user=user, course_id=course.id, title=" Three ")
    session.commit()

    assert chapter.position == 2
    assert stored_chapters(engine, course.id) == [("One", 0), ("Two", 1), ("Three", 2)]


def test_add_chapter_to_someone_elses_course_is_refused(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, _ = course_with_chapters(session, owner, "Mine")

    with pytest.raises(Forbidden):
        courses.add_chapter(session=session, user=intruder, course_id=course.id, title="Theirs")
    session.commit()

    assert stored_chapters(engine, course.id) == [("Mine", 0)]


@pytest.mark.parametrize(("title", "message"), [("", "cannot be empty"), ("y" * 201, "too long"), ("a\x1bb", "control")])
def test_chapter_title_is_validated(session, engine, make_user, title, message):
    user = make_user()
    course, _ = course_with_chapters(session, user, "Kept")

    with pytest.raises(InvalidInput, match=f"Chapter title.*{message}"):
        courses.add_chapter(session=session, user=user, course_id=course.id, title=title)
    with pytest.raises(InvalidInput, match=f"Chapter title.*{message}"):
        courses.rename_chapter(session=session, user=user, chapter_id=course_with_chapters_first(session, course), title=title)
    session.commit()

    assert stored_chapters(engine, course.id) == [("Kept", 0)]


def course_with_chapters_first(session, course) -> uuid.UUID:
    return courses.ordered_chapters(session=session, course_id=course.id)[0].id


def test_rename_chapter(session, engine, make_user):
    user = make_user()
    course, chapters = course_with_chapters(session, user, "Old name", "Other")

    courses.rename_chapter(session=session, user=user, chapter_id=str(chapters[0].id), title="New name")
    session.commit()

    assert stored_chapters(engine, course.id) == [("New name", 0), ("Other", 1)]


def test_rename_someone_elses_chapter_is_refused(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, chapters = course_with_chapters(session, owner, "Original")

    with pytest.raises(Forbidden):
        courses.rename_chapter(session=session, user=intruder, chapter_id=chapters[0].id, title="Defaced")
    session.commit()

    assert stored_chapters(engine, course.id) == [("Original", 0)]


def test_owned_chapter_checks_it_belongs_to_the_given_course(session, make_user):
    user = make_user()
    _, first_chapters = course_with_chapters(session, user, "In first")
    second, _ = course_with_chapters(session, user, "In second")

    with pytest.raises(InvalidInput, match="not part of this course"):
        courses.owned_chapter(session=session, user=user, chapter_id=first_chapters[0].id, course_id=second.id)
    with pytest.raises(NotFound):
        courses.owned_chapter(session=session, user=user, chapter_id=uuid.uuid4())
    with pytest.raises(InvalidInput, match="chapter id is not valid"):
        courses.owned_chapter(session=session, user=user, chapter_id="chapter-1")


def test_positions_stay_dense_and_ordered_after_moves_to_the_trash(session, engine, make_user):
    user = make_user()
    course, chapters = course_with_chapters(session, user, "A", "B", "C", "D", "E")

    trash.trash_chapter(session=session, user=user, chapter_id=chapters[1].id)  # B
    trash.trash_chapter(session=session, user=user, chapter_id=chapters[0].id)  # A
    trash.trash_chapter(session=session, user=user, chapter_id=chapters[4].id)  # E (last)
    session.commit()

    assert stored_chapters(engine, course.id) == [("C", 0), ("D", 1)]
    added = courses.add_chapter(session=session, user=user, course_id=course.id, title="F")
    session.commit()
    assert added.position == 2
    assert stored_chapters(engine, course.id) == [("C", 0), ("D", 1), ("F", 2)]
    assert [c.chapter.title for c in outline.chapter_summaries(session=session, user=user, course_id=course.id)] == [
        "C", "D", "F"]


def test_trashing_someone_elses_chapter_is_refused(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, chapters = course_with_chapters(session, owner, "A", "B")

    with pytest.raises(Forbidden):
        trash.trash_chapter(session=session, user=intruder, chapter_id=chapters[0].id)
    session.commit()

    assert stored_chapters(engine, course.id) == [("A", 0), ("B", 1)]


def test_a_trashed_chapter_keeps_its_videos_and_their_files_until_purged(session, engine, make_user):
    user = make_user()
    course, (a, b) = course_with_chapters(session, user, "A", "B")
    doomed = add_video(session, course, a)
    kept = add_video(session, course, b)

    trash.trash_chapter(session=session, user=user, chapter_id=a.id)
    session.commit()

    assert stored_chapters(engine, course.id) == [("B", 0)]
    assert sorted(stored_video_ids(engine)) == sorted([doomed.id, kept.id])
    assert pending_deletion_keys(engine) == []
    assert [s.video_count for s in courses.list_courses(session=session, user=user)] == [1]

    trash.purge_chapter(session=session, user=user, chapter_id=a.id)
    session.commit()

    assert stored_video_ids(engine) == [kept.id]
    assert pending_deletion_keys(engine) == [doomed.storage_key]


def test_reorder_chapters_with_a_permutation_persists(session, engine, make_user):
    user = make_user()
    course, (a, b, c, d) = course_with_chapters(session, user, "A", "B", "C", "D")

    result = courses.reorder_chapters(
        session=session, user=user, course_id=str(course.id), chapter_ids=[str(d.id), str(b.id), str(a.id), str(c.id)]
    )
    session.commit()

    assert [ch.title for ch in result] == ["D", "B", "A", "C"]
    assert stored_chapters(engine, course.id) == [("D", 0), ("B", 1), ("A", 2), ("C", 3)]


def test_reverse_order_swaps_every_position(session, engine, make_user):
    user = make_user()
    course, chapters = course_with_chapters(session, user, *"ABCDEFGH")

    courses.reorder_chapters(session=session, user=user, course_id=course.id, chapter_ids=[c.id for c in reversed(chapters)])
    session.commit()

    assert stored_chapters(engine, course.id) == [(t, i) for i, t in enumerate("HGFEDCBA")]


def _refused_reorder(session, engine, user, course, chapter_ids, error):
    before = stored_chapters(engine, course.id)
    with pytest.raises(error):
        courses.reorder_chapters(session=session, user=user, course_id=course.id, chapter_ids=chapter_ids)
    session.commit()  # whatever the service left in the session would be written now
    assert stored_chapters(engine, course.id) == before


def test_reorder_missing_a_chapter_is_refused_and_changes_nothing(session, engine, make_user):
    user = make_user()
    course, (a, b, c) = course_with_chapters(session, user, "A", "B", "C")

    _refused_reorder(session, engine, user, course, [c.id, a.id], Conflict)


def test_reorder_naming_a_chapter_twice_is_refused_and_changes_nothing(session, engine, make_user):
    user = make_user()
    course, (a, b, c) = course_with_chapters(session, user, "A", "B", "C")

    _refused_reorder(session, engine, user, course, [c.id, a.id, a.id, b.id], Conflict)
    _refused_reorder(session, engine, user, course, [c.id, a.id, a.id], Conflict)


def test_reorder_with_another_courses_chapter_is_refused_and_changes_nothing(session, engine, make_user):
    user = make_user()
    course, (a, b) = course_with_chapters(session, user, "A", "B")
    _, (foreign,) = course_with_chapters(session, user, "Foreign", title="Other course")

    _refused_reorder(session, engine, user, course, [b.id, foreign.id], Conflict)
    _refused_reorder(session, engine, user, course, [b.id, a.id, foreign.id], Conflict)


@pytest.mark.parametrize("chapter_ids", ["not a list", None, {"a": 1}, ["not-a-uuid"]])
def test_reorder_with_a_malformed_list_is_refused_and_changes_nothing(session, engine, make_user, chapter_ids):
    user = make_user()
    course, _ = course_with_chapters(session, user, "A", "B")

    _refused_reorder(session, engine, user, course, chapter_ids, InvalidInput)


def test_reorder_someone_elses_course_is_refused(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, (a, b) = course_with_chapters(session, owner, "A", "B")

    _refused_reorder(session, engine, intruder, course, [b.id, a.id], Forbidden)


def test_course_tree_lists_chapters_in_order(session, make_user):
    user = make_user()
    course, (a, b) = course_with_chapters(session, user, "A", "B")
    add_video(session, course, b)
    courses.reorder_chapters(session=session, user=user, course_id=course.id, chapter_ids=[b.id, a.id])

    tree = courses.course_tree(session=session, user=user, course_id=course.id)

    assert [c.title for c in tree.chapters] == ["B", "A"]


# Status and deletion --------------------------------------------------------------------


def test_publishing_needs_a_chapter(session, engine, make_user):
    user = make_user()
    course, _ = course_with_chapters(session, user)

    with pytest.raises(Conflict, match="at least one chapter"):
        courses.set_course_status(session=session, user=user, course_id=course.id, status="published")
    session.commit()
    assert stored_course(engine, course.id).status == "draft"

    courses.add_chapter(session=session, user=user, course_id=course.id, title="Intro")
    courses.set_course_status(session=session, user=user, course_id=course.id, status="published")
    session.commit()
    assert stored_course(engine, course.id).status == "published"

    courses.set_course_status(session=session, user=user, course_id=course.id, status="draft")
    session.commit()
    assert stored_course(engine, course.id).status == "draft"


@pytest.mark.parametrize("status", ["archived", "", None, ["published"]])
def test_unknown_status_is_refused(session, engine, make_user, status):
    user = make_user()
    course, _ = course_with_chapters(session, user, "A")

    with pytest.raises(InvalidInput):
        courses.set_course_status(session=session, user=user, course_id=course.id, status=status)
    session.commit()

    assert stored_course(engine, course.id).status == "draft"


def test_someone_else_cannot_publish_your_course(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, _ = course_with_chapters(session, owner, "A")

    with pytest.raises(Forbidden):
        courses.set_course_status(session=session, user=intruder, course_id=course.id, status="published")
    session.commit()

    assert stored_course(engine, course.id).status == "draft"


def test_delete_course_removes_it_and_its_chapters(session, engine, make_user):
    user = make_user()
    course, _ = course_with_chapters(session, user, "A", "B")
    kept, _ = course_with_chapters(session, user, "K", title="Kept")

    courses.delete_course(session=session, user=user, course_id=str(course.id))
    session.commit()

    assert stored_course(engine, course.id) is None
    assert stored_chapters(engine, course.id) == []
    assert stored_chapters(engine, kept.id) == [("K", 0)]
    assert [s.course.id for s in courses.list_courses(session=session, user=user)] == [kept.id]


def test_delete_someone_elses_course_is_refused(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, _ = course_with_chapters(session, owner, "A")

    with pytest.raises(Forbidden):
        courses.delete_course(session=session, user=intruder, course_id=course.id)
    session.commit()

    assert stored_course(engine, course.id) is not None
    assert stored_chapters(engine, course.id) == [("A", 0)]


def test_delete_course_removes_its_videos_through_the_storage_outbox(session, engine, make_user):
    user = make_user()
    course, (a, b) = course_with_chapters(session, user, "A", "B")
    other, (other_chapter,) = course_with_chapters(session, user, "O", title="Other")
    first, second = add_video(session, course, a), add_video(session, course, b)
    kept = add_video(session, other, other_chapter)

    courses.delete_course(session=session, user=user, course_id=course.id)
    session.commit()

    assert stored_course(engine, course.id) is None
    assert stored_video_ids(engine) == [kept.id]
    assert sorted(pending_deletion_keys(engine)) == sorted([first.storage_key, second.storage_key])


def test_refused_delete_course_keeps_videos_and_queues_no_deletion(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    course, (a,) = course_with_chapters(session, owner, "A")
    video = add_video(session, course, a)

    with pytest.raises(Forbidden):
        courses.delete_course(session=session, user=intruder, course_id=course.id)
    session.commit()

    assert stored_video_ids(engine) == [video.id]
    assert pending_deletion_keys(engine) == []


# Schema ------------------------------------------------------------------------------------


def test_chapter_positions_are_unique_per_course_in_the_database(session, engine, make_user):
    user = make_user()
    course, _ = course_with_chapters(session, user, "A")
    other, _ = course_with_chapters(session, user, "Other A", title="Other")

    session.add(Chapter(course_id=course.id, title="Same place", position=0))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()

    assert stored_chapters(engine, course.id) == [("A", 0)]
    assert stored_chapters(engine, other.id) == [("Other A", 0)]  # the same position in another course is fine


def test_every_foreign_key_column_is_indexed(engine):
    inspector = sa.inspect(engine)
    checked, unindexed = [], []
    for table in inspector.get_table_names():
        leading = {tuple(ix["column_names"][:1]) for ix in inspector.get_indexes(table)}
        leading |= {tuple(uc["column_names"][:1]) for uc in inspector.get_unique_constraints(table)}
        leading.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"][:1]))
        for fk in inspector.get_foreign_keys(table):
            column = f"{table}.{fk['constrained_columns'][0]}"
            checked.append(column)
            if tuple(fk["constrained_columns"][:1]) not in leading:
                unindexed.append(column)

    assert {"courses.owner_id", "chapters.course_id", "videos.chapter_id", "auth_sessions.user_id"} <= set(checked)
    assert unindexed == []


def test_chapters_unique_constraint_is_declared(engine):
    constraints = sa.inspect(engine).get_unique_constraints("chapters")

    assert any(sorted(uc["column_names"]) == ["course_id", "position"] for uc in constraints)
