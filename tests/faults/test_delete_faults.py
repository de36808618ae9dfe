"""Deleting a video (and a chapter or course) for good killed at each step: the row
and its outbox entry are removed or kept together, and the checker's repair carries
out whatever deletion was left pending. The other videos stay intact. Deleting for
good is purging from the course trash (the editor's and the API's delete only move
a video to the trash, which keeps its file)."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlmodel import Session, select

from course_app.db import run_in_session
from course_app.errors import InvalidInput
from course_app.models import StorageDeletion, Video
from course_app.services import courses, outbox, trash
from course_app.storage.b2 import B2Storage
from course_app.storage.base import StorageError
from tests.deleting import delete_chapter_for_good, delete_video_for_good
from tests.faults.conftest import (
    assert_consistent,
    crash_expected,
    ingest,
    kinds,
    part_size_for,
    repair,
    video_bytes,
)


def delete_like_the_api(user, video_id, storage) -> None:
    """What DELETE /api/videos/{id} then DELETE /api/trash/videos/{id} do
    (course_app/api/videos.py, course_app/api/trash.py)."""

    async def run():
        await run_in_session(trash.trash_video, user=user, video_id=video_id)
        pending = await run_in_session(trash.purge_video, user=user, video_id=video_id)
        await outbox.run_pending_deletions(storage, ids=pending)

    asyncio.run(run())


@pytest.fixture
def doomed(place, storage):
    """A ready video the instructor is about to delete."""
    return ingest(place, storage, video_bytes(2 * part_size_for(storage) + 5, seed=77), filename="doomed.mp4")


def rows(engine) -> list[Video]:
    with Session(engine) as s:
        return list(s.exec(select(Video)))


def pending(engine) -> list[StorageDeletion]:
    with Session(engine) as s:
        return list(s.exec(select(StorageDeletion)))


def test_crash_before_the_row_is_deleted_keeps_the_video(
        engine, storage, dying, process, place, finished, doomed, monkeypatch):
    kept = finished()
    monkeypatch.setattr(trash, "remove_video_row", lambda **_: process.crash("before the row delete"))

    with crash_expected(process):
        delete_like_the_api(place.user, doomed.id, dying(storage))
    monkeypatch.undo()

    assert repair(engine, storage).before.ok
    assert doomed.id in {v.id for v in rows(engine)}
    assert_consistent(engine, storage, kept)


def test_crash_between_the_row_delete_and_the_storage_delete(
        engine, storage, dying, process, place, finished, doomed, monkeypatch):
    kept = finished()
    monkeypatch.setattr(outbox, "run_pending_deletions", lambda *_a, **_k: process.crash("before storage delete"))

    with crash_expected(process):
        delete_like_the_api(place.user, doomed.id, dying(storage))
    monkeypatch.undo()

    assert doomed.id not in {v.id for v in rows(engine)}
    assert storage.stat(doomed.storage_key, doomed.backblaze_file_id) is not None
    result = repair(engine, storage)
    assert kinds(result.before) == ["pending_deletion"]
    assert storage.stat(doomed.storage_key, doomed.backblaze_file_id) is None
    assert_consistent(engine, storage, kept)


def test_crash_during_the_storage_delete(engine, storage, dying, process, place, finished, doomed, monkeypatch):
    kept = finished()
    if isinstance(storage, B2Storage):
        sim = storage.api.session.raw_api
        real_delete = sim.delete_file_version

        def delete_then_crash(*args, **kwargs):  # B2 deleted it; the answer never arrived
            real_delete(*args, **kwargs)
            process.crash("during storage delete")

        monkeypatch.setattr(sim, "delete_file_version", delete_then_crash)
        expected = ["pending_deletion"]
    else:
        def unlink_data_then_crash(self, key, file_id):  # the data file went; its sidecar did not
            os.unlink(os.path.join(self.root, *key.split("/")))
            process.crash("during storage delete")

        monkeypatch.setattr(type(storage), "delete", unlink_data_then_crash)
        expected = ["leftover_file", "pending_deletion"]

    with crash_expected(process):
        delete_like_the_api(place.user, doomed.id, dying(storage))
    monkeypatch.undo()

    assert [p.storage_key for p in pending(engine)] == [doomed.storage_key]
    result = repair(engine, storage)
    assert kinds(result.before) == expected
    assert_consistent(engine, storage, kept)


@pytest.mark.parametrize("what", ["chapter", "course"])
def test_crash_after_a_chapter_or_course_delete_before_storage(
        engine, storage, dying, process, place, session_factory, what):
    for seed in range(3):
        ingest(place, storage, video_bytes(3000 + seed, seed=seed), filename=f"v{seed}.mp4")

    with session_factory() as session:  # committed; then the process dies before the outbox runs
        if what == "chapter":
            delete_chapter_for_good(session=session, user=place.user, chapter_id=place.chapter_id)
        else:
            courses.delete_course(session=session, user=place.user, course_id=place.course_id)

    assert rows(engine) == [] and len(pending(engine)) == 3
    result = repair(engine, storage)
    assert kinds(result.before) == ["pending_deletion"] * 3
    assert_consistent(engine, storage)


def test_storage_down_during_a_delete_is_carried_out_by_the_repair(
        engine, storage, place, finished, doomed, monkeypatch):
    kept = finished()
    monkeypatch.setattr(type(storage), "delete", lambda *_a, **_k: (_ for _ in ()).throw(StorageError("down")))

    delete_like_the_api(place.user, doomed.id, storage)  # the row goes; the deletion waits
    monkeypatch.undo()

    (waiting,) = pending(engine)
    assert waiting.attempts == 1 and waiting.last_error == "down"
    result = repair(engine, storage)  # due or not, the repair carries it out
    assert kinds(result.before) == ["pending_deletion"] and "last error: down" in result.before.problems[0].detail
    assert_consistent(engine, storage, kept)


def test_a_video_deleted_while_its_bytes_travel(engine, storage, place, finished, session_factory, monkeypatch):
    kept = finished()
    real_put = type(storage).put_stream

    def put_while_deleted(self, key, chunks, **kwargs):
        stored = real_put(self, key, chunks, **kwargs)
        with session_factory() as session:  # the instructor deletes it meanwhile
            (row,) = session.exec(select(Video).where(Video.storage_key == key))
            delete_video_for_good(session=session, user=place.user, video_id=row.id)
        return stored

    monkeypatch.setattr(type(storage), "put_stream", put_while_deleted)
    with pytest.raises(InvalidInput, match="deleted while it was uploading"):
        ingest(place, storage, video_bytes(5000), filename="gone.mp4")
    monkeypatch.undo()

    # Two outbox entries name the key (the delete's and the late finish's).
    result = repair(engine, storage)
    assert set(kinds(result.before)) == {"pending_deletion"}
    assert_consistent(engine, storage, kept)
