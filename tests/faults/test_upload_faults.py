"""A single-request upload (services/uploads.ingest: begin_upload, the bytes,
finish_upload) killed at each step, on SQLite and PostgreSQL, local disk and the
B2 simulator; then the checker's repair leaves database and storage in agreement
and loses nothing the instructor finished."""

from __future__ import annotations

from sqlmodel import Session, select

from course_app.models import Video
from course_app.services import reconcile, videos
from course_app.storage.b2 import B2Storage
from tests.faults.conftest import (
    NO_GRACE,
    assert_consistent,
    crash_expected,
    ingest,
    kinds,
    part_size_for,
    repair,
    sha1,
    video_bytes,
    write_half_then_crash,
)


def the_row(engine) -> Video:
    with Session(engine) as s:
        (row,) = [v for v in s.exec(select(Video)) if v.filename == "crash.mp4"]
        return row


def upload_that_crashes(place, storage, dying, process, data):
    with crash_expected(process):
        ingest(place, dying(storage), data, filename="crash.mp4")


def test_crash_before_the_row_leaves_nothing(engine, storage, dying, process, place, finished, monkeypatch):
    kept = finished()
    monkeypatch.setattr(videos, "begin_upload", lambda **_: process.crash("before the row"))

    upload_that_crashes(place, storage, dying, process, video_bytes(5000))

    result = repair(engine, storage)
    assert result.before.ok and result.actions == []
    assert_consistent(engine, storage, kept)


def test_crash_after_the_row_before_the_bytes_fails_the_row_with_a_reason(
        engine, storage, dying, process, place, finished, monkeypatch):
    kept = finished()
    monkeypatch.setattr(type(storage), "put_stream", lambda *_a, **_k: process.crash("before the bytes"))

    upload_that_crashes(place, storage, dying, process, video_bytes(5000))
    monkeypatch.undo()  # the new process runs the real code again

    assert the_row(engine).status == "uploading"
    result = repair(engine, storage)
    assert kinds(result.before) == ["stuck_upload"]
    row = the_row(engine)
    assert row.status == "failed" and row.error == reconcile.STUCK_REASON
    assert_consistent(engine, storage, kept)


def test_crash_mid_bytes_leaves_no_partial_file(engine, storage, dying, process, place, finished, monkeypatch):
    kept = finished()
    data = video_bytes(3 * part_size_for(storage) + 1234, seed=5)
    if isinstance(storage, B2Storage):
        # Parts 1 and 2 reach B2, then the process dies: an unfinished large file stays.
        real_upload_part = storage.api.session.raw_api.upload_part
        sent = []

        def upload_part(*args, **kwargs):
            result = real_upload_part(*args, **kwargs)
            sent.append(result["partNumber"])
            if len(sent) == 2:
                process.crash("mid-bytes")
            return result

        monkeypatch.setattr(storage.api.session.raw_api, "upload_part", upload_part)
        expected = ["stuck_upload", "unknown_upload"]
    else:
        monkeypatch.setattr(type(storage), "put_stream", lambda self, key, chunks, **_: write_half_then_crash(
            self, process, key, chunks))
        expected = ["leftover_file", "stuck_upload"]

    upload_that_crashes(place, storage, dying, process, data)
    monkeypatch.undo()

    result = repair(engine, storage)
    assert kinds(result.before) == expected
    assert the_row(engine).status == "failed"
    assert_consistent(engine, storage, kept)


def test_crash_after_the_bytes_before_the_row_update_keeps_the_upload(
        engine, storage, dying, process, place, finished, monkeypatch):
    kept = finished()
    data = video_bytes(2 * part_size_for(storage) + 321, seed=6)
    monkeypatch.setattr(videos, "finish_upload", lambda **_: process.crash("before the row update"))

    upload_that_crashes(place, storage, dying, process, data)
    monkeypatch.undo()

    assert the_row(engine).status == "uploading"
    result = repair(engine, storage)
    assert kinds(result.before) == ["unrecorded_upload"]
    row = the_row(engine)
    assert row.status == "processing" and row.size_bytes == len(data) and row.error is None
    assert row.sha1 in (sha1(data), None)  # a B2 large file's SHA1 is known only to the upload
    assert_consistent(engine, storage, {**kept, row.id: data})


def test_a_young_unrecorded_upload_is_left_alone_until_the_grace_period_ends(
        engine, storage, dying, process, place, monkeypatch):
    from datetime import timedelta

    from course_app.db import session_scope

    monkeypatch.setattr(videos, "finish_upload", lambda **_: process.crash("before the row update"))
    upload_that_crashes(place, storage, dying, process, video_bytes(4000))
    monkeypatch.undo()

    result = reconcile.repair(session_factory=lambda: session_scope(engine), storage=storage,
                              grace=timedelta(minutes=60))
    assert result.before.ok and result.before.in_flight == 1 and result.actions == []
    assert the_row(engine).status == "uploading"
    with Session(engine) as s:
        assert kinds(reconcile.check_videos(session=s, storage=storage, grace=NO_GRACE)) == ["unrecorded_upload"]


def test_an_unrecorded_file_that_is_not_a_video_is_not_made_ready(engine, storage, process, place, monkeypatch):
    """The repair trusts a stored file only if it looks like a video."""
    monkeypatch.setattr(videos, "finish_upload", lambda **_: process.crash("before the row update"))
    with crash_expected(process):
        ingest(place, storage, video_bytes(4000), filename="crash.mp4")
    monkeypatch.undo()
    row = the_row(engine)
    storage.delete(row.storage_key, "")
    storage.put_stream(row.storage_key, [b"not a video at all" * 100], content_type="video/mp4")

    result = repair(engine, storage)

    assert kinds(result.before) == ["unrecorded_upload"]
    row = the_row(engine)
    assert row.status == "failed" and row.error == reconcile.NOT_A_VIDEO_REASON
    assert_consistent(engine, storage)
