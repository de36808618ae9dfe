"""The course trash (course_app/services/trash.py) on SQLite and PostgreSQL:
moving videos and chapters to it (one transaction each, live order gap-free,
files kept), hiding them everywhere, listing, restoring, purging through the
outbox, and the expiry sweep."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from functools import partial

import pytest
from sqlmodel import Session, select

from course_app.db import session_scope
from course_app.errors import Conflict, Forbidden, InvalidInput, NotFound
from course_app.models import TRASH_POSITION_TOP, Chapter, StorageDeletion, UploadSession, Video, utcnow
from course_app.services import courses, outbox, outline, trash, upload_sessions, videos
from course_app.storage.local import LocalStorage
from tests.unit.test_batch import call, course_with

KEEP = timedelta(days=30)


def live_order(engine, chapter: Chapter) -> list[uuid.UUID]:
    """The chapter's live video ids as committed; their positions must be exactly 0..n-1."""
    with Session(engine) as fresh:
        rows = list(fresh.exec(select(Video.id, Video.position).where(
            Video.chapter_id == chapter.id, Video.deleted_at.is_(None)).order_by(Video.position)))
    assert [position for _, position in rows] == list(range(len(rows)))
    return [video_id for video_id, _ in rows]


def live_chapters(engine, course_id) -> list[uuid.UUID]:
    with Session(engine) as fresh:
        rows = list(fresh.exec(select(Chapter.id, Chapter.position).where(
            Chapter.course_id == course_id, Chapter.deleted_at.is_(None)).order_by(Chapter.position)))
    assert [position for _, position in rows] == list(range(len(rows)))
    return [chapter_id for chapter_id, _ in rows]


def snapshot(engine) -> dict:
    """Everything trashing, restoring or purging may change, as committed."""
    with Session(engine) as fresh:
        return {
            "videos": sorted((str(v.id), str(v.chapter_id), v.position, str(v.deleted_at), v.status)
                             for v in fresh.exec(select(Video))),
            "chapters": sorted((str(c.id), c.position, str(c.deleted_at)) for c in fresh.exec(select(Chapter))),
            "outbox": sorted(d.storage_key for d in fresh.exec(select(StorageDeletion))),
            "uploads": sorted((str(u.id), u.status) for u in fresh.exec(select(UploadSession))),
        }


def outbox_keys(engine) -> list[str]:
    with Session(engine) as fresh:
        return sorted(fresh.exec(select(StorageDeletion.storage_key)))


def sized(engine, rows: list[Video], size: int = 1000) -> None:
    """Give rows a stored size, as a finished upload would."""
    with session_scope(engine) as s:
        for row in rows:
            video = s.get(Video, row.id)
            video.size_bytes, video.status = size, "ready"
            s.add(video)


# Moving to the trash -------------------------------------------------------------------------


def test_trashed_videos_leave_the_order_keep_their_rows_and_queue_no_file(session, engine, make_user):
    user = make_user()
    course, (a, b), ([a0, a1, a2], [b0, b1]) = course_with(session, user, 3, 2)

    pending = call(engine, trash.trash_videos, user=user, video_ids=[a1.id, b0.id, str(a0.id)])

    assert pending == []
    assert live_order(engine, a) == [a2.id]
    assert live_order(engine, b) == [b1.id]
    assert outbox_keys(engine) == []
    with Session(engine) as fresh:
        parked = {v.id: v for v in fresh.exec(select(Video).where(Video.deleted_at.is_not(None)))}
    assert set(parked) == {a0.id, a1.id, b0.id}
    # Out of the live range, unique per chapter.
    assert all(v.position < TRASH_POSITION_TOP for v in parked.values())
    assert parked[a0.id].position != parked[a1.id].position


def test_trashing_one_by_one_keeps_parked_positions_unique_and_new_uploads_gap_free(session, engine, make_user):
    user = make_user()
    course, (a,), ([a0, a1, a2, a3],) = course_with(session, user, 4)

    for video in (a1, a0, a3):
        call(engine, trash.trash_video, user=user, video_id=video.id)
    added = call(engine, videos.begin_upload, user=user, course_id=course.id, chapter_id=a.id, filename="new.mp4",
                 content_type="video/mp4", declared_size=None, max_bytes=10_000_000)

    assert live_order(engine, a) == [a2.id, added.id]


def test_trashed_videos_are_hidden_from_every_listing_but_count_toward_the_quota(session, engine, make_user):
    user = make_user()
    course, (a, b), ([a0, a1], [b0]) = course_with(session, user, 2, 1)
    sized(engine, [a0, a1, b0])
    used_before = upload_sessions.bytes_in_use(session=session, user=user)

    call(engine, trash.trash_videos, user=user, video_ids=[a0.id])
    call(engine, trash.trash_chapter, user=user, chapter_id=b.id)
    session.expire_all()

    editor = outline.editor_outline(session=session, user=user, course_id=course.id, open_chapter_ids=[a.id, b.id])
    assert [s.chapter.id for s in editor.chapters] == [a.id]
    assert [(s.video_count, s.total_bytes) for s in editor.chapters] == [(1, 1000)]
    assert [v.id for v in editor.videos[a.id]] == [a1.id] and b.id not in editor.videos
    assert outline.videos_of_chapters(session=session, user=user, course_id=course.id, chapter_ids=[a.id, b.id]) == {
        a.id: [session.get(Video, a1.id)]}
    assert list(outline.find_videos(session=session, user=user, course_id=course.id, text="c")) == [a.id]
    assert [v.id for v in videos.course_videos(session=session, course_id=course.id)] == [a1.id]
    assert [c.id for c in courses.course_tree(session=session, user=user, course_id=course.id).chapters] == [a.id]
    [summary] = courses.list_courses(session=session, user=user)
    assert (summary.chapter_count, summary.video_count) == (1, 1)
    for video in (a0, b0):
        with pytest.raises(NotFound, match="trash"):
            videos.owned_video(session=session, user=user, video_id=video.id)
    with pytest.raises(NotFound, match="trash"):
        courses.owned_chapter(session=session, user=user, chapter_id=b.id)
    # Their files are kept, so their bytes still count.
    assert upload_sessions.bytes_in_use(session=session, user=user) == used_before == 3000


def test_trashed_rows_cannot_be_moved_renamed_or_uploaded_into(session, engine, make_user):
    user = make_user()
    course, (a, b), ([a0, a1], [b0]) = course_with(session, user, 2, 1)
    call(engine, trash.trash_videos, user=user, video_ids=[a0.id])
    call(engine, trash.trash_chapter, user=user, chapter_id=b.id)

    with pytest.raises(NotFound):
        call(engine, videos.move_videos, user=user, video_ids=[a0.id], chapter_id=a.id)
    with pytest.raises(NotFound):
        call(engine, videos.move_videos, user=user, video_ids=[a1.id], chapter_id=b.id)
    with pytest.raises(NotFound):
        call(engine, videos.rename_video, user=user, video_id=a0.id, title="Back")
    with pytest.raises(NotFound):
        call(engine, videos.begin_upload, user=user, course_id=course.id, chapter_id=b.id, filename="x.mp4",
             content_type="video/mp4", declared_size=None, max_bytes=10_000_000)
    with pytest.raises(Conflict):  # the order must name the live videos only
        call(engine, videos.reorder_videos, user=user, chapter_id=a.id, video_ids=[a1.id, a0.id])
    call(engine, videos.reorder_videos, user=user, chapter_id=a.id, video_ids=[a1.id])
    with pytest.raises(NotFound):
        call(engine, trash.trash_videos, user=user, video_ids=[a0.id])  # already in the trash


def test_trashing_a_stranger_s_or_a_bad_list_changes_nothing(session, engine, make_user):
    user, stranger = make_user(), make_user()
    _, (c0, c1), ([a0, a1], _) = course_with(session, user, 2, 1)
    _, (theirs_chapter,), ([theirs],) = course_with(session, stranger, 1)
    _, (elsewhere,), ([other],) = course_with(session, user, 1, title="Other")
    before = snapshot(engine)

    with pytest.raises(Forbidden):
        call(engine, trash.trash_videos, user=user, video_ids=[a0.id, theirs.id])
    with pytest.raises(Forbidden):
        call(engine, trash.trash_videos, user=stranger, video_ids=[theirs.id, a1.id])
    with pytest.raises(Forbidden):
        call(engine, trash.trash_chapters, user=stranger, chapter_ids=[theirs_chapter.id, c0.id])
    for fn, ids, error in [
        (trash.trash_videos, [a0.id, uuid.uuid4()], NotFound),
        (trash.trash_videos, [a0.id, a0.id], InvalidInput),
        (trash.trash_videos, [a0.id, "x"], InvalidInput),
        (trash.trash_videos, [], InvalidInput),
        (trash.trash_videos, [a0.id, other.id], InvalidInput),
        (trash.trash_chapters, [c0.id, str(c0.id)], InvalidInput),
        (trash.trash_chapters, str(c0.id), InvalidInput),
        (trash.trash_chapters, [c0.id, elsewhere.id], InvalidInput),
    ]:
        key = "video_ids" if fn is trash.trash_videos else "chapter_ids"
        with pytest.raises(error):
            call(engine, fn, user=user, **{key: ids})

    assert snapshot(engine) == before


def test_a_move_to_the_trash_failing_midway_changes_nothing(session, engine, make_user, monkeypatch):
    user = make_user()
    _, (a, b), _ = course_with(session, user, 3, 2)
    before = snapshot(engine)

    def renumber_fails(session, rows):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(trash, "renumber", renumber_fails)  # after the rows are marked and parked
    with pytest.raises(RuntimeError):
        call(engine, trash.trash_chapters, user=user, chapter_ids=[a.id])
    with pytest.raises(RuntimeError):
        call(engine, trash.trash_videos, user=user, video_ids=[v.id for v in videos.chapter_videos(
            session=session, chapter_id=b.id)])

    assert snapshot(engine) == before


def test_a_trashed_chapter_takes_its_videos_which_keep_their_places(session, engine, make_user):
    user = make_user()
    course, (c0, c1, c2), ([x0, x1], _, [z0]) = course_with(session, user, 2, 0, 1)

    call(engine, trash.trash_chapters, user=user, chapter_ids=[c0.id, c2.id])

    assert live_chapters(engine, course.id) == [c1.id]
    with Session(engine) as fresh:
        chapter = fresh.get(Chapter, c0.id)
        rows = {v.id: v for v in fresh.exec(select(Video))}
    assert chapter.position < TRASH_POSITION_TOP
    assert [(rows[i].position, rows[i].deleted_at) for i in (x0.id, x1.id)] == [
        (0, chapter.deleted_at), (1, chapter.deleted_at)]
    assert rows[z0.id].deleted_at is not None
    added = call(engine, courses.add_chapter, user=user, course_id=course.id, title="New")
    assert live_chapters(engine, course.id) == [c1.id, added.id]


def test_trashing_an_uploading_video_cancels_its_resumable_upload(session, engine, make_user, tmp_path):
    user = make_user()
    course, (chapter,), _ = course_with(session, user, 0)
    storage = LocalStorage(tmp_path / "storage")
    data = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(70_000)
    view, _ = upload_sessions.create(
        session_factory=partial(session_scope, engine), storage=storage, user=user, course_id=course.id,
        chapter_id=chapter.id, filename="big.mp4", size=len(data), fingerprint="v1:" + hashlib.sha1(data).hexdigest(),
        head=data[:8192], max_bytes=10**9, quota_bytes=10**10, configured_part_size=65536)

    pending = call(engine, trash.trash_video, user=user, video_id=view.session.video_id)

    with Session(engine) as fresh:
        upload = fresh.get(UploadSession, view.session.id)
        video = fresh.get(Video, view.session.video_id)
        [cancel] = fresh.exec(select(StorageDeletion))
    assert upload.status == "aborted"
    assert (video.status, video.error) == ("failed", trash.UPLOAD_CANCELLED)
    assert pending == [cancel.id] and cancel.multipart_upload_id == view.session.storage_upload_id
    # The same file again starts a new upload instead of resuming into the trash.
    again, created = upload_sessions.create(
        session_factory=partial(session_scope, engine), storage=storage, user=user, course_id=course.id,
        chapter_id=chapter.id, filename="big.mp4", size=len(data), fingerprint="v1:" + hashlib.sha1(data).hexdigest(),
        head=data[:8192], max_bytes=10**9, quota_bytes=10**10, configured_part_size=65536)
    assert created and again.session.video_id != view.session.video_id


# The list ------------------------------------------------------------------------------------


def test_the_trash_lists_chapters_with_their_videos_and_videos_on_their_own(session, engine, make_user):
    user = make_user()
    course, (a, b), ([a0, a1], [b0, b1, b2]) = course_with(session, user, 2, 3)
    sized(engine, [a0, a1, b0, b1, b2])
    call(engine, trash.trash_video, user=user, video_id=b2.id)  # before its chapter
    call(engine, trash.trash_video, user=user, video_id=a1.id)
    call(engine, trash.trash_chapter, user=user, chapter_id=b.id)
    session.expire_all()

    listing = trash.course_trash(session=session, user=user, course_id=course.id)

    assert [(i.kind, i.id, i.video_count, i.size_bytes, i.chapter_title, i.chapter_in_trash) for i in listing.items] == [
        ("chapter", b.id, 2, 2000, "Chapter 1", True),  # the most recent first
        ("video", a1.id, 1, 1000, "Chapter 0", False),
        ("video", b2.id, 1, 1000, "Chapter 1", True),
    ]
    assert listing.trashed_bytes == 4000 and listing.keep_days == 30
    assert all(i.expires_at - i.deleted_at == KEEP for i in listing.items)
    assert all(utcnow() - timedelta(minutes=5) < i.deleted_at <= utcnow() for i in listing.items)


def test_only_the_owner_sees_the_trash(session, engine, make_user):
    user, stranger = make_user(), make_user()
    course, _, ([a0],) = course_with(session, user, 1)
    call(engine, trash.trash_video, user=user, video_id=a0.id)

    with pytest.raises(Forbidden):
        trash.course_trash(session=session, user=stranger, course_id=course.id)
    with pytest.raises(NotFound):
        trash.course_trash(session=session, user=user, course_id=uuid.uuid4())


# Restore -------------------------------------------------------------------------------------


def test_a_restored_video_goes_back_to_the_end_of_its_chapter(session, engine, make_user):
    user = make_user()
    course, (a,), ([a0, a1, a2],) = course_with(session, user, 3)
    call(engine, trash.trash_video, user=user, video_id=a0.id)

    restored = call(engine, trash.restore_video, user=user, video_id=a0.id)

    assert restored.deleted_at is None
    assert live_order(engine, a) == [a1.id, a2.id, a0.id]
    with pytest.raises(NotFound, match="not in the trash"):
        call(engine, trash.restore_video, user=user, video_id=a0.id)
    assert trash.course_trash(session=session, user=user, course_id=course.id).items == []


def test_a_restored_chapter_comes_back_last_with_the_videos_trashed_with_it(session, engine, make_user):
    user = make_user()
    course, (a, b, c), ([a0, a1, a2], [b0], []) = course_with(session, user, 3, 1, 0)
    call(engine, trash.trash_video, user=user, video_id=a1.id)  # on its own, before the chapter
    call(engine, trash.trash_chapter, user=user, chapter_id=a.id)
    call(engine, courses.add_chapter, user=user, course_id=course.id, title="D")

    call(engine, trash.restore_chapter, user=user, chapter_id=a.id)

    order = live_chapters(engine, course.id)
    assert order[0] == b.id and order[-1] == a.id and len(order) == 4
    assert live_order(engine, a) == [a0.id, a2.id]
    [left] = trash.course_trash(session=session, user=user, course_id=course.id).items
    assert (left.kind, left.id, left.chapter_in_trash) == ("video", a1.id, False)


def test_restoring_a_video_whose_chapter_is_in_the_trash_brings_the_chapter_back_alone(session, engine, make_user):
    user = make_user()
    course, (a, b), ([a0, a1, a2], [b0]) = course_with(session, user, 3, 1)
    call(engine, trash.trash_chapter, user=user, chapter_id=a.id)

    call(engine, trash.restore_video, user=user, video_id=a2.id)

    assert live_chapters(engine, course.id) == [b.id, a.id]
    assert live_order(engine, a) == [a2.id]
    items = trash.course_trash(session=session, user=user, course_id=course.id).items
    assert sorted((i.kind, i.id) for i in items) == sorted([("video", a0.id), ("video", a1.id)])
    # The others come back one by one, each at the end.
    call(engine, trash.restore_video, user=user, video_id=a0.id)
    assert live_order(engine, a) == [a2.id, a0.id]


def test_restore_is_refused_to_strangers_and_for_live_or_unknown_rows(session, engine, make_user):
    user, stranger = make_user(), make_user()
    _, (a, b), ([a0, a1], _) = course_with(session, user, 2, 0)
    call(engine, trash.trash_video, user=user, video_id=a0.id)
    call(engine, trash.trash_chapter, user=user, chapter_id=b.id)
    before = snapshot(engine)

    with pytest.raises(Forbidden):
        call(engine, trash.restore_video, user=stranger, video_id=a0.id)
    with pytest.raises(Forbidden):
        call(engine, trash.restore_chapter, user=stranger, chapter_id=b.id)
    with pytest.raises(NotFound):
        call(engine, trash.restore_video, user=user, video_id=a1.id)
    with pytest.raises(NotFound):
        call(engine, trash.restore_chapter, user=user, chapter_id=a.id)
    with pytest.raises(NotFound):
        call(engine, trash.restore_video, user=user, video_id=uuid.uuid4())
    with pytest.raises(InvalidInput):
        call(engine, trash.restore_chapter, user=user, chapter_id="nope")

    assert snapshot(engine) == before


def test_restore_respects_the_chapter_limit(session, engine, make_user, monkeypatch):
    user = make_user()
    _, (a,), ([a0, a1],) = course_with(session, user, 2)
    call(engine, trash.trash_video, user=user, video_id=a0.id)
    monkeypatch.setattr(videos, "MAX_VIDEOS_PER_CHAPTER", 1)

    with pytest.raises(Conflict):
        call(engine, trash.restore_video, user=user, video_id=a0.id)


# Purge and sweep -----------------------------------------------------------------------------


def test_purging_removes_rows_and_queues_their_files(session, engine, make_user, tmp_path):
    user, stranger = make_user(), make_user()
    course, (a, b), ([a0, a1], [b0, b1]) = course_with(session, user, 2, 2)
    call(engine, trash.trash_video, user=user, video_id=a0.id)
    call(engine, trash.trash_video, user=user, video_id=b1.id)
    call(engine, trash.trash_chapter, user=user, chapter_id=b.id)

    with pytest.raises(Forbidden):
        call(engine, trash.purge_video, user=stranger, video_id=a0.id)
    with pytest.raises(NotFound):
        call(engine, trash.purge_video, user=user, video_id=a1.id)  # live: delete it first
    assert outbox_keys(engine) == []

    pending = call(engine, trash.purge_video, user=user, video_id=a0.id)
    pending += call(engine, trash.purge_chapter, user=user, chapter_id=b.id)  # with b1, trashed before it

    with Session(engine) as fresh:
        assert set(fresh.exec(select(Video.id))) == {a1.id}
        assert fresh.get(Chapter, b.id) is None
        assert sorted(fresh.exec(select(StorageDeletion.id))) == sorted(pending)
    assert outbox_keys(engine) == sorted(v.storage_key for v in (a0, b0, b1))
    assert trash.course_trash(session=session, user=user, course_id=course.id).items == []


def test_purge_then_the_outbox_deletes_the_stored_file(session, engine, make_user, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    user = make_user()
    course, (a,), ([a0, a1],) = course_with(session, user, 2)
    for row in (a0, a1):
        stored = storage.put_stream(row.storage_key, [b"video bytes " + row.id.bytes], content_type="video/mp4")
        call(engine, videos.finish_upload, video_id=row.id, stored=stored)
    call(engine, trash.trash_video, user=user, video_id=a0.id)
    factory = partial(session_scope, engine)

    assert outbox.process_pending_deletions(session_factory=factory, storage=storage) == (0, 0)
    assert storage.stat(a0.storage_key, a0.storage_key) is not None  # kept while in the trash

    pending = call(engine, trash.purge_video, user=user, video_id=a0.id)
    assert outbox.process_pending_deletions(session_factory=factory, storage=storage, ids=pending) == (1, 0)

    assert storage.stat(a0.storage_key, a0.storage_key) is None
    assert storage.stat(a1.storage_key, a1.storage_key) is not None


def test_the_sweep_purges_only_what_expired(session, engine, make_user):
    user = make_user()
    course, (a, b, c), ([a0, a1], [b0], [c0]) = course_with(session, user, 2, 1, 1)
    call(engine, trash.trash_video, user=user, video_id=a0.id)
    call(engine, trash.trash_chapter, user=user, chapter_id=b.id)
    with session_scope(engine) as s:  # trashed 31 days ago
        for row in (s.get(Video, a0.id), s.get(Chapter, b.id), s.get(Video, b0.id)):
            row.deleted_at = row.deleted_at - timedelta(days=31)
            s.add(row)
    call(engine, trash.trash_video, user=user, video_id=c0.id)  # just now
    factory = partial(session_scope, engine)
    before = snapshot(engine)

    dry = trash.sweep_trash(session_factory=factory, dry_run=True)
    assert (dry.videos, dry.chapters, dry.pending) == (2, 1, [])
    assert snapshot(engine) == before

    report = trash.sweep_trash(session_factory=factory)

    assert (report.videos, report.chapters, len(report.pending)) == (2, 1, 2)
    assert outbox_keys(engine) == sorted([a0.storage_key, b0.storage_key])
    items = trash.course_trash(session=session, user=user, course_id=course.id).items
    assert [(i.kind, i.id) for i in items] == [("video", c0.id)]
    assert live_order(engine, a) == [a1.id]
    # A month later the rest goes too; nothing is left to sweep after that.
    later = trash.sweep_trash(session_factory=factory, now=utcnow() + KEEP + timedelta(minutes=1))
    assert (later.videos, later.chapters) == (1, 0)
    assert trash.sweep_trash(session_factory=factory, now=utcnow() + 2 * KEEP).pending == []


def test_deleting_the_course_deletes_its_trash_for_good(session, engine, make_user):
    user = make_user()
    course, (a, b), ([a0], [b0]) = course_with(session, user, 1, 1)
    call(engine, trash.trash_video, user=user, video_id=a0.id)
    call(engine, trash.trash_chapter, user=user, chapter_id=b.id)

    pending = call(engine, courses.delete_course, user=user, course_id=course.id)

    assert len(pending) == 2 and outbox_keys(engine) == sorted([a0.storage_key, b0.storage_key])
    with Session(engine) as fresh:
        assert list(fresh.exec(select(Video))) == [] and list(fresh.exec(select(Chapter))) == []


# The command -----------------------------------------------------------------------------------


@pytest.fixture
def storage(local_storage):
    return local_storage


def test_cli_sweep_trash_purges_expired_items_and_their_files(
        session, engine, make_user, app_database, configured_storage, monkeypatch, capsys):
    import course_app.cli

    monkeypatch.setattr(course_app.cli, "migrate", lambda: None)
    user = make_user()
    _, _, ([old, young],) = course_with(session, user, 2)
    for row in (old, young):
        stored = configured_storage.put_stream(row.storage_key, [row.id.bytes], content_type="video/mp4")
        call(engine, videos.finish_upload, video_id=row.id, stored=stored)
    call(engine, trash.trash_videos, user=user, video_ids=[old.id, young.id])
    with session_scope(engine) as s:
        s.get(Video, old.id).deleted_at = utcnow() - KEEP - timedelta(hours=1)

    assert course_app.cli.main(["sweep-trash", "--dry-run"]) == 0
    assert "Would purge 1 video(s) and 0 chapter(s) in the trash for over 30 days." in capsys.readouterr().out
    assert configured_storage.stat(old.storage_key, old.storage_key) is not None

    assert course_app.cli.main(["sweep-trash", "--json"]) == 0
    assert '"videos_purged": 1' in capsys.readouterr().out
    assert configured_storage.stat(old.storage_key, old.storage_key) is None
    assert configured_storage.stat(young.storage_key, young.storage_key) is not None
    assert outbox_keys(engine) == []
