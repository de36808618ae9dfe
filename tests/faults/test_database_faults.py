"""The database unreachable at the moment an upload finishes: the stored file must
not be lost track of. ``ingest`` retries marking the row ready; if the database
stays down the row stays ``uploading`` with its file stored, and the checker's
repair marks it ready from the stored file (the instructor's work is kept)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event

from course_app.errors import DatabaseUnavailable, StorageUnavailable
from course_app.services import upload_sessions, uploads
from course_app.storage.base import StorageError
from tests.faults.conftest import (
    assert_consistent,
    ingest,
    kinds,
    only_row,
    part_size_for,
    repair,
    resumable_start,
    send_part,
    sha1,
    video_bytes,
)


class Outage:
    """Statements that start with ``prefix`` fail with the driver's own
    OperationalError (as when the server goes away), ``times`` times or while
    ``down`` is set."""

    def __init__(self, engine, prefix: str) -> None:
        self.engine, self.prefix = engine, prefix
        self.down, self.times, self.failed = False, 0, 0
        event.listen(engine, "before_cursor_execute", self._maybe_fail)

    def _maybe_fail(self, conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith(self.prefix) and (self.down or self.times > 0):
            self.times = max(0, self.times - 1)
            self.failed += 1
            raise conn.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._maybe_fail)


@pytest.fixture
def outage(engine):
    made: list[Outage] = []

    def _make(prefix: str) -> Outage:
        made.append(Outage(engine, prefix))
        return made[-1]

    yield _make
    for item in made:
        item.close()


def test_a_short_outage_at_finish_is_retried_and_the_upload_is_ready(engine, storage, place, outage):
    down = outage("UPDATE VIDEOS")
    down.times = 2
    data = video_bytes(2 * part_size_for(storage) + 9)

    video = ingest(place, storage, data)

    assert down.failed == 2
    assert video.status == "processing" and video.size_bytes == len(data)
    assert repair(engine, storage).before.ok
    assert_consistent(engine, storage, {video.id: data})


def test_an_outage_through_every_retry_keeps_the_file_and_the_repair_finishes_the_row(
        engine, storage, place, outage):
    down = outage("UPDATE VIDEOS")
    down.down = True
    data = video_bytes(2 * part_size_for(storage) + 9)

    with pytest.raises(DatabaseUnavailable) as caught:
        ingest(place, storage, data)

    assert down.failed == len(uploads.FINISH_RETRY_DELAYS) + 1
    assert not caught.value.retryable and "no need to upload it again" in str(caught.value)
    row = only_row(engine)
    assert row.status == "uploading"
    assert storage.stat(row.storage_key, "") is not None  # the bytes are kept
    down.down = False  # the database is back

    result = repair(engine, storage)

    assert kinds(result.before) == ["unrecorded_upload"]
    row = only_row(engine)
    assert row.status == "processing" and row.size_bytes == len(data) and row.sha1 in (sha1(data), None)
    assert_consistent(engine, storage, {row.id: data})


def test_an_outage_at_resumable_complete_is_finished_by_a_retry_or_the_repair(
        engine, storage, place, session_factory, outage):
    data = video_bytes(3 * part_size_for(storage) + 1)
    view, _ = resumable_start(session_factory, storage, place, data, part_size=part_size_for(storage))
    for number in range(1, view.session.part_count + 1):
        send_part(session_factory, storage, place, view.session, data, number)
    down = outage("UPDATE VIDEOS")
    down.down = True

    with pytest.raises(Exception) as caught:
        upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                 upload_id=view.session.id)
    assert "OperationalError" in type(caught.value).__name__
    down.down = False

    result = repair(engine, storage)  # nobody asked again: the checker completes it

    assert kinds(result.before) == ["interrupted_completion"]
    row = only_row(engine)
    assert row.status == "processing" and row.size_bytes == len(data)
    assert_consistent(engine, storage, {row.id: data})


def test_database_and_storage_down_together_leave_a_row_the_repair_fails(engine, storage, place, outage,
                                                                          monkeypatch):
    """Storage refuses the bytes and the database cannot record it: the row stays
    ``uploading`` with nothing stored, and the repair marks it failed with a reason."""

    def refuse(*_a, **_k):
        down.down = True  # the database goes down with it
        raise StorageError("Storage is unavailable right now; try again.")

    down = outage("UPDATE VIDEOS")
    monkeypatch.setattr(type(storage), "put_stream", refuse)
    with pytest.raises(StorageUnavailable):
        ingest(place, storage, video_bytes(3000))
    monkeypatch.undo()
    down.down = False

    assert only_row(engine).status == "uploading"
    result = repair(engine, storage)
    assert kinds(result.before) == ["stuck_upload"]
    row = only_row(engine)
    assert row.status == "failed" and row.error
    assert_consistent(engine, storage)


def test_ingest_gives_up_waiting_for_the_database_in_bounded_time(engine, storage, place, outage, monkeypatch):
    """The retries are few and short: the request is not held for long."""
    monkeypatch.setattr(uploads, "FINISH_RETRY_DELAYS", (0.05, 0.05))
    down = outage("UPDATE VIDEOS")
    down.down = True
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        ingest(place, storage, video_bytes(2000))
    assert time.monotonic() - started < 5
    assert down.failed == 3
