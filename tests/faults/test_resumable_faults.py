"""A resumable upload (upload_sessions.create / store_part / complete) killed at
each step, on SQLite and PostgreSQL, local disk and the B2 simulator. After the
checker's repair the database and storage agree; an upload that can go on is
left open and the browser's resume finishes it; nothing finished is lost."""

from __future__ import annotations

import os

import pytest
from sqlmodel import Session, select

from course_app.models import UploadSession, Video
from course_app.services import reconcile, upload_sessions, videos
from course_app.storage import local_disk, local_parts
from course_app.storage.b2 import B2Storage
from course_app.storage.base import PartInfo
from course_app.storage.keys import TEMP_MARKER
from course_app.storage.local import LocalStorage
from tests.faults.conftest import (
    assert_consistent,
    crash_expected,
    kinds,
    part_of,
    part_size_for,
    repair,
    send_part,
    sha1,
    video_bytes,
)


def crash_row(engine) -> Video:
    with Session(engine) as s:
        (row,) = s.exec(select(Video).where(Video.title == "crash"))
        return row


def the_session(engine) -> UploadSession:
    with Session(engine) as s:
        (upload,) = [u for u in s.exec(select(UploadSession)) if u.fingerprint == "v1:crash"]
        return upload


def start(session_factory, storage, place, data):
    return upload_sessions.create(
        session_factory=session_factory, storage=storage, user=place.user, course_id=place.course_id,
        chapter_id=place.chapter_id, filename="crash.mp4", title="crash", size=len(data), fingerprint="v1:crash",
        head=data[:8192], max_bytes=2**30, quota_bytes=2**35, configured_part_size=part_size_for(storage),
    )


def resume(session_factory, storage, place, data):
    view, created = start(session_factory, storage, place, data)
    assert not created
    for number in view.missing_parts:
        send_part(session_factory, storage, place, view.session, data, number)
    return upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                    upload_id=view.session.id)


DATA_PARTS = 3


def crash_data(storage) -> bytes:
    return video_bytes(DATA_PARTS * part_size_for(storage) - 17, seed=9)


# Create ------------------------------------------------------------------------------


def test_crash_before_the_row_leaves_nothing(engine, storage, dying, process, place, finished, session_factory,
                                             monkeypatch):
    kept = finished()
    monkeypatch.setattr(videos, "begin_upload", lambda **_: process.crash("before the row"))

    with crash_expected(process):
        start(session_factory, dying(storage), place, crash_data(storage))
    monkeypatch.undo()

    assert repair(engine, storage).before.ok
    assert_consistent(engine, storage, kept)


def test_crash_before_storage_starts_the_upload_fails_the_row(
        engine, storage, dying, process, place, finished, session_factory, monkeypatch):
    kept = finished()
    monkeypatch.setattr(type(storage), "start_multipart", lambda *_a, **_k: process.crash("before the bytes"))

    with crash_expected(process):
        start(session_factory, dying(storage), place, crash_data(storage))
    monkeypatch.undo()

    upload = the_session(engine)
    assert upload.status == "active" and upload.storage_upload_id is None
    result = repair(engine, storage)
    assert kinds(result.before) == ["stuck_upload"]
    assert the_session(engine).status == "expired"
    row = crash_row(engine)
    assert row.status == "failed" and row.error == reconcile.STUCK_REASON
    assert_consistent(engine, storage, kept)


def test_crash_after_storage_started_the_upload_before_its_id_was_saved(
        engine, storage, dying, process, place, finished, session_factory, monkeypatch):
    kept = finished()
    real_start = type(storage).start_multipart

    def start_then_crash(self, *args, **kwargs):
        real_start(self, *args, **kwargs)
        process.crash("after start_multipart")

    monkeypatch.setattr(type(storage), "start_multipart", start_then_crash)
    with crash_expected(process):
        start(session_factory, dying(storage), place, crash_data(storage))
    monkeypatch.undo()

    assert len(list(storage.list_unfinished("videos/"))) == 1
    result = repair(engine, storage)
    assert kinds(result.before) == ["stuck_upload", "unknown_upload"]
    assert list(storage.list_unfinished("videos/")) == []
    assert crash_row(engine).status == "failed"
    assert_consistent(engine, storage, kept)


# Parts --------------------------------------------------------------------------------


def crash_mid_part(storage, process, monkeypatch, where: str) -> None:
    """Make the next put_part die part-way. Local disk: ``bytes``, after half the
    part's bytes were written in place into the upload's data file (nothing else
    shows it), or ``record``, while the part's record was being written (its temp
    file is left). B2: while the part is sent."""
    if isinstance(storage, B2Storage):
        monkeypatch.setattr(storage.api.session.raw_api, "upload_part", lambda *_a, **_k: process.crash("mid-part"))
    elif where == "bytes":
        real_put_part = LocalStorage.put_part

        def half_part(self, key, upload_id, number, chunks, *, size):
            def cut_off():
                yield next(iter(chunks))
                process.crash("mid-part")

            return real_put_part(self, key, upload_id, number, cut_off(), size=size)

        monkeypatch.setattr(LocalStorage, "put_part", half_part)
    else:
        def half_record(folder, number, size, sha1):
            with open(os.path.join(folder, f"{number}.part{TEMP_MARKER}0123456789abcdef"), "x") as out:
                out.write('{"size": ')
            process.crash("while recording the part")

        monkeypatch.setattr(local_parts, "write_part_record", half_record)


# B2 keeps no part records of its own: the "record" crash point exists on local disk only.
@pytest.mark.parametrize("where, storage", [("bytes", "local"), ("bytes", "b2"), ("record", "local")],
                         indirect=["storage"])
def test_crash_mid_part_then_the_browser_resumes(
        engine, storage, dying, process, place, finished, session_factory, monkeypatch, where):
    kept = finished()
    data = crash_data(storage)
    view, _ = start(session_factory, storage, place, data)
    send_part(session_factory, storage, place, view.session, data, 1)
    crash_mid_part(storage, process, monkeypatch, where)

    with crash_expected(process):
        send_part(session_factory, dying(storage), place, view.session, data, 2)
    monkeypatch.undo()

    # The upload can go on: the checker leaves it open (and removes a half-written
    # part record; half a part's bytes in the data file are simply not recorded).
    result = repair(engine, storage)
    assert kinds(result.before) == (["leftover_file"] if where == "record" else [])
    assert the_session(engine).status == "active"
    if isinstance(storage, LocalStorage):
        upload = the_session(engine)
        assert storage.list_parts(upload.storage_key, upload.storage_upload_id) == [
            PartInfo(1, upload.chunk_size, sha1(data[: upload.chunk_size]))]
    assert_consistent(engine, storage, kept, allow_open_uploads=True)

    video = resume(session_factory, storage, place, data)

    assert video.status == "processing" and video.size_bytes == len(data)
    assert repair(engine, storage).before.ok
    assert_consistent(engine, storage, {**kept, video.id: data})


def test_crash_while_a_part_is_sent_again_then_complete_asks_for_it(
        engine, storage, dying, process, place, finished, session_factory, monkeypatch):
    """Part 2, confirmed, is sent again (no SHA1 given, so it is not skipped) and the
    process dies part-way. B2 still holds the earlier copy; local disk, which writes
    parts in place, dropped that part's record first: complete asks for it again."""
    kept = finished()
    data = crash_data(storage)
    upload = all_parts_sent(session_factory, storage, place, data)
    crash_mid_part(storage, process, monkeypatch, "bytes")
    chunk = part_of(data, upload, 2)

    with crash_expected(process):
        upload_sessions.store_part(
            session_factory=session_factory, storage=dying(storage), user=place.user, upload_id=upload.id,
            number=2, size=len(chunk), chunks=iter([chunk[: len(chunk) // 2], chunk[len(chunk) // 2:]]),
            client_sha1=None)
    monkeypatch.undo()

    assert repair(engine, storage).before.ok
    try:
        video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                         upload_id=upload.id)
        assert isinstance(storage, B2Storage)
    except upload_sessions.MissingParts as missing:
        assert isinstance(storage, LocalStorage) and missing.missing == [2]
        assert the_session(engine).status == "active"
        send_part(session_factory, storage, place, upload, data, 2)
        video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                         upload_id=upload.id)

    assert video.status == "processing" and video.size_bytes == len(data)
    assert_consistent(engine, storage, {**kept, video.id: data})


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_power_cut_after_a_part_was_confirmed_loses_at_most_its_record_and_complete_asks_for_it(
        engine, storage, place, finished, session_factory):
    """A part's record gets no sync of its own (its bytes' fdatasync is the part's one
    sync, local_parts.py): the ledger's commit can outlive it in a power cut. What the
    disk then holds: the part's bytes, its record gone (or cut short: no record) and
    maybe its temp file. The checker leaves the open upload alone, complete asks for
    the part again, and the file completes whole."""
    kept = finished()
    data = crash_data(storage)
    upload = all_parts_sent(session_factory, storage, place, data)
    folder = os.path.join(storage.root, ".multipart", upload.storage_upload_id)
    os.unlink(os.path.join(folder, "2.part"))
    with open(os.path.join(folder, "3.part"), "w") as cut_short:  # written, never synced: empty after the cut
        cut_short.truncate(0)

    assert repair(engine, storage).before.ok
    with pytest.raises(upload_sessions.MissingParts) as missing:
        upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                 upload_id=upload.id)
    assert missing.value.missing == [2, 3] and the_session(engine).status == "active"
    for number in missing.value.missing:
        send_part(session_factory, storage, place, upload, data, number)
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                     upload_id=upload.id)

    assert video.status == "processing" and video.size_bytes == len(data)
    assert_consistent(engine, storage, {**kept, video.id: data})


def test_crash_after_a_part_was_stored_before_the_ledger_recorded_it(
        engine, storage, dying, process, place, finished, session_factory, monkeypatch):
    kept = finished()
    data = crash_data(storage)
    view, _ = start(session_factory, storage, place, data)
    monkeypatch.setattr(upload_sessions, "record_part", lambda **_: process.crash("before the ledger"))

    with crash_expected(process):
        send_part(session_factory, dying(storage), place, view.session, data, 1)
    monkeypatch.undo()

    assert repair(engine, storage).before.ok
    with Session(engine) as s:
        assert upload_sessions.view(session=s, user=place.user, upload_id=view.session.id).missing_parts == [1, 2, 3]
    video = resume(session_factory, storage, place, data)  # part 1 is sent again and replaces the stored one

    assert video.status == "processing"
    assert_consistent(engine, storage, {**kept, video.id: data})


# Complete ------------------------------------------------------------------------------


def all_parts_sent(session_factory, storage, place, data):
    view, _ = start(session_factory, storage, place, data)
    for number in range(1, view.session.part_count + 1):
        send_part(session_factory, storage, place, view.session, data, number)
    return view.session


def test_crash_after_storage_joined_the_parts_before_the_row_update_completes_on_repair(
        engine, storage, dying, process, place, finished, session_factory, monkeypatch):
    kept = finished()
    data = crash_data(storage)
    upload = all_parts_sent(session_factory, storage, place, data)
    monkeypatch.setattr(videos, "finish_upload", lambda **_: process.crash("before the row update"))

    with crash_expected(process):
        upload_sessions.complete(session_factory=session_factory, storage=dying(storage), user=place.user,
                                 upload_id=upload.id)
    monkeypatch.undo()

    assert the_session(engine).status == "completing" and crash_row(engine).status == "uploading"
    result = repair(engine, storage)
    assert kinds(result.before) == ["interrupted_completion"]
    row = crash_row(engine)
    assert row.status == "processing" and row.size_bytes == len(data)
    assert the_session(engine).status == "completed"
    assert_consistent(engine, storage, {**kept, row.id: data})


# B2 finishes a large file in one call: "before placing" exists on local disk only.
@pytest.mark.parametrize("when, storage", [("before placing", "local"), ("after placing", "local"),
                                           ("after placing", "b2")], indirect=["storage"])
def test_crash_while_storage_joins_the_parts_completes_on_repair(
        engine, storage, dying, process, place, finished, session_factory, monkeypatch, when):
    kept = finished()
    data = crash_data(storage)
    upload = all_parts_sent(session_factory, storage, place, data)
    if isinstance(storage, B2Storage):
        sim = storage.api.session.raw_api
        real_finish = sim.finish_large_file

        def finish_then_crash(*args, **kwargs):  # B2 finished it; the answer never arrived
            real_finish(*args, **kwargs)
            process.crash("while joining")

        monkeypatch.setattr(sim, "finish_large_file", finish_then_crash)
    elif when == "before placing":  # the data file is sealed (checked, hashed, cut, synced), not yet renamed
        monkeypatch.setattr(local_disk, "place", lambda *_a, **_k: process.crash("while joining"))
    else:  # the data file is the object now; the upload's folder is still there
        monkeypatch.setattr(LocalStorage, "_remove_upload", staticmethod(lambda _folder: process.crash("cleanup")))

    with crash_expected(process):
        upload_sessions.complete(session_factory=session_factory, storage=dying(storage), user=place.user,
                                 upload_id=upload.id)
    monkeypatch.undo()

    if isinstance(storage, LocalStorage):
        placed = storage.stat(upload.storage_key, upload.storage_key)
        assert (placed is not None) == (when == "after placing")
        assert [u.upload_id for u in storage.list_unfinished("videos/")] == [upload.storage_upload_id]
    result = repair(engine, storage)
    assert kinds(result.before) == ["interrupted_completion"]
    row = crash_row(engine)
    assert row.status == "processing" and row.size_bytes == len(data)
    if not isinstance(storage, B2Storage):
        assert row.sha1 == sha1(data)
    assert_consistent(engine, storage, {**kept, row.id: data})


def test_an_interrupted_completion_is_left_to_the_browser_within_the_grace_period(
        engine, storage, dying, process, place, session_factory, monkeypatch):
    data = crash_data(storage)
    upload = all_parts_sent(session_factory, storage, place, data)
    monkeypatch.setattr(videos, "finish_upload", lambda **_: process.crash("before the row update"))
    with crash_expected(process):
        upload_sessions.complete(session_factory=session_factory, storage=dying(storage), user=place.user,
                                 upload_id=upload.id)
    monkeypatch.undo()

    result = reconcile.repair(session_factory=session_factory, storage=storage)  # default grace: an hour

    assert result.before.ok and result.actions == [] and result.before.in_flight >= 1
    # The browser asks to complete again: storage already holds the file, so it just finishes.
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                     upload_id=upload.id)
    assert video.status == "processing"
    assert_consistent(engine, storage, {video.id: data})


def test_parts_of_the_helper_cover_the_whole_file(storage):
    """The helpers above cut files into exactly DATA_PARTS parts."""
    data = crash_data(storage)
    fake = UploadSession(chunk_size=part_size_for(storage), part_count=DATA_PARTS, size_bytes=len(data))
    assert b"".join(part_of(data, fake, n) for n in range(1, DATA_PARTS + 1)) == data
