"""course_app/services/uploads.py: ``ingest`` streams a real upload into a
LocalStorage in a temp folder, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
import zipfile
from collections.abc import AsyncIterator, Iterable
from io import BytesIO

import pytest
from sqlmodel import Session, select

from course_app.errors import InvalidInput, StorageUnavailable, TooLarge, UnsupportedType
from course_app.models import StorageDeletion, Video
from course_app.services import outbox, uploads
from course_app.storage.base import StorageError, StoredObject
from course_app.storage.local import LocalStorage
from tests.media import make_video
from tests.stored import files_under

MIB = 1024 * 1024


pytestmark = pytest.mark.usefixtures("app_database")


@pytest.fixture
def storage(local_storage) -> LocalStorage:
    return local_storage



@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2, seed=7).read_bytes()


class Source:
    """An async chunk source that counts what was pulled from it and can fail part-way."""

    def __init__(self, data: bytes | Iterable[bytes], chunk: int = 4096, fail_after: int | None = None,
                 error: BaseException | None = None) -> None:
        self._parts = [data[i:i + chunk] for i in range(0, len(data), chunk)] if isinstance(data, bytes) else data
        self.fail_after, self.error = fail_after, error
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            if self.fail_after is not None and self.pulled >= self.fail_after:
                raise self.error
            self.pulled += len(part)
            yield part


def ingest(user, chapter, storage, source, *, max_bytes: int = 50 * MIB, filename: str = "clip.mp4", **kwargs):
    return asyncio.run(uploads.ingest(
        user=user, storage=storage, course_id=chapter.course_id, chapter_id=chapter.id, filename=filename,
        title=kwargs.pop("title", None), chunks=source.__aiter__(), max_bytes=max_bytes, **kwargs,
    ))


def rows(engine) -> list[Video]:
    with Session(engine) as fresh:
        return list(fresh.exec(select(Video)))


def outbox_rows(engine) -> list[StorageDeletion]:
    with Session(engine) as fresh:
        return list(fresh.exec(select(StorageDeletion)))


def drain_outbox(storage) -> tuple[int, int]:
    return asyncio.run(outbox.run_pending_deletions(storage))


def assert_nothing_left(engine, storage) -> None:
    """No row, no file, and no outbox entry left waiting either (cleaned up at once)."""
    assert rows(engine) == []
    assert outbox_rows(engine) == []
    assert files_under(storage.root) == set()
    assert drain_outbox(storage) == (0, 0)


# Stored --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "mime"), [("libx264", "video/mp4"), ("libvpx", "video/webm")])
def test_a_video_is_stored_with_its_size_and_sha1(engine, storage, chapter, tmp_path, codec, mime):
    user, chap = chapter
    data = make_video(tmp_path / "clip", seconds=2, seed=3, codec=codec).read_bytes()

    video = ingest(user, chap, storage, Source(data, chunk=3000), filename="../Week 1.mov", declared_size=len(data))

    assert (video.status, video.stage, video.error) == ("processing", "verifying", None)
    assert video.size_bytes == len(data)
    assert video.sha1 == hashlib.sha1(data).hexdigest()
    assert video.content_type == mime
    assert video.filename == "Week 1.mov" and video.title == "Week 1"
    assert video.storage_key == f"videos/{user.id}/{video.id}"
    [row] = rows(engine)
    assert (row.id, row.status, row.size_bytes, row.sha1) == (video.id, "processing", len(data), video.sha1)
    assert b"".join(storage.open_range(video.storage_key, video.storage_key)) == data
    assert files_under(storage.root) == {
        video.storage_key, video.storage_key + ".meta.json"
    }


def test_a_file_of_exactly_the_limit_is_accepted(engine, storage, chapter, mp4):
    user, chap = chapter

    video = ingest(user, chap, storage, Source(mp4), max_bytes=len(mp4), declared_size=len(mp4))

    assert video.size_bytes == len(mp4)
    assert [r.status for r in rows(engine)] == ["processing"]


# Refused before anything is written --------------------------------------------------------------


def _zip() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("movie.mp4", os.urandom(20_000))
    return buffer.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(30_000)
NOT_VIDEOS = {
    "text": b"Just some lecture notes, not a video.\n" * 1000,
    "png": PNG,
    "zip": _zip(),
    "exe": b"MZ\x90\x00\x03\x00\x00\x00" + os.urandom(30_000),
    "html": b"<!DOCTYPE html><html><body><video src=x></video>" + b"<p>hi</p>" * 3000,
}


@pytest.mark.parametrize("kind", NOT_VIDEOS)
def test_a_non_video_is_refused_from_its_first_bytes_before_any_row(engine, storage, chapter, kind):
    user, chap = chapter
    source = Source(NOT_VIDEOS[kind], chunk=8192)

    with pytest.raises(UnsupportedType):
        ingest(user, chap, storage, source, filename="lecture.mp4")

    assert source.pulled == 8192  # only the head was read
    assert rows(engine) == [] and outbox_rows(engine) == [] and files_under(storage.root) == set()


def test_an_empty_file_is_refused(engine, storage, chapter):
    user, chap = chapter

    with pytest.raises(InvalidInput, match="empty"):
        ingest(user, chap, storage, Source([]))

    assert rows(engine) == [] and files_under(storage.root) == set()


def test_a_declared_size_over_the_limit_is_refused_before_any_row(engine, storage, chapter, mp4):
    user, chap = chapter
    source = Source(mp4, chunk=8192)

    with pytest.raises(TooLarge):
        ingest(user, chap, storage, source, max_bytes=len(mp4), declared_size=len(mp4) + 1)

    assert source.pulled == 8192
    assert rows(engine) == [] and outbox_rows(engine) == [] and files_under(storage.root) == set()


# Stopped part-way: nothing stays -------------------------------------------------------------------


@pytest.mark.parametrize("over", [1, 3 * MIB])
def test_an_oversize_stream_stops_and_leaves_nothing(engine, storage, chapter, mp4, over):
    user, chap = chapter
    limit = 2 * MIB
    data = mp4 + os.urandom(limit - len(mp4) + over)
    source = Source(data, chunk=64 * 1024)

    with pytest.raises(TooLarge):
        ingest(user, chap, storage, source, max_bytes=limit)  # no declared size: it lies by omission

    assert source.pulled <= limit + 64 * 1024  # stopped reading at the limit
    assert_nothing_left(engine, storage)


def test_an_oversize_file_that_arrives_in_one_chunk_is_refused(engine, storage, chapter, mp4):
    user, chap = chapter

    with pytest.raises(TooLarge):
        ingest(user, chap, storage, Source([mp4]), max_bytes=len(mp4) - 1)

    assert_nothing_left(engine, storage)


class ClientGone(Exception):
    pass


@pytest.mark.parametrize("error", [ClientGone("client went away"), asyncio.CancelledError()])
def test_a_chunk_source_that_fails_leaves_no_row_and_no_file(engine, storage, chapter, mp4, error):
    user, chap = chapter
    data = mp4 + os.urandom(3 * MIB)

    with pytest.raises(type(error)):
        ingest(user, chap, storage, Source(data, chunk=64 * 1024, fail_after=2 * MIB, error=error))

    assert_nothing_left(engine, storage)  # no temp file either


class BreaksMidStream(LocalStorage):
    """Takes some bytes, leaves a partial object under the key, then fails."""

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        taken = bytearray()
        for chunk in chunks:
            taken += chunk
            if len(taken) >= MIB:
                break
        super().put_stream(key, [bytes(taken)], content_type=content_type)
        raise StorageError("The storage service stopped answering.")


def test_a_storage_failure_mid_stream_leaves_a_failed_row_and_no_file(engine, tmp_path, chapter, mp4):
    user, chap = chapter
    storage = BreaksMidStream(tmp_path / "storage")
    source = Source(mp4 + os.urandom(4 * MIB), chunk=64 * 1024)

    with pytest.raises(StorageUnavailable, match="stopped answering"):
        ingest(user, chap, storage, source)

    [row] = rows(engine)
    assert row.status == "failed"  # kept, so the instructor sees why
    assert "stopped answering" in row.error
    assert row.size_bytes is None and row.sha1 is None
    assert outbox_rows(engine) == []  # the partial object was cleaned up at once
    assert files_under(storage.root) == set()


class BreaksAndCannotDelete(BreaksMidStream):
    deletes_work = False

    def delete(self, key: str, file_id: str) -> None:
        if not self.deletes_work:
            raise StorageError("Still down.")
        super().delete(key, file_id)


def test_a_partial_object_that_cannot_be_deleted_yet_stays_in_the_outbox(engine, tmp_path, chapter, mp4):
    user, chap = chapter
    storage = BreaksAndCannotDelete(tmp_path / "storage")

    with pytest.raises(StorageUnavailable):
        ingest(user, chap, storage, Source(mp4 + os.urandom(2 * MIB), chunk=64 * 1024))

    [row] = rows(engine)
    [pending] = outbox_rows(engine)
    assert (pending.storage_key, pending.attempts, pending.last_error) == (row.storage_key, 1, "Still down.")
    assert files_under(storage.root) == {
        row.storage_key, row.storage_key + ".meta.json"
    }
    storage.deletes_work = True
    with Session(engine) as db:
        db.get(StorageDeletion, pending.id).next_attempt_at = pending.created_at
        db.commit()
    assert drain_outbox(storage) == (1, 0)
    assert files_under(storage.root) == set() and outbox_rows(engine) == []


# Memory --------------------------------------------------------------------------------------------


def test_a_64_mib_stream_uses_bounded_memory(engine, storage, chapter, mp4):
    user, chap = chapter
    size = 64 * MIB
    filler = os.urandom(64 * 1024)
    head = mp4[:8192]

    def parts() -> Iterable[bytes]:
        yield head
        sent = len(head)
        while sent < size:
            part = filler[: min(len(filler), size - sent)]
            sent += len(part)
            yield part

    expected = hashlib.sha1(head)
    for part in list(parts())[1:]:
        expected.update(part)

    tracemalloc.start()
    try:
        video = ingest(user, chap, storage, Source(parts()), max_bytes=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert video.size_bytes == size
    assert video.sha1 == expected.hexdigest()
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB while streaming 64 MiB"
