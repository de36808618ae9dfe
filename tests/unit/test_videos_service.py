"""course_app/services/videos.py, outbox.py and reconcile.py on SQLite and
PostgreSQL, with a LocalStorage in a temp folder."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from course_app.api.schemas import VideoPublic
from course_app.cli import format_report
from course_app.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from course_app.models import Chapter, Course, StorageDeletion, Video
from course_app.services import courses, outbox, reconcile, videos
from course_app.storage.base import StorageError
from course_app.storage.local import LocalStorage
from tests.deleting import delete_chapter_for_good, delete_video_for_good
from tests.processed import as_if_processed

MAX = 10_000_000


class FlakyDeletes(LocalStorage):
    """A LocalStorage whose ``delete`` fails while ``down`` is set."""

    down = False

    def delete(self, key: str, file_id: str) -> None:
        if self.down:
            raise StorageError("storage is unreachable")
        super().delete(key, file_id)


@pytest.fixture
def storage(tmp_path) -> FlakyDeletes:
    return FlakyDeletes(tmp_path / "storage")


def course_with(session, user, *chapter_titles: str) -> tuple[Course, list[Chapter]]:
    course = courses.create_course(session=session, user=user, title="Course")
    chapters = [courses.add_chapter(session=session, user=user, course_id=course.id, title=t) for t in chapter_titles]
    session.commit()
    return course, chapters


def begin(session, user, chapter: Chapter, filename: str = "clip.mp4", **kwargs) -> Video:
    options = {"title": None, "content_type": "video/mp4", "declared_size": None, "max_bytes": MAX, **kwargs}
    return videos.begin_upload(
        session=session, user=user, course_id=chapter.course_id, chapter_id=chapter.id, filename=filename, **options
    )


def ready_video(session, storage, user, chapter: Chapter, data: bytes | None = None, filename: str = "clip.mp4") -> Video:
    """A video through the whole upload life cycle: row, bytes, processed, ready; committed."""
    video = begin(session, user, chapter, filename)
    session.commit()
    stored = storage.put_stream(video.storage_key, [data or uuid.uuid4().bytes * 100], content_type="video/mp4")
    video = videos.finish_upload(session=session, video_id=video.id, stored=stored)
    as_if_processed(session, video.id)
    session.commit()
    return video


def committed_order(engine, chapter_id) -> list[tuple[uuid.UUID, int]]:
    """(video id, position) of a chapter's videos as committed, in position order."""
    with Session(engine) as fresh:
        rows = fresh.exec(select(Video).where(Video.chapter_id == chapter_id).order_by(Video.position))
        return [(v.id, v.position) for v in rows]


def committed_ids(engine, chapter_id) -> list[uuid.UUID]:
    order = committed_order(engine, chapter_id)
    assert [position for _, position in order] == list(range(len(order)))  # 0..n-1, so unique
    return [video_id for video_id, _ in order]


def committed_deletions(engine) -> list[StorageDeletion]:
    with Session(engine) as fresh:
        return list(fresh.exec(select(StorageDeletion).order_by(StorageDeletion.id)))


def committed_video(engine, video_id) -> Video | None:
    with Session(engine) as fresh:
        return fresh.get(Video, video_id)


def stored_keys(storage) -> set[str]:
    return {obj.key for obj in storage.list("")}


# The upload life cycle ----------------------------------------------------------------------


def test_begin_upload_writes_the_intent_row_before_any_byte(session, engine, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")

    first = begin(session, user, chapter, "../../Week_1 intro.mp4")
    second = begin(session, user, chapter, "second.webm", title="  My title ", content_type="video/webm")
    session.commit()

    stored = committed_video(engine, first.id)
    assert stored.status == "uploading"
    assert stored.storage_key == f"videos/{user.id}/{first.id}"
    assert stored.filename == "Week_1 intro.mp4"
    assert stored.title == "Week 1 intro"
    assert stored.size_bytes is None and stored.sha1 is None
    assert VideoPublic.of(stored).video_url == f"/api/videos/{stored.id}/stream"  # derived; 409 until ready
    assert committed_video(engine, second.id).title == "My title"
    assert committed_video(engine, second.id).content_type == "video/webm"
    assert committed_ids(engine, chapter.id) == [first.id, second.id]
    assert stored_keys(storage) == set()


def test_begin_upload_refuses_a_declared_size_over_the_limit(session, engine, make_user):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")

    with pytest.raises(TooLarge):
        begin(session, user, chapter, declared_size=1001, max_bytes=1000)
    session.rollback()

    assert committed_order(engine, chapter.id) == []


def test_begin_upload_checks_the_chapter(session, engine, make_user):
    owner, stranger = make_user(), make_user()
    course, (chapter,) = course_with(session, owner, "Intro")
    _, (other_chapter,) = course_with(session, owner, "Elsewhere")

    with pytest.raises(InvalidInput, match="not part of this course"):
        videos.begin_upload(session=session, user=owner, course_id=course.id, chapter_id=other_chapter.id,
                            filename="a.mp4", content_type="video/mp4", declared_size=None, max_bytes=MAX)
    with pytest.raises(Forbidden):
        begin(session, stranger, chapter)
    with pytest.raises(NotFound):
        videos.begin_upload(session=session, user=owner, course_id=course.id, chapter_id=uuid.uuid4(),
                            filename="a.mp4", content_type="video/mp4", declared_size=None, max_bytes=MAX)
    session.rollback()

    with Session(engine) as fresh:
        assert fresh.exec(select(Video)).all() == []


def test_finish_upload_hands_the_row_to_processing_with_what_storage_confirmed(session, engine, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    video = begin(session, user, chapter)
    session.commit()
    stored = storage.put_stream(video.storage_key, [data], content_type="video/mp4")

    videos.finish_upload(session=session, video_id=video.id, stored=stored)
    session.commit()

    stored = committed_video(engine, video.id)
    assert (stored.status, stored.stage, stored.error) == ("processing", "verifying", None)
    assert stored.size_bytes == len(data)
    assert stored.sha1 == hashlib.sha1(data).hexdigest()
    assert stored.backblaze_file_id == stored.storage_key
    assert VideoPublic.of(stored).video_url == f"/api/videos/{stored.id}/stream"  # derived; 409 until ready
    assert b"".join(storage.open_range(stored.storage_key, stored.storage_key)) == data
    as_if_processed(session, video.id)
    session.commit()
    assert VideoPublic.of(committed_video(engine, video.id)).video_url == f"/api/videos/{video.id}/stream"


def test_finish_upload_of_a_row_deleted_meanwhile_sends_the_file_to_the_outbox(session, engine, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    video = begin(session, user, chapter)
    session.commit()
    stored = storage.put_stream(video.storage_key, [b"bytes"], content_type="video/mp4")
    delete_video_for_good(session=session, user=user, video_id=video.id)
    session.commit()
    outbox_before = len(committed_deletions(engine))

    assert videos.finish_upload(session=session, video_id=video.id, stored=stored) is None
    session.commit()

    deletions = committed_deletions(engine)
    assert len(deletions) == outbox_before + 1
    assert (deletions[-1].storage_key, deletions[-1].file_id) == (video.storage_key, stored.file_id)
    assert committed_video(engine, video.id) is None


def test_fail_upload_keeping_the_row_marks_it_failed_and_queues_any_partial_file(session, engine, make_user):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    video = begin(session, user, chapter)
    session.commit()

    videos.fail_upload(session=session, video_id=video.id, reason="Storage is unavailable", remove_row=False)
    session.commit()

    stored = committed_video(engine, video.id)
    assert (stored.status, stored.error) == ("failed", "Storage is unavailable")
    [deletion] = committed_deletions(engine)
    assert (deletion.storage_key, deletion.file_id) == (video.storage_key, None)


def test_fail_upload_removing_the_row_renumbers_the_chapter(session, engine, make_user):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    first, doomed, last = (begin(session, user, chapter, f"{n}.mp4") for n in ("a", "b", "c"))
    session.commit()

    videos.fail_upload(session=session, video_id=doomed.id, reason="upload stopped", remove_row=True)
    session.commit()

    assert committed_ids(engine, chapter.id) == [first.id, last.id]
    assert [d.storage_key for d in committed_deletions(engine)] == [doomed.storage_key]


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("..\\..\\Windows\\clip.mp4", "clip.mp4"),
        ("a\x00b\x1fc\x7f.mp4", "abc.mp4"),
        ("evil\u202egpj.mp4", "evilgpj.mp4"),
        ("x" * 1000 + ".mp4", "x" * 255),
        ("/", "video"),
        ("..", "video"),
        ("a/..", "video"),
        ("", "video"),
        (None, "video"),
    ],
)
def test_clean_filename_keeps_only_a_harmless_name(given, kept):
    assert videos.clean_filename(given) == kept


# Order ------------------------------------------------------------------------------------


def test_reorder_videos_puts_them_in_the_given_order(session, engine, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    a, b, c, d = (ready_video(session, storage, user, chapter) for _ in range(4))

    videos.reorder_videos(session=session, user=user, chapter_id=chapter.id, video_ids=[str(c.id), str(a.id), d.id, b.id])
    session.commit()

    assert committed_ids(engine, chapter.id) == [c.id, a.id, d.id, b.id]


@pytest.mark.parametrize("wrong", ["missing", "duplicate", "foreign", "extra"])
def test_reorder_videos_refuses_anything_but_a_permutation(session, engine, make_user, storage, wrong):
    user = make_user()
    _, (chapter, other) = course_with(session, user, "Intro", "Other")
    a, b, c = (ready_video(session, storage, user, chapter) for _ in range(3))
    elsewhere = ready_video(session, storage, user, other)
    order = {
        "missing": [c.id, a.id],
        "duplicate": [c.id, a.id, a.id],
        "foreign": [c.id, a.id, elsewhere.id],
        "extra": [c.id, a.id, b.id, elsewhere.id],
    }[wrong]

    with pytest.raises(Conflict):
        videos.reorder_videos(session=session, user=user, chapter_id=chapter.id, video_ids=order)
    session.rollback()

    assert committed_ids(engine, chapter.id) == [a.id, b.id, c.id]
    assert committed_ids(engine, other.id) == [elsewhere.id]


def test_reorder_videos_of_someone_elses_chapter_is_forbidden(session, engine, make_user, storage):
    owner, stranger = make_user(), make_user()
    _, (chapter,) = course_with(session, owner, "Intro")
    a, b = (ready_video(session, storage, owner, chapter) for _ in range(2))

    with pytest.raises(Forbidden):
        videos.reorder_videos(session=session, user=stranger, chapter_id=chapter.id, video_ids=[b.id, a.id])
    session.rollback()

    assert committed_ids(engine, chapter.id) == [a.id, b.id]


def test_move_video_to_another_chapter_renumbers_both(session, engine, make_user, storage):
    user = make_user()
    _, (intro, deep) = course_with(session, user, "Intro", "Deep dive")
    a, b, c = (ready_video(session, storage, user, intro) for _ in range(3))
    x, y = (ready_video(session, storage, user, deep) for _ in range(2))

    videos.move_video(session=session, user=user, video_id=a.id, chapter_id=deep.id, position=1)
    session.commit()
    assert committed_ids(engine, intro.id) == [b.id, c.id]
    assert committed_ids(engine, deep.id) == [x.id, a.id, y.id]
    assert committed_video(engine, a.id).chapter_id == deep.id

    videos.move_video(session=session, user=user, video_id=c.id, chapter_id=deep.id)  # default: last
    session.commit()
    assert committed_ids(engine, intro.id) == [b.id]
    assert committed_ids(engine, deep.id) == [x.id, a.id, y.id, c.id]


def test_move_video_within_its_chapter(session, engine, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    a, b, c = (ready_video(session, storage, user, chapter) for _ in range(3))

    videos.move_video(session=session, user=user, video_id=c.id, chapter_id=chapter.id, position=0)
    session.commit()
    assert committed_ids(engine, chapter.id) == [c.id, a.id, b.id]

    videos.move_video(session=session, user=user, video_id=c.id, chapter_id=chapter.id, position=99)
    session.commit()
    assert committed_ids(engine, chapter.id) == [a.id, b.id, c.id]


def test_move_video_refuses_a_chapter_of_another_course_or_user(session, engine, make_user, storage):
    owner, stranger = make_user(), make_user()
    _, (intro,) = course_with(session, owner, "Intro")
    _, (other_course_chapter,) = course_with(session, owner, "Other course")
    _, (strangers_chapter,) = course_with(session, stranger, "Theirs")
    a, b = (ready_video(session, storage, owner, intro) for _ in range(2))

    with pytest.raises(InvalidInput, match="not part of this course"):
        videos.move_video(session=session, user=owner, video_id=a.id, chapter_id=other_course_chapter.id)
    session.rollback()
    with pytest.raises(Forbidden):
        videos.move_video(session=session, user=owner, video_id=a.id, chapter_id=strangers_chapter.id)
    session.rollback()
    with pytest.raises(Forbidden):
        videos.move_video(session=session, user=stranger, video_id=a.id, chapter_id=strangers_chapter.id)
    session.rollback()
    with pytest.raises(InvalidInput):
        videos.move_video(session=session, user=owner, video_id=a.id, chapter_id=intro.id, position=-1)
    session.rollback()

    assert committed_ids(engine, intro.id) == [a.id, b.id]
    assert committed_order(engine, other_course_chapter.id) == []
    assert committed_order(engine, strangers_chapter.id) == []


# Deletion for good (trash, then purge) through the outbox ----------------------------------------------------------------


def test_purging_a_video_removes_the_row_and_records_the_file_in_one_transaction(session, engine, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    a, b, c = (ready_video(session, storage, user, chapter) for _ in range(3))

    pending = delete_video_for_good(session=session, user=user, video_id=b.id)
    assert session.get(StorageDeletion, pending.id) is not None
    session.rollback()  # both halves go together...
    assert committed_ids(engine, chapter.id) == [a.id, b.id, c.id]
    assert committed_deletions(engine) == []

    pending = delete_video_for_good(session=session, user=user, video_id=b.id)
    session.commit()  # ...and are committed together

    assert committed_ids(engine, chapter.id) == [a.id, c.id]
    [deletion] = committed_deletions(engine)
    assert deletion.id == pending.id
    assert (deletion.storage_key, deletion.file_id, deletion.attempts) == (b.storage_key, b.storage_key, 0)
    assert b.storage_key in stored_keys(storage)  # the file goes only when the outbox runs


def test_purging_a_video_of_someone_else_is_forbidden(session, engine, make_user, storage):
    owner, stranger = make_user(), make_user()
    _, (chapter,) = course_with(session, owner, "Intro")
    video = ready_video(session, storage, owner, chapter)

    with pytest.raises(Forbidden):
        delete_video_for_good(session=session, user=stranger, video_id=video.id)
    with pytest.raises(NotFound):
        delete_video_for_good(session=session, user=owner, video_id=uuid.uuid4())
    session.rollback()

    assert committed_ids(engine, chapter.id) == [video.id]
    assert committed_deletions(engine) == []


def test_process_pending_deletions_deletes_the_file_and_the_outbox_row(session, engine, make_user, storage, session_factory):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    doomed, kept = (ready_video(session, storage, user, chapter) for _ in range(2))
    delete_video_for_good(session=session, user=user, video_id=doomed.id)
    session.commit()

    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage) == (1, 0)

    assert committed_deletions(engine) == []
    assert stored_keys(storage) == {kept.storage_key}


def test_carry_out_tells_the_configured_storage_about_the_given_rows(
        session, engine, make_user, app_database, configured_storage):
    storage = configured_storage
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    first, second, kept = (ready_video(session, storage, user, chapter) for _ in range(3))
    pending = delete_video_for_good(session=session, user=user, video_id=first.id)
    delete_video_for_good(session=session, user=user, video_id=second.id)
    session.commit()

    asyncio.run(outbox.carry_out(ids=[pending.id]))
    assert stored_keys(storage) == {second.storage_key, kept.storage_key}
    assert [d.storage_key for d in committed_deletions(engine)] == [second.storage_key]

    asyncio.run(outbox.carry_out())  # every due row
    assert stored_keys(storage) == {kept.storage_key}
    assert committed_deletions(engine) == []


def test_a_failed_storage_deletion_is_kept_and_retried_later(session, engine, make_user, storage, session_factory):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    video = ready_video(session, storage, user, chapter)
    delete_video_for_good(session=session, user=user, video_id=video.id)
    session.commit()
    storage.down = True
    before = datetime.now(timezone.utc)

    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage) == (0, 1)

    [row] = committed_deletions(engine)
    assert row.attempts == 1
    assert row.last_error == "storage is unreachable"
    assert row.next_attempt_at > before
    assert video.storage_key in stored_keys(storage)

    # Not due yet: a run right away leaves it alone, even with storage back.
    storage.down = False
    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage) == (0, 0)
    assert committed_deletions(engine)[0].attempts == 1

    # Another failure backs off further.
    storage.down = True
    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage, due_only=False) == (0, 1)
    [row] = committed_deletions(engine)
    assert row.attempts == 2

    # Once due and storage answers, it is done.
    with session_factory() as db:
        db.get(StorageDeletion, row.id).next_attempt_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    storage.down = False
    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage) == (1, 0)
    assert committed_deletions(engine) == []
    assert stored_keys(storage) == set()


def test_an_unfinished_upload_deletion_removes_exactly_its_key(session, engine, make_user, storage, session_factory):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    video = begin(session, user, chapter)
    session.commit()
    storage.put_stream(video.storage_key, [b"partial"], content_type="video/mp4")
    neighbour = video.storage_key + "-kept"
    storage.put_stream(neighbour, [b"someone else"], content_type="video/mp4")
    videos.fail_upload(session=session, video_id=video.id, reason="Storage failed", remove_row=False)
    session.commit()

    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage) == (1, 0)

    assert stored_keys(storage) == {neighbour}
    assert committed_video(engine, video.id).status == "failed"


def test_purging_a_chapter_queues_every_file_of_its_videos(session, engine, make_user, storage, session_factory):
    user = make_user()
    course, (doomed, kept) = course_with(session, user, "Doomed", "Kept")
    gone = [ready_video(session, storage, user, doomed) for _ in range(3)]
    survivor = ready_video(session, storage, user, kept)

    delete_chapter_for_good(session=session, user=user, chapter_id=doomed.id)
    session.commit()

    assert sorted(d.storage_key for d in committed_deletions(engine)) == sorted(v.storage_key for v in gone)
    with Session(engine) as fresh:
        assert list(fresh.exec(select(Video.id))) == [survivor.id]
        assert [(c.id, c.position) for c in fresh.exec(select(Chapter).where(Chapter.course_id == course.id))] == [
            (kept.id, 0)
        ]
    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage) == (3, 0)
    assert stored_keys(storage) == {survivor.storage_key}


def test_deleting_a_course_queues_every_file_of_its_videos(session, engine, make_user, storage, session_factory):
    user = make_user()
    course, (one, two) = course_with(session, user, "One", "Two")
    other_course, (other,) = course_with(session, user, "Other")
    gone = [ready_video(session, storage, user, one), ready_video(session, storage, user, two),
            ready_video(session, storage, user, two)]
    survivor = ready_video(session, storage, user, other)

    courses.delete_course(session=session, user=user, course_id=course.id)
    session.commit()

    assert sorted(d.storage_key for d in committed_deletions(engine)) == sorted(v.storage_key for v in gone)
    with Session(engine) as fresh:
        assert list(fresh.exec(select(Video.id))) == [survivor.id]
        assert fresh.get(Course, course.id) is None and fresh.get(Course, other_course.id) is not None
    assert outbox.process_pending_deletions(session_factory=session_factory, storage=storage) == (3, 0)
    assert stored_keys(storage) == {survivor.storage_key}


# Reconciliation ------------------------------------------------------------------------------


def kinds(report) -> list[tuple[str, str]]:
    return sorted((p.kind, p.key) for p in report.problems)


def test_check_videos_is_ok_when_database_and_storage_agree(session, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    for _ in range(2):
        ready_video(session, storage, user, chapter)

    report = reconcile.check_videos(session=session, storage=storage)

    assert report.ok and report.problems == []
    assert (report.rows_checked, report.objects_checked) == (2, 2)
    assert report.as_dict()["ok"] is True


def test_check_videos_reports_every_kind_of_disagreement(session, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    fine = ready_video(session, storage, user, chapter)
    lost = ready_video(session, storage, user, chapter)
    storage.delete(lost.storage_key, lost.storage_key)
    resized = ready_video(session, storage, user, chapter)
    resized.size_bytes += 1
    session.add(resized)
    orphan = f"videos/{user.id}/{uuid.uuid4()}"
    storage.put_stream(orphan, [b"nobody's"], content_type="video/mp4")
    queued = ready_video(session, storage, user, chapter)
    delete_video_for_good(session=session, user=user, video_id=queued.id)
    session.commit()

    report = reconcile.check_videos(session=session, storage=storage)

    assert not report.ok
    assert kinds(report) == sorted([
        ("missing_file", lost.storage_key),
        ("size_mismatch", resized.storage_key),
        ("orphan_file", orphan),
        ("pending_deletion", queued.storage_key),
    ])
    assert fine.storage_key not in {p.key for p in report.problems}
    assert {p.video_id for p in report.problems if p.kind in ("missing_file", "size_mismatch")} == {
        str(lost.id), str(resized.id)
    }
    assert report.as_dict()["ok"] is False
    assert "orphan_file" in format_report(report)


def test_check_videos_reports_a_sha1_mismatch_and_a_stuck_upload(session, make_user, storage):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    altered = ready_video(session, storage, user, chapter)
    altered.sha1 = "0" * 40
    session.add(altered)
    stuck = begin(session, user, chapter)
    stuck.created_at = datetime.now(timezone.utc) - timedelta(hours=2)
    session.add(stuck)
    fresh_upload = begin(session, user, chapter)
    session.commit()

    report = reconcile.check_videos(session=session, storage=storage)

    assert kinds(report) == sorted([("sha1_mismatch", altered.storage_key), ("stuck_upload", stuck.storage_key)])
    assert fresh_upload.storage_key not in {p.key for p in report.problems}


def test_check_videos_is_ok_again_once_the_outbox_ran(session, engine, make_user, storage, session_factory):
    user = make_user()
    _, (chapter,) = course_with(session, user, "Intro")
    video = ready_video(session, storage, user, chapter)
    delete_video_for_good(session=session, user=user, video_id=video.id)
    session.commit()
    assert [p.kind for p in reconcile.check_videos(session=session, storage=storage).problems] == ["pending_deletion"]

    outbox.process_pending_deletions(session_factory=session_factory, storage=storage)

    session.expire_all()
    assert reconcile.check_videos(session=session, storage=storage).ok
