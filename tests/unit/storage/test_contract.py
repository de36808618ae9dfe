"""One contract, two backends: every test here runs against LocalStorage (a temp
folder) and B2Storage (b2sdk's in-memory RawSimulator)."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator

import pytest
from b2sdk._internal import raw_simulator as raw_simulator_module

from course_app.storage import ObjectNotFound, UploadAborted
from tests.unit.storage.support import (
    HOSTILE_KEYS,
    KEY,
    MIB,
    PART,
    chunked,
    everything_stored,
    put,
    random_bytes,
    read,
    sha1,
)


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 3 * PART + 17])
def test_put_stream_stores_the_bytes_with_size_sha1_and_type(storage, size):
    data = random_bytes(size)
    stored = put(storage, KEY, data, content_type="video/webm")

    assert (stored.key, stored.size, stored.sha1, stored.content_type) == (KEY, size, sha1(data), "video/webm")
    assert stored.file_id and stored.uploaded_at is not None
    assert read(storage, stored) == data
    stat = storage.stat(KEY, stored.file_id)
    assert (stat.key, stat.file_id, stat.size, stat.content_type) == (KEY, stored.file_id, size, "video/webm")
    assert stat.uploaded_at is not None
    # B2 keeps the whole-file SHA1 only for single-call uploads; a streamed large
    # file's SHA1 is known only to put_stream's caller (see course_app/storage/b2.py).
    streamed_large_file = storage.name == "b2" and size > PART
    assert stat.sha1 == ("" if streamed_large_file else sha1(data))


def test_chunks_may_be_any_bytes_like_and_a_reused_buffer(storage):
    data = random_bytes(3 * PART + 5)

    def reused_buffer() -> Iterator[bytearray]:
        buffer = bytearray(50_000)  # refilled after every yield, like readinto()
        for offset in range(0, len(data), len(buffer)):
            piece = data[offset : offset + len(buffer)]
            buffer[: len(piece)] = piece
            yield buffer if len(piece) == len(buffer) else buffer[: len(piece)]

    stored = storage.put_stream(KEY, reused_buffer(), content_type="video/mp4")
    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert read(storage, stored) == data

    views = [memoryview(b"abc"), bytearray(b"def"), b"ghi"]
    other = storage.put_stream(KEY + "-2", iter(views), content_type="video/mp4")
    assert read(storage, other) == b"abcdefghi"


def test_stream_is_consumed_lazily_in_bounded_memory(storage):
    """50 MiB in 1 MiB chunks: at every chunk the memory held on our side stays a
    few MiB. (The simulator keeps every B2 byte in memory; it plays the remote
    server, so its own allocations are not counted.)"""
    total_chunks = 50
    held: list[int] = []
    not_simulator = [tracemalloc.Filter(False, raw_simulator_module.__file__)]

    def source() -> Iterator[bytes]:
        for index in range(total_chunks):
            snapshot = tracemalloc.take_snapshot().filter_traces(not_simulator)
            held.append(sum(trace.size for trace in snapshot.traces))
            yield bytes([index % 251]) * MIB  # a fresh object each time: holding them would show

    expected = hashlib.sha1()
    for index in range(total_chunks):
        expected.update(bytes([index % 251]) * MIB)

    tracemalloc.start()
    try:
        stored = storage.put_stream(KEY, source(), content_type="video/mp4")
    finally:
        tracemalloc.stop()

    assert (stored.size, stored.sha1) == (total_chunks * MIB, expected.hexdigest())
    assert len(held) == total_chunks
    assert max(held) < 6 * MIB, f"held up to {max(held) / MIB:.1f} MiB while streaming 50 MiB"


def test_stat_of_a_missing_object_is_none(storage):
    assert storage.stat(KEY, "no-such-id") is None
    assert storage.stat(KEY, "") is None
    stored = put(storage, KEY, b"data")
    assert storage.stat(KEY + "x", "") is None
    assert storage.stat("videos/7/another", stored.file_id) is None  # an id belongs to one key
    assert storage.stat(KEY, "").file_id == stored.file_id  # no id: look up by key


def test_chunks_must_be_bytes(storage):
    with pytest.raises(TypeError):
        storage.put_stream(KEY, [b"ok", 5], content_type="video/mp4")
    assert everything_stored(storage) == []


def test_open_range_returns_exact_inclusive_ranges_in_1_mib_chunks(storage):
    data = random_bytes(2 * MIB + 12_345)
    stored = put(storage, KEY, data)

    chunks = list(storage.open_range(KEY, stored.file_id))
    assert b"".join(chunks) == data
    assert [len(chunk) for chunk in chunks] == [MIB, MIB, 12_345]

    size = len(data)
    for start, end in [(0, 0), (5, 9), (MIB - 1, MIB), (1000, None), (size - 1, None), (size - 10, size + 50)]:
        expected = data[start : (size if end is None else end + 1)]
        assert read(storage, stored, start, end) == expected, (start, end)
    assert read(storage, stored, size, None) == b""
    assert read(storage, stored, size + 10, size + 20) == b""


def test_open_range_refuses_bad_ranges_and_missing_objects(storage):
    stored = put(storage, KEY, b"0123456789")
    for start, end in [(-1, None), (5, 4), (0, -1)]:
        with pytest.raises(ValueError):
            storage.open_range(KEY, stored.file_id, start, end)
    storage.delete(KEY, stored.file_id)
    for start, end in [(0, None), (2, 5)]:
        with pytest.raises(ObjectNotFound):  # raised by the call, before any byte is streamed
            storage.open_range(KEY, stored.file_id, start, end)


def test_list_returns_only_keys_with_the_prefix_in_key_order(storage):
    keys = ["videos/1/b", "videos/1/a", "videos/12/c", "videos/2/d", "videos/1-x/e", "other/f"]
    stored = {key: put(storage, key, key.encode()) for key in keys}

    def listed(prefix: str) -> list[str]:
        return [obj.key for obj in storage.list(prefix)]

    assert listed("videos/1/") == ["videos/1/a", "videos/1/b"]
    assert listed("videos/1") == ["videos/1-x/e", "videos/1/a", "videos/1/b", "videos/12/c"]
    assert listed("videos/") == ["videos/1-x/e", "videos/1/a", "videos/1/b", "videos/12/c", "videos/2/d"]
    assert listed("") == sorted(keys)
    assert listed("videos/3/") == listed("nothing") == []

    [entry] = storage.list("videos/2/")
    original = stored["videos/2/d"]
    assert (entry.file_id, entry.size, entry.sha1, entry.content_type) == (
        original.file_id,
        len(b"videos/2/d"),
        sha1(b"videos/2/d"),
        "video/mp4",
    )
    assert entry.uploaded_at is not None


def test_list_goes_past_the_first_page(storage, b2, monkeypatch):
    if storage.name == "local":  # 1100 uploads: skip the disk flushes, not what this checks
        monkeypatch.setattr("course_app.storage.local.os.fsync", lambda fd: None)
    calls: list[int] = []
    real = b2.sim.list_file_names
    monkeypatch.setattr(
        b2.sim, "list_file_names", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs)
    )
    keys = [f"videos/3/{index:05d}" for index in range(1100)]
    for key in keys:
        storage.put_stream(key, [b"x"], content_type="video/mp4")
    storage.put_stream("videos/4/after", [b"x"], content_type="video/mp4")

    assert [obj.key for obj in storage.list("videos/3/")] == keys  # default page_size=1000
    if storage.name == "b2":
        assert len(calls) == 2


def test_b2_list_asks_for_pages_of_page_size(b2_storage, b2, monkeypatch):
    requested: list[int] = []
    real = b2.sim.list_file_names

    def list_file_names(api_url, token, bucket_id, start_file_name=None, max_file_count=None, prefix=None):
        requested.append(max_file_count)
        return real(api_url, token, bucket_id, start_file_name, max_file_count, prefix)

    monkeypatch.setattr(b2.sim, "list_file_names", list_file_names)
    for index in range(25):
        b2_storage.put_stream(f"videos/5/{index:02d}", [b"x"], content_type="video/mp4")

    assert len(list(b2_storage.list("videos/5/", page_size=10))) == 25
    assert requested == [10, 10, 10]


def test_delete_then_stat_is_none_and_delete_again_succeeds(storage):
    keep = put(storage, KEY + "-keep", b"keep")
    stored = put(storage, KEY, b"bytes")

    storage.delete(KEY, stored.file_id)
    assert storage.stat(KEY, stored.file_id) is None
    storage.delete(KEY, stored.file_id)
    assert [obj.key for obj in storage.list("videos/")] == [KEY + "-keep"]
    assert storage.stat(keep.key, keep.file_id) is not None
    assert everything_stored(storage) == (
        [f"{KEY}-keep", f"{KEY}-keep.meta.json"] if storage.name == "local" else [KEY + "-keep"]
    )


@pytest.mark.parametrize("abort_after", [0, PART // 2, 3 * PART + 1])
@pytest.mark.parametrize("error", [UploadAborted("too large"), RuntimeError("client went away")])
def test_a_chunk_source_that_raises_leaves_nothing_stored(storage, abort_after, error):
    def source() -> Iterator[bytes]:
        yield from chunked(random_bytes(abort_after))
        raise error

    with pytest.raises(type(error)) as raised:
        storage.put_stream(KEY, source(), content_type="video/mp4")

    assert raised.value is error
    assert storage.stat(KEY, KEY if storage.name == "local" else "") is None
    assert list(storage.list("")) == []
    assert everything_stored(storage) == []


def test_download_url(storage, b2, monkeypatch):
    stored = put(storage, KEY, b"video")
    if storage.name == "local":
        assert storage.download_url(KEY, stored.file_id) is None
        return

    granted: list[tuple[str, int]] = []
    real = b2.sim.get_download_authorization

    def get_download_authorization(api_url, token, bucket_id, prefix, seconds):
        granted.append((prefix, seconds))
        return real(api_url, token, bucket_id, prefix, seconds)

    monkeypatch.setattr(b2.sim, "get_download_authorization", get_download_authorization)
    url = storage.download_url(KEY, stored.file_id, valid_seconds=120)

    assert granted == [(KEY, 120)]  # a token for exactly this file name
    base, _, token = url.partition("?Authorization=")
    assert base == storage.bucket.get_download_url(KEY)
    assert token and b2.application_key not in url
    assert b2.api.account_info.get_account_auth_token() not in url
    with pytest.raises(ValueError):
        storage.download_url(KEY, stored.file_id, valid_seconds=0)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_before_anything_is_read_or_written(storage, tmp_path, key):
    consumed: list[bytes] = []

    def source() -> Iterator[bytes]:
        consumed.append(b"x")
        yield b"x"

    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError):
        storage.put_stream(key, source(), content_type="video/mp4")
    for call in (storage.stat, storage.delete, storage.open_range, storage.download_url):
        with pytest.raises(ValueError):
            call(key, "some-id")
    assert consumed == []
    assert sorted(tmp_path.rglob("*")) == before
    assert everything_stored(storage) == []


@pytest.mark.parametrize("prefix", ["../", "videos/../", "/videos", "videos\\", "videos//", "a\x00", ".multipart/"])
def test_hostile_list_prefixes_are_refused(storage, prefix):
    with pytest.raises(ValueError):
        storage.list(prefix)
