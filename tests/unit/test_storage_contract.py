"""One contract, two backends: every storage test runs against LocalStorage (a temp
folder) and B2Storage (b2sdk's in-memory RawSimulator), plus fault cases only B2 has."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import random
import secrets
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from b2sdk._internal import raw_simulator as raw_simulator_module
from b2sdk.v3 import B2Api, B2HttpApiConfig, BucketSimulator, InMemoryAccountInfo, RawSimulator
from b2sdk.v3.exception import (
    AccessDenied,
    B2ConnectionError,
    BadRequest,
    FileNotPresent,
    ServiceError,
    StorageCapExceeded,
)

from course_app.settings import Settings
from course_app.storage import (
    ObjectNotFound,
    StorageError,
    UploadAborted,
    build_storage,
    get_storage,
    set_storage_for_tests,
)
from course_app.storage import local_parts
from course_app.storage.b2 import B2Storage
from course_app.storage.base import MultipartStorage, PartInfo
from course_app.storage.local import LocalStorage

KIB, MIB = 1024, 1024 * 1024
PART = 256 * KIB  # B2 part size in these tests (the simulator's minimum is 200 bytes)
BUCKET = "course-studio-test"
KEY = "videos/7/0b8e3a52-4d1c-4b6f-9a57-1f2e3d4c5b6a"
UNAVAILABLE = "Storage is unavailable right now; try again."


class FaithfulBucketSimulator(BucketSimulator):
    """Real B2 answers "not found" for an unknown file id; the simulator raises KeyError.
    Real B2 also refuses to cancel a finished large file (the simulator deletes it), and
    a look-up by name never finds an unfinished large file (the simulator's does)."""

    def _known(self, file_id):
        if file_id not in self.file_id_to_file:
            raise FileNotPresent(file_id_or_name=file_id)

    def get_file_info_by_id(self, account_auth_token, file_id):
        self._known(file_id)
        return super().get_file_info_by_id(account_auth_token, file_id)

    def get_file_info_by_name(self, account_auth_token, file_name):
        for (name, _), file_sim in sorted(self.file_name_and_id_to_file.items()):
            if name == file_name and file_sim.action != "start":
                return file_sim.as_download_headers(account_auth_token_or_none=account_auth_token)
        raise FileNotPresent(file_id_or_name=file_name, bucket_name=self.bucket_name)

    def cancel_large_file(self, file_id):
        self._known(file_id)
        if self.file_id_to_file[file_id].action != "start":
            raise BadRequest("the large file is not in progress", "bad_request")
        return super().cancel_large_file(file_id)

    def list_parts(self, file_id, start_part_number, max_part_count):
        self._known(file_id)
        return super().list_parts(file_id, start_part_number, max_part_count)

    def finish_large_file(self, account_auth_token, file_id, part_sha1_array):
        self._known(file_id)
        return super().finish_large_file(account_auth_token, file_id, part_sha1_array)

    def upload_part(self, file_id, *args, **kwargs):
        self._known(file_id)
        return super().upload_part(file_id, *args, **kwargs)

    def download_file_by_id(self, account_auth_token_or_none, file_id, url, range_=None, encryption=None):
        if file_id not in self.file_id_to_file:
            raise FileNotPresent(file_id_or_name=file_id)
        return super().download_file_by_id(account_auth_token_or_none, file_id, url, range_, encryption)


class FaithfulRawSimulator(RawSimulator):
    BUCKET_SIMULATOR_CLASS = FaithfulBucketSimulator

    def _known(self, file_id):
        if file_id not in self.file_id_to_bucket_id:
            raise FileNotPresent(file_id_or_name=file_id)

    def get_file_info_by_id(self, api_url, account_auth_token, file_id):
        self._known(file_id)
        return super().get_file_info_by_id(api_url, account_auth_token, file_id)

    def cancel_large_file(self, api_url, account_auth_token, file_id):
        self._known(file_id)
        return super().cancel_large_file(api_url, account_auth_token, file_id)

    def list_parts(self, api_url, account_auth_token, file_id, start_part_number, max_part_count):
        self._known(file_id)
        return super().list_parts(api_url, account_auth_token, file_id, start_part_number, max_part_count)

    def finish_large_file(self, api_url, account_auth_token, file_id, part_sha1_array):
        self._known(file_id)
        return super().finish_large_file(api_url, account_auth_token, file_id, part_sha1_array)

    def get_upload_part_url(self, api_url, account_auth_token, file_id):
        self._known(file_id)
        return super().get_upload_part_url(api_url, account_auth_token, file_id)


# Fixtures ---------------------------------------------------------------------


@pytest.fixture
def b2():
    """A simulated B2 account with one private bucket."""
    api = B2Api(InMemoryAccountInfo(), api_config=B2HttpApiConfig(_raw_api_class=FaithfulRawSimulator))
    sim = api.session.raw_api
    key_id, application_key = sim.create_account()
    api.authorize_account(key_id, application_key)
    bucket = api.create_bucket(BUCKET, "allPrivate")
    return SimpleNamespace(api=api, sim=sim, bucket=bucket, application_key=application_key)


@pytest.fixture
def sleeps() -> list[float]:
    """The backoff delays B2Storage asked for (recorded, never slept)."""
    return []


@pytest.fixture
def b2_storage(b2, sleeps) -> B2Storage:
    return B2Storage(b2.api, BUCKET, part_size=PART, sleep=sleeps.append)


@pytest.fixture(params=["local", "b2"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "storage")
    return request.getfixturevalue("b2_storage")


# Helpers ----------------------------------------------------------------------


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def put(storage, key: str, data: bytes, content_type: str = "video/mp4"):
    return storage.put_stream(key, chunked(data), content_type=content_type)


def everything_stored(storage) -> list[str]:
    """Every trace of any upload: for local every file under the root (temp files and
    sidecars included); for B2 every file version and every unfinished large file."""
    if isinstance(storage, LocalStorage):
        return sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if not p.is_dir())
    versions = [version.file_name for version, _ in storage.bucket.ls("", latest_only=False, recursive=True)]
    unfinished = [f"unfinished:{large.file_name}" for large in storage.bucket.list_unfinished_large_files()]
    return versions + unfinished


def read(storage, obj, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(storage.open_range(obj.key, obj.file_id, start, end))


# The contract -----------------------------------------------------------------


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


HOSTILE_KEYS = [
    "../outside",
    "videos/../../outside",
    "videos/7/..",
    "/etc/passwd",
    "videos\\7\\x",
    "videos/7/x\x00y",
    "videos/7/x\ny",
    "",
    "videos//x",
    "videos/7/",
    "./videos/x",
    "videos/7/x.meta.json",
    "videos/7/x.part-123",
    ".multipart/0123456789abcdef0123456789abcdef/meta.json",
    "videos/.multipart/x",
    "v" * 1025,
]


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


# Local only -------------------------------------------------------------------


def test_local_writes_through_a_temp_file_and_lists_only_finished_objects(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    folder = storage.root / "videos" / "7"
    seen_mid_upload: list[list[str]] = []

    def source() -> Iterator[bytes]:
        yield b"first "
        seen_mid_upload.append(sorted(path.name for path in folder.iterdir()))
        seen_mid_upload.append([obj.key for obj in storage.list("")])
        yield b"second"

    stored = storage.put_stream(KEY, source(), content_type="video/mp4")

    [files_mid_upload, listed_mid_upload] = seen_mid_upload
    [temp_name] = files_mid_upload
    assert temp_name.startswith(KEY.rsplit("/", 1)[1] + ".part-")
    assert listed_mid_upload == []
    assert stored.file_id == KEY
    assert sorted(path.name for path in folder.iterdir()) == [Path(KEY).name, Path(KEY).name + ".meta.json"]


@pytest.mark.parametrize(("failing_call", "message"), [(1, "full"), (2, "save")])
def test_local_disk_failure_is_a_storage_error_and_leaves_nothing(tmp_path, monkeypatch, failing_call, message):
    """The sidecar is renamed into place first; if the data rename then fails, the
    sidecar goes too."""
    storage = LocalStorage(tmp_path / "storage")
    calls: list[str] = []
    real_replace = os.replace

    def replace(source, target):
        calls.append(target)
        if len(calls) == failing_call:
            raise OSError(errno.ENOSPC if message == "full" else errno.EIO, "injected")
        return real_replace(source, target)

    monkeypatch.setattr("course_app.storage.local.os.replace", replace)
    with pytest.raises(StorageError) as raised:
        storage.put_stream(KEY, [b"abc"], content_type="video/mp4")

    assert message in str(raised.value) and raised.value.retryable is (message != "full")
    assert everything_stored(storage) == []


def test_local_ignores_a_sidecar_that_does_not_match_its_file(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    stored = storage.put_stream(KEY, [b"original"], content_type="video/mp4")
    path = storage.root / KEY
    replacement = path.with_name("replacement")
    replacement.write_bytes(b"replaced")  # same size, another file: the sidecar is stale
    os.replace(replacement, path)

    stat = storage.stat(KEY, stored.file_id)
    assert (stat.sha1, stat.content_type) == (sha1(b"replaced"), "application/octet-stream")
    [listed] = storage.list("")
    assert listed.sha1 == sha1(b"replaced")


# B2 only: faults ----------------------------------------------------------------


def test_b2_multipart_upload_sends_parts_of_part_size_with_their_sha1(b2_storage, b2, monkeypatch):
    parts: list[tuple[int, int, str]] = []
    real = b2.sim.upload_part

    def upload_part(url, token, number, length, part_sha1, stream, *rest):
        parts.append((number, length, part_sha1))
        return real(url, token, number, length, part_sha1, stream, *rest)

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    data = random_bytes(3 * PART + 17)
    stored = b2_storage.put_stream(KEY, chunked(data, 100_000), content_type="video/mp4")

    slices = [data[i : i + PART] for i in range(0, len(data), PART)]
    assert parts == [(n, len(part), sha1(part)) for n, part in enumerate(slices, start=1)]
    assert b2_storage.stat(KEY, stored.file_id).size == len(data)
    assert list(b2.bucket.list_unfinished_large_files()) == []


def test_b2_keeps_about_one_part_in_memory(b2, monkeypatch):
    """Between two part uploads our side allocates only the next part's chunks: the
    part is sent from the chunks themselves, not copied into one buffer first."""
    part_size = 4 * MIB
    storage = B2Storage(b2.api, BUCKET, part_size=part_size)
    grown: list[int] = []
    after_last_part: list[int] = []
    real = b2.sim.upload_part

    def upload_part(*args):
        if after_last_part:
            grown.append(tracemalloc.get_traced_memory()[1] - after_last_part[-1])
        response = real(*args)
        tracemalloc.reset_peak()
        after_last_part.append(tracemalloc.get_traced_memory()[0])
        return response

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    tracemalloc.start()
    try:
        stored = storage.put_stream(
            KEY, (bytes([n % 251]) * (64 * KIB) for n in range(6 * 64)), content_type="video/mp4"
        )
    finally:
        tracemalloc.stop()

    assert stored.size == 6 * part_size and len(grown) == 5
    assert max(grown) < part_size // 2, [f"{g / MIB:.1f} MiB" for g in grown]


def test_b2_transient_part_failure_is_retried_on_a_fresh_upload_url(b2_storage, b2, sleeps, monkeypatch):
    urls: list[str] = []
    real = b2.sim.upload_part

    def upload_part(url, *args):
        urls.append(url)
        if len(urls) in (2, 3):  # part 2 fails twice
            raise B2ConnectionError("connection reset")
        return real(url, *args)

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    data = random_bytes(3 * PART)
    stored = b2_storage.put_stream(KEY, chunked(data), content_type="video/mp4")

    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert read(b2_storage, stored) == data
    assert len(urls) == 5 and urls[1] != urls[2] != urls[3]
    assert sleeps == [0.5, 1.0]


def test_b2_transient_single_upload_failure_is_retried(b2_storage, b2, sleeps):
    b2.sim.set_upload_errors([ServiceError("503 service_unavailable")])
    stored = put(b2_storage, KEY, b"small video")

    assert stored.sha1 == sha1(b"small video")
    assert b2_storage.stat(KEY, stored.file_id).sha1 == sha1(b"small video")
    assert b2.sim.upload_errors == [] and sleeps == [0.5]


@pytest.mark.parametrize("size", [100, 3 * PART])  # one upload_file call / a large file
def test_b2_unavailable_storage_surfaces_as_retryable_error_and_leaves_nothing(b2_storage, b2, sleeps, monkeypatch, size):
    def always_down(*args, **kwargs):
        raise ServiceError("503 service_unavailable")

    monkeypatch.setattr(b2.sim, "upload_file", always_down)
    monkeypatch.setattr(b2.sim, "upload_part", always_down)

    with pytest.raises(StorageError) as raised:
        put(b2_storage, KEY, random_bytes(size))

    assert raised.value.retryable is True
    assert str(raised.value) == UNAVAILABLE
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert everything_stored(b2_storage) == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (StorageCapExceeded(), "Storage is full (the B2 account cap was reached); an administrator needs to raise it."),
        (AccessDenied(), "Storage refused the app's credentials; an administrator needs to check the B2 settings."),
    ],
)
def test_b2_permanent_failure_is_not_retried(b2_storage, b2, sleeps, monkeypatch, error, message):
    calls: list[int] = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise error

    monkeypatch.setattr(b2.sim, "upload_part", refuse)
    with pytest.raises(StorageError) as raised:
        put(b2_storage, KEY, random_bytes(3 * PART))

    assert (raised.value.retryable, str(raised.value)) == (False, message)
    assert raised.value.__cause__ is error  # kept for the logs, not shown
    assert calls == [1] and sleeps == []
    assert everything_stored(b2_storage) == []


def test_b2_finish_whose_answer_was_lost_is_not_repeated(b2_storage, b2, monkeypatch):
    """b2sdk's HTTP layer would repeat the call, and B2 answers a second finish with
    400 (the simulator accepts it): the upload must check the file instead."""
    calls: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(api_url, token, file_id, part_sha1s):
        calls.append(file_id)
        if len(calls) > 1:
            raise AssertionError("finish_large_file repeated")
        real(api_url, token, file_id, part_sha1s)
        raise B2ConnectionError("connection reset after the file was finished")

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(2 * PART + 1)
    stored = put(b2_storage, KEY, data)

    assert calls == [stored.file_id]
    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert read(b2_storage, stored) == data


def test_b2_finish_that_failed_before_finishing_is_retried(b2_storage, b2, sleeps, monkeypatch):
    calls: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(*args):
        calls.append(args[2])
        if len(calls) == 1:
            raise ServiceError("500 internal_error")
        return real(*args)

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    stored = put(b2_storage, KEY, random_bytes(2 * PART + 1))

    assert len(calls) == 2 and sleeps == [0.5]
    assert b2_storage.stat(KEY, stored.file_id) is not None


def test_b2_upload_that_storage_reports_differently_is_removed(b2_storage, b2, monkeypatch):
    real = b2.sim.upload_file

    def upload_file(*args, **kwargs):
        response = real(*args, **kwargs)
        return {**response, "contentLength": response["contentLength"] - 1}

    monkeypatch.setattr(b2.sim, "upload_file", upload_file)
    with pytest.raises(StorageError) as raised:
        put(b2_storage, KEY, b"some bytes")

    assert raised.value.retryable is True
    assert everything_stored(b2_storage) == []


def test_b2_part_size_must_reach_the_account_minimum(b2):
    minimum = b2.api.account_info.get_absolute_minimum_part_size()
    with pytest.raises(ValueError):
        B2Storage(b2.api, BUCKET, part_size=minimum - 1)
    assert B2Storage(b2.api, BUCKET).part_size == b2.api.account_info.get_recommended_part_size()


def test_b2_missing_bucket_is_a_clear_error(b2):
    with pytest.raises(StorageError) as raised:
        B2Storage(b2.api, "no-such-bucket")
    assert (raised.value.retryable, str(raised.value)) == (
        False,
        "The storage bucket does not exist; an administrator needs to check the B2 settings.",
    )


# Choosing the backend -----------------------------------------------------------


def test_get_storage_builds_the_configured_backend_once(tmp_path, monkeypatch):
    settings = Settings(storage_backend="local", storage_dir=tmp_path / "files", _env_file=None)
    built = build_storage(settings)
    assert isinstance(built, LocalStorage) and built.root == (tmp_path / "files").resolve()

    monkeypatch.setattr("course_app.storage.get_settings", lambda: settings)
    set_storage_for_tests(None)
    try:
        first = get_storage()
        assert get_storage() is first and first.root == built.root
        replacement = LocalStorage(tmp_path / "other")
        set_storage_for_tests(replacement)
        assert get_storage() is replacement
    finally:
        set_storage_for_tests(None)


# Multipart (resumable) uploads ----------------------------------------------------
# Parts of PART bytes (256 KiB): above the simulator's 200-byte minimum part size.

MULTIPART_DATA_SIZE = 2 * PART + 1234  # three parts, the last one short


def slices(data: bytes, part_size: int = PART) -> list[bytes]:
    return [data[offset : offset + part_size] for offset in range(0, len(data), part_size)]


def infos(data: bytes, part_size: int = PART) -> list[PartInfo]:
    return [PartInfo(number, len(part), sha1(part)) for number, part in enumerate(slices(data, part_size), start=1)]


def send(storage, upload_id: str, number: int, part: bytes, key: str = KEY) -> PartInfo:
    return storage.put_part(key, upload_id, number, chunked(part, 50_000), size=len(part))


def reopened(storage, sleeps):
    """A new backend object over the same storage, as after a server restart."""
    if isinstance(storage, LocalStorage):
        return LocalStorage(storage.root)
    return B2Storage(storage.api, BUCKET, part_size=PART, sleep=sleeps.append)


def unknown_upload_id(storage) -> str:
    return secrets.token_hex(16) if storage.name == "local" else "4_zunknown_f0123456789"


def test_both_backends_offer_multipart_uploads(storage, b2):
    assert isinstance(storage, MultipartStorage) and storage.max_parts == 10_000
    if storage.name == "local":
        assert (storage.min_part_size, storage.recommended_part_size()) == (1, 8 * MIB)
    else:
        assert storage.min_part_size == b2.api.account_info.get_absolute_minimum_part_size() == 200
        assert storage.recommended_part_size() == PART  # the part_size override


def test_multipart_life_cycle_with_parts_sent_out_of_order(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/webm", sha1=sha1(data), part_size=PART)

    sent = {number: send(storage, upload_id, number, pieces[number - 1]) for number in (3, 1, 2)}
    assert [sent[number] for number in (1, 2, 3)] == infos(data)
    assert storage.list_parts(KEY, upload_id) == infos(data)
    assert list(storage.list("")) == [] and storage.stat(KEY, "") is None  # parts are not objects
    [unfinished] = storage.list_unfinished("videos/")
    assert (unfinished.key, unfinished.upload_id) == (KEY, upload_id) and unfinished.started_at is not None

    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/webm")

    assert (stored.key, stored.size, stored.sha1, stored.content_type) == (KEY, len(data), sha1(data), "video/webm")
    assert read(storage, stored) == data
    assert read(storage, stored, PART - 10, PART + 9) == data[PART - 10 : PART + 10]  # across a part boundary
    stat = storage.stat(KEY, stored.file_id)
    assert (stat.size, stat.sha1, stat.content_type) == (len(data), sha1(data), "video/webm")
    assert [(obj.key, obj.file_id, obj.size) for obj in storage.list("videos/")] == [(KEY, stored.file_id, len(data))]
    assert list(storage.list_unfinished("")) == []
    assert everything_stored(storage) == ([KEY, KEY + ".meta.json"] if storage.name == "local" else [KEY])

    storage.abort_multipart(KEY, upload_id)  # too late to abort: the object stays
    assert read(storage, stored) == data


def test_multipart_sha1_is_computed_locally_and_unknown_on_b2_when_not_declared(storage):
    data = random_bytes(PART + 7)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    parts = [send(storage, upload_id, number, piece) for number, piece in enumerate(slices(data), start=1)]

    stored = storage.complete_multipart(KEY, upload_id, parts, content_type="video/mp4")

    # B2 checks every part's SHA1 but cannot tell the whole file's (see storage/b2.py).
    assert stored.sha1 == (sha1(data) if storage.name == "local" else "")
    assert stored.size == len(data) and read(storage, stored) == data


def test_resending_a_part_replaces_it(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    first = send(storage, upload_id, 1, pieces[0])
    assert send(storage, upload_id, 1, pieces[0]) == first  # the same bytes again: the same part

    wrong = random_bytes(len(pieces[1]), seed=99)
    send(storage, upload_id, 2, wrong)
    assert storage.list_parts(KEY, upload_id) == [first, PartInfo(2, len(wrong), sha1(wrong))]
    send(storage, upload_id, 2, pieces[1])  # the right bytes replace the wrong ones
    send(storage, upload_id, 3, pieces[2])
    assert storage.list_parts(KEY, upload_id) == infos(data)

    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert read(storage, stored) == data


def test_list_parts_lets_an_upload_resume_after_a_restart(storage, sleeps):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    assert storage.list_parts(KEY, upload_id) == []
    send(storage, upload_id, 1, pieces[0])
    send(storage, upload_id, 3, pieces[2])

    restarted = reopened(storage, sleeps)
    held = restarted.list_parts(KEY, upload_id)
    assert held == [infos(data)[0], infos(data)[2]]
    missing = sorted({1, 2, 3} - {part.number for part in held})
    for number in missing:
        send(restarted, upload_id, number, pieces[number - 1])

    stored = restarted.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert (stored.size, read(restarted, stored)) == (len(data), data)


def test_complete_with_a_missing_or_different_part_fails_and_the_upload_stays_resumable(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    send(storage, upload_id, 1, pieces[0])
    send(storage, upload_id, 3, pieces[2])

    with pytest.raises(StorageError) as missing:
        storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert "Part 2" in str(missing.value) and missing.value.retryable is False

    send(storage, upload_id, 2, pieces[1])
    wrong_sha1 = [PartInfo(1, len(pieces[0]), sha1(b"other bytes")), *infos(data)[1:]]
    with pytest.raises(StorageError) as different:
        storage.complete_multipart(KEY, upload_id, wrong_sha1, content_type="video/mp4")
    assert "Part 1" in str(different.value) and different.value.retryable is False

    with pytest.raises(StorageError) as extra:  # storage holds part 3, the list ends at 2
        storage.complete_multipart(KEY, upload_id, infos(data)[:2], content_type="video/mp4")
    assert "3" in str(extra.value) and extra.value.retryable is False

    assert list(storage.list("")) == [] and storage.stat(KEY, "") is None
    assert [upload.upload_id for upload in storage.list_unfinished("")] == [upload_id]
    assert storage.list_parts(KEY, upload_id) == infos(data)
    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert read(storage, stored) == data


def test_complete_refuses_malformed_part_lists_before_touching_storage(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(storage, upload_id, number, piece)
    one, two, three = infos(data)
    malformed = [
        [],
        [one, three],  # a gap
        [one, two, two, three],  # a duplicate
        [PartInfo(0, 1, one.sha1), one],
        [one, two, PartInfo(3, three.size, "not-a-sha1")],
        [one, two, PartInfo(3, 0, three.sha1)],
        [(1, one.size, one.sha1)],
    ]
    if storage.min_part_size > 1:  # every part but the last reaches the minimum
        small = random_bytes(storage.min_part_size - 1)
        malformed.append([PartInfo(1, len(small), sha1(small)), two])
    for parts in malformed:
        with pytest.raises(ValueError):
            storage.complete_multipart(KEY, upload_id, parts, content_type="video/mp4")
    assert storage.list_parts(KEY, upload_id) == infos(data)
    stored = storage.complete_multipart(KEY, upload_id, [three, one, two], content_type="video/mp4")  # any order
    assert read(storage, stored) == data


def test_complete_called_again_returns_the_same_object(storage, b2, monkeypatch):
    finishes: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(api_url, token, file_id, part_sha1s):
        finishes.append(file_id)
        if len(finishes) > 1:  # what real B2 answers to a second finish
            raise BadRequest("file is not in progress", "bad_request")
        return real(api_url, token, file_id, part_sha1s)

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(storage, upload_id, number, piece)

    first = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    again = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert again == first
    assert read(storage, again) == data
    assert [obj.key for obj in storage.list("")] == [KEY]
    with pytest.raises(StorageError) as other_parts:  # not what was completed
        storage.complete_multipart(KEY, upload_id, infos(data)[:2], content_type="video/mp4")
    assert other_parts.value.retryable is False
    if storage.name == "b2":
        assert finishes[0] == upload_id


def test_abort_leaves_nothing_and_may_be_repeated(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    for number, piece in enumerate(slices(data)[:2], start=1):
        send(storage, upload_id, number, piece)

    storage.abort_multipart(KEY, upload_id)

    assert list(storage.list_unfinished("")) == []
    assert list(storage.list("")) == []
    assert everything_stored(storage) == []
    with pytest.raises(ObjectNotFound):
        storage.list_parts(KEY, upload_id)
    with pytest.raises(ObjectNotFound):
        send(storage, upload_id, 3, slices(data)[2])
    with pytest.raises(ObjectNotFound):
        storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    storage.abort_multipart(KEY, upload_id)
    storage.abort_multipart(KEY, unknown_upload_id(storage))
    assert everything_stored(storage) == []


def test_list_unfinished_shows_started_uploads_by_prefix(storage):
    keys = ["videos/1/a", "videos/1/b", "videos/12/c", "other/d"]
    ids = {key: storage.start_multipart(key, content_type="video/mp4", part_size=PART) for key in keys}

    def unfinished(prefix: str) -> list[tuple[str, str]]:
        return sorted((upload.key, upload.upload_id) for upload in storage.list_unfinished(prefix))

    assert unfinished("videos/1/") == [("videos/1/a", ids["videos/1/a"]), ("videos/1/b", ids["videos/1/b"])]
    assert [key for key, _ in unfinished("videos/1")] == ["videos/1/a", "videos/1/b", "videos/12/c"]
    assert [key for key, _ in unfinished("")] == sorted(keys)
    assert unfinished("videos/2/") == []
    assert all(upload.started_at is not None for upload in storage.list_unfinished(""))

    storage.abort_multipart("videos/1/a", ids["videos/1/a"])
    part = random_bytes(300)
    storage.complete_multipart(
        "other/d", ids["other/d"], [send(storage, ids["other/d"], 1, part, key="other/d")], content_type="video/mp4"
    )
    assert [key for key, _ in unfinished("")] == ["videos/1/b", "videos/12/c"]
    assert list(storage.list("videos/")) == []  # unfinished uploads are not objects
    for prefix in ["../", "videos//", ".multipart/"]:
        with pytest.raises(ValueError):
            storage.list_unfinished(prefix)


@pytest.mark.parametrize("error", [UploadAborted("client went away"), RuntimeError("boom")])
def test_a_part_stream_that_raises_leaves_that_part_unrecorded(storage, error):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    first = send(storage, upload_id, 1, pieces[0])

    def failing(part: bytes) -> Iterator[bytes]:
        yield part[: len(part) // 2]
        raise error

    for number in (2, 1):  # a new part, and a re-sent one
        with pytest.raises(type(error)) as raised:
            storage.put_part(KEY, upload_id, number, failing(pieces[number - 1]), size=len(pieces[number - 1]))
        assert raised.value is error
    # B2 keeps the earlier copy of a part sent again; local disk writes parts in place,
    # so that copy is gone (never half of it: the part is simply not there).
    assert storage.list_parts(KEY, upload_id) == ([] if storage.name == "local" else [first])
    if storage.name == "local":  # no temp file left behind
        left = sorted(Path(path).name for path in everything_stored(storage))
        assert left == ["1.lock", "2.lock", "data", "meta.json"]
    for number, piece in enumerate(pieces, start=1):
        send(storage, upload_id, number, piece)
    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert read(storage, stored) == data and stored.sha1 in (sha1(data), "")


def test_a_part_of_the_wrong_size_is_refused(storage):
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    part = random_bytes(PART - 1)
    with pytest.raises(UploadAborted):  # fewer bytes than announced
        storage.put_part(KEY, upload_id, 1, chunked(part), size=len(part) + 1)

    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(1)
            yield b"x" * 1000

    with pytest.raises(UploadAborted):  # more: reading stops at once
        storage.put_part(KEY, upload_id, 1, endless(), size=2500)
    assert len(pulled) == 3
    assert storage.list_parts(KEY, upload_id) == []

    for number, size in [(0, 10), (10_001, 10), (True, 10), ("1", 10), (1, 0), (1, -1), (1, 1.5), (1, None)]:
        with pytest.raises(ValueError):
            storage.put_part(KEY, upload_id, number, [b"x" * 10], size=size)
    assert storage.list_parts(KEY, upload_id) == []


HOSTILE_UPLOAD_IDS = ["", "../x", "a/b", "..", "x y", "x\x00", None, 5, "x" * 201]


@pytest.mark.parametrize("upload_id", HOSTILE_UPLOAD_IDS)
def test_hostile_upload_ids_are_refused(storage, tmp_path, upload_id):
    before = sorted(tmp_path.rglob("*"))
    consumed: list[int] = []

    def source() -> Iterator[bytes]:
        consumed.append(1)
        yield b"x"

    calls = [
        lambda: storage.put_part(KEY, upload_id, 1, source(), size=1),
        lambda: storage.list_parts(KEY, upload_id),
        lambda: storage.complete_multipart(KEY, upload_id, [PartInfo(1, 1, sha1(b"x"))], content_type="video/mp4"),
        lambda: storage.abort_multipart(KEY, upload_id),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert consumed == [] and sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_by_multipart_calls(storage, key):
    with pytest.raises(ValueError):
        storage.start_multipart(key, content_type="video/mp4", part_size=PART)
    upload_id = unknown_upload_id(storage)
    with pytest.raises(ValueError):
        storage.put_part(key, upload_id, 1, [b"x"], size=1)
    for call in (storage.list_parts, storage.abort_multipart):
        with pytest.raises(ValueError):
            call(key, upload_id)
    with pytest.raises(ValueError):
        storage.complete_multipart(key, upload_id, [PartInfo(1, 1, sha1(b"x"))], content_type="video/mp4")
    assert everything_stored(storage) == []


def test_an_upload_id_serves_only_its_own_key(storage):
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    part = send(storage, upload_id, 1, random_bytes(300))
    other = "videos/7/another"
    with pytest.raises(ValueError):
        storage.complete_multipart(other, upload_id, [part], content_type="video/mp4")
    with pytest.raises(ValueError):
        storage.abort_multipart(other, upload_id)
    assert storage.list_parts(KEY, upload_id) == [part]
    assert storage.stat(other, "") is None


def test_start_refuses_a_malformed_sha1_or_content_type(storage):
    for sha1_value in ["abc", "g" * 40, 5]:
        with pytest.raises(ValueError):
            storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1_value, part_size=PART)
    with pytest.raises(ValueError):
        storage.start_multipart(KEY, content_type="", part_size=PART)
    assert list(storage.list_unfinished("")) == [] and everything_stored(storage) == []


# Multipart, local only ------------------------------------------------------------


def test_local_declared_sha1_that_does_not_match_fails_complete_and_stores_no_object(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(b"another file"), part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(storage, upload_id, number, piece)

    with pytest.raises(StorageError) as raised:
        storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert "checksum" in str(raised.value) and raised.value.retryable is False
    assert storage.stat(KEY, KEY) is None and list(storage.list("")) == []
    assert not (storage.root / "videos" / "7").exists() or list((storage.root / "videos" / "7").iterdir()) == []
    assert [upload.upload_id for upload in storage.list_unfinished("")] == [upload_id]  # left for abort
    storage.abort_multipart(KEY, upload_id)
    assert everything_stored(storage) == []


@pytest.mark.parametrize(
    "upload_id",
    ["0123456789ABCDEF0123456789ABCDEF", "0" * 31, "0" * 33, "0" * 31 + "/", "../" + "0" * 29, "0" * 32 + "\n"],
)
def test_local_upload_ids_are_exactly_32_lowercase_hex_digits(tmp_path, upload_id):
    storage = LocalStorage(tmp_path / "storage")
    for call in (storage.list_parts, storage.abort_multipart):
        with pytest.raises(ValueError):
            call(KEY, upload_id)
    with pytest.raises(ValueError):
        storage.put_part(KEY, upload_id, 1, [b"x"], size=1)
    assert everything_stored(storage) == []


def test_local_parts_live_in_a_hidden_folder(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", sha1="A" * 40, part_size=PART)
    send(storage, upload_id, 1, b"part one")

    folder = storage.root / ".multipart" / upload_id
    assert sorted(path.name for path in folder.iterdir()) == ["1.lock", "1.part", "data", "meta.json"]
    assert (folder / "data").read_bytes() == b"part one"  # the parts' bytes, in place
    record = json.loads((folder / "1.part").read_text())  # the part's record
    assert (record["size"], record["sha1"]) == (8, sha1(b"part one"))
    assert json.loads((folder / "meta.json").read_text())["part_size"] == PART
    assert [upload.key for upload in storage.list_unfinished("")] == [KEY]
    assert list(storage.list("")) == [] and list(storage.list(".multi")) == []


def test_local_complete_after_a_crash_before_cleanup_returns_the_object(tmp_path, monkeypatch):
    """The object is in place but the parts folder is still there (the cleanup
    failed): complete again returns the same object, and the leftovers go."""
    storage = LocalStorage(tmp_path / "storage")
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(storage, upload_id, number, piece)
    real = LocalStorage._remove_upload
    failures: list[str] = []

    def remove_upload(folder):
        if not failures:
            failures.append(folder)
            raise OSError(errno.EIO, "injected")
        return real(folder)

    monkeypatch.setattr(LocalStorage, "_remove_upload", staticmethod(remove_upload))
    first = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert failures and read(storage, first) == data
    assert [upload.upload_id for upload in storage.list_unfinished("")] == [upload_id]

    again = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert (again.size, again.sha1) == (first.size, first.sha1) == (len(data), sha1(data))
    assert list(storage.list_unfinished("")) == []
    assert everything_stored(storage) == [KEY, KEY + ".meta.json"]


@pytest.mark.parametrize("restarted", [False, True], ids=["hashed-ahead", "after-a-restart"])
def test_local_multipart_memory_stays_bounded(tmp_path, restarted):
    """40 MiB in 4 MiB parts: sending a part (and hashing it ahead) and completing
    hold about a MiB, not a part and never the file, also when complete has to hash
    the whole file because the process restarted."""
    storage = LocalStorage(tmp_path / "storage")
    part_size, count, chunk = 4 * MIB, 10, 64 * KIB

    def part_chunks(number: int) -> Iterator[bytes]:
        for index in range(part_size // chunk):
            yield bytes([(number * 31 + index) % 251]) * chunk  # fresh objects: holding them would show

    expected = hashlib.sha1()
    for number in range(1, count + 1):
        for piece in part_chunks(number):
            expected.update(piece)

    upload_id = storage.start_multipart(
        KEY, content_type="video/mp4", sha1=expected.hexdigest(), part_size=part_size
    )
    tracemalloc.start()
    try:
        parts, part_peaks = [], []
        for number in range(1, count + 1):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            parts.append(storage.put_part(KEY, upload_id, number, part_chunks(number), size=part_size))
            part_peaks.append(tracemalloc.get_traced_memory()[1] - base)
        if restarted:
            local_parts._hash_cursors.clear()
            storage = LocalStorage(storage.root)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        stored = storage.complete_multipart(KEY, upload_id, parts, content_type="video/mp4")
        join_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()

    assert (stored.size, stored.sha1) == (count * part_size, expected.hexdigest())
    assert max(part_peaks) < MIB, f"sending a 4 MiB part held {max(part_peaks) / MIB:.1f} MiB"
    assert join_peak < 3 * MIB, f"completing 40 MiB held {join_peak / MIB:.1f} MiB"
    assert read(storage, stored, count * part_size - 3) == bytes([(count * 31 + part_size // chunk - 1) % 251]) * 3


# Local multipart: parts written in place, the whole-file SHA1 hashed ahead ------------


@pytest.fixture
def local(tmp_path):
    local_parts._hash_cursors.clear()
    yield LocalStorage(tmp_path / "storage")
    local_parts._hash_cursors.clear()


@pytest.fixture
def reads_at_complete(monkeypatch) -> list[tuple[int, int]]:
    """(offset, length) of every range complete_multipart reads to hash the file."""
    ranges: list[tuple[int, int]] = []
    real = local_parts.whole_file_sha1

    def whole_file_sha1(key, fd, ordered, total):
        real_hash_range = local_parts.hash_range

        def hash_range(fd, offset, length, digest, buffer):
            ranges.append((offset, length))
            return real_hash_range(fd, offset, length, digest, buffer)

        monkeypatch.setattr(local_parts, "hash_range", hash_range)
        try:
            return real(key, fd, ordered, total)
        finally:
            monkeypatch.setattr(local_parts, "hash_range", real_hash_range)

    monkeypatch.setattr(local_parts, "whole_file_sha1", whole_file_sha1)
    return ranges


def data_inode(storage: LocalStorage, upload_id: str) -> int:
    return os.stat(storage.root / ".multipart" / upload_id / "data").st_ino


def test_local_complete_renames_the_parts_file_and_uses_the_sha1_hashed_ahead(local, reads_at_complete):
    data = random_bytes(5 * PART + 99)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(local, upload_id, number, piece)
    inode = data_inode(local, upload_id)

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert reads_at_complete == [(len(data), 0)]  # nothing read again: the parts were hashed as they came
    path = local.root / KEY
    assert os.stat(path).st_ino == inode  # the parts' file became the object: no second write
    assert path.read_bytes() == data and local.stat(KEY, KEY).sha1 == sha1(data)  # the sidecar matches the file
    assert everything_stored(local) == [KEY, KEY + ".meta.json"] and local_parts._hash_cursors == {}


def test_local_complete_after_a_restart_hashes_the_file_once(local, reads_at_complete):
    data = random_bytes(3 * PART + 5)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    for number, piece in enumerate(slices(data)[:2], start=1):
        send(local, upload_id, number, piece)

    local_parts._hash_cursors.clear()  # the process restarted: what was hashed ahead is lost
    restarted = LocalStorage(local.root)
    for number in (3, 4):
        send(restarted, upload_id, number, slices(data)[number - 1])
    stored = restarted.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert reads_at_complete == [(0, len(data))]
    assert read(restarted, stored) == data


@pytest.mark.parametrize("order", [(4, 3, 2, 1), (2, 4, 1, 3), (1, 3, 4, 2)])
def test_local_parts_out_of_order_are_hashed_once_the_gap_is_filled(local, reads_at_complete, order):
    data = random_bytes(3 * PART + 77)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number in order:
        send(local, upload_id, number, slices(data)[number - 1])

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.size, stored.sha1, read(local, stored)) == (len(data), sha1(data), data)
    assert reads_at_complete == [(len(data), 0)]


def test_local_hashing_ahead_stops_at_its_budget_and_complete_hashes_the_rest(local, reads_at_complete,
                                                                              monkeypatch):
    monkeypatch.setattr(local_parts, "HASH_AHEAD_BYTES", 1)  # at most one part per request
    data = random_bytes(4 * PART + 1)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number in (5, 4, 3, 2, 1):  # part 1 arrives last: only it is hashed by its request
        send(local, upload_id, number, slices(data)[number - 1])

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert stored.sha1 == sha1(data)
    assert reads_at_complete == [(PART, len(data) - PART)]


def test_local_part_sent_again_with_other_bytes_is_the_one_completed(local, reads_at_complete):
    data = random_bytes(3 * PART + 10)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    first = [send(local, upload_id, number, piece) for number, piece in enumerate(slices(data), start=1)]
    assert first == infos(data)
    assert send(local, upload_id, 2, slices(data)[1]) == first[1]  # the same bytes again: nothing changes

    other = slices(data)[1][:-1] + bytes([slices(data)[1][-1] ^ 0xFF])  # one byte differs
    replaced = send(local, upload_id, 2, other)
    new_data = slices(data)[0] + other + slices(data)[2] + slices(data)[3]
    assert local.list_parts(KEY, upload_id) == infos(new_data) and replaced == infos(new_data)[1]
    with pytest.raises(StorageError):  # the old part 2 is not there any more
        local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    stored = local.complete_multipart(KEY, upload_id, infos(new_data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(new_data), new_data)
    assert local.stat(KEY, KEY).sha1 == sha1(new_data)
    assert reads_at_complete[-1] == (0, len(new_data))  # what was hashed ahead included the old part 2


def test_local_part_changed_by_another_process_is_not_trusted_from_the_hash_ahead(local, reads_at_complete):
    """A part sent again through another process (whose cursor this one never sees):
    complete compares what its cursor hashed with the records and hashes again."""
    data = random_bytes(2 * PART + 10)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(local, upload_id, number, piece)
    cursor = local_parts._hash_cursors.pop((str(local.root), upload_id))
    other = random_bytes(PART, seed=5)
    send(LocalStorage(local.root), upload_id, 1, other)  # "another process"
    local_parts._hash_cursors[(str(local.root), upload_id)] = cursor
    new_data = other + data[PART:]

    stored = local.complete_multipart(KEY, upload_id, infos(new_data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(new_data), new_data)
    assert reads_at_complete == [(0, len(new_data))]


def test_local_part_rewritten_while_it_is_hashed_ahead_is_hashed_again(local, monkeypatch):
    """While a request hashes part 2 ahead, part 2 is sent again twice: once cut off
    part-way (other bytes in place, no record), then with the original bytes. The
    record looks the same as before, but what was read was not those bytes: the
    cursor notices (the record is not the one it saw) and complete gets it right."""
    data = random_bytes(2 * PART + 10)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    folder = str(local.root / ".multipart" / upload_id)
    send(local, upload_id, 2, slices(data)[1])
    real = local_parts.hash_range
    rewrites: list[int] = []

    def hash_range(fd, offset, length, digest, buffer):
        if offset != PART or rewrites:
            return real(fd, offset, length, digest, buffer)
        rewrites.append(offset)
        os.unlink(os.path.join(folder, "2.part"))  # sent again, cut off after its bytes were written
        os.pwrite(fd, bytes(length), offset)
        try:
            return real(fd, offset, length, digest, buffer)
        finally:  # and sent again once more, with the original bytes
            os.pwrite(fd, slices(data)[1], offset)
            local_parts.write_part_record(folder, 2, PART, sha1(slices(data)[1]))

    monkeypatch.setattr(local_parts, "hash_range", hash_range)
    send(local, upload_id, 1, slices(data)[0])  # its request hashes parts 1 and 2 ahead
    monkeypatch.undo()
    assert rewrites == [PART]
    send(local, upload_id, 3, slices(data)[2])

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(data), data)


def test_local_parts_must_have_the_part_size_but_the_last(local):
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    consumed: list[int] = []

    def source(data: bytes) -> Iterator[bytes]:
        consumed.append(1)
        yield data

    with pytest.raises(ValueError):  # larger than the part size: refused before reading
        local.put_part(KEY, upload_id, 1, source(bytes(PART + 1)), size=PART + 1)
    assert consumed == [] and local.list_parts(KEY, upload_id) == []

    short, last = random_bytes(PART - 1), random_bytes(100, seed=2)
    parts = [send(local, upload_id, 1, short), send(local, upload_id, 2, last)]
    with pytest.raises(ValueError) as refused:  # a part but the last that is short
        local.complete_multipart(KEY, upload_id, parts, content_type="video/mp4")
    assert "part 1" in str(refused.value)
    assert local.stat(KEY, KEY) is None and local.list_parts(KEY, upload_id) == parts

    data = random_bytes(PART) + last
    send(local, upload_id, 1, data[:PART])
    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert (stored.sha1, read(local, stored)) == (sha1(data), data)


def test_local_bytes_written_past_the_last_part_are_cut_off(local):
    """Part 3 sent, then the file turns out to end in part 2 (the caller's list says
    so after part 3 failed part-way): only the recorded parts make the object."""
    data = random_bytes(PART + 500)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)

    def failing() -> Iterator[bytes]:
        yield random_bytes(1000, seed=3)
        raise UploadAborted("client went away")

    with pytest.raises(UploadAborted):
        local.put_part(KEY, upload_id, 3, failing(), size=2000)
    for number, piece in enumerate(slices(data), start=1):
        send(local, upload_id, number, piece)

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.size, stored.sha1, read(local, stored)) == (len(data), sha1(data), data)
    assert os.path.getsize(local.root / KEY) == len(data)


def test_local_one_writer_per_part_and_no_complete_while_a_part_is_written(local):
    data = random_bytes(2 * PART)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    send(local, upload_id, 1, slices(data)[0])
    started, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def slow() -> Iterator[bytes]:
        yield slices(data)[1][:1000]
        started.set()
        release.wait(10)
        yield slices(data)[1][1000:]

    def sending() -> None:
        outcome.append(local.put_part(KEY, upload_id, 2, slow(), size=PART))

    writer = threading.Thread(target=sending)
    writer.start()
    try:
        assert started.wait(10)
        with pytest.raises(StorageError) as busy:  # the same part from another request
            send(LocalStorage(local.root), upload_id, 2, slices(data)[1])
        assert busy.value.retryable and "Part 2" in str(busy.value)
        with pytest.raises(StorageError) as arriving:
            local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
        assert arriving.value.retryable
        send(local, upload_id, 1, slices(data)[0])  # other parts go on meanwhile
    finally:
        release.set()
        writer.join(10)
    assert outcome == [infos(data)[1]]
    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert (stored.sha1, read(local, stored)) == (sha1(data), data)


def test_local_part_arriving_after_complete_finds_the_upload_gone(local):
    data = random_bytes(PART + 3)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(local, upload_id, number, piece)
    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    with pytest.raises(ObjectNotFound):
        send(local, upload_id, 2, slices(data)[1])
    assert read(local, stored) == data


def test_local_complete_again_after_the_object_was_placed_does_not_touch_it(local, monkeypatch):
    """Killed after the rename, before the folder went: the data file is the object now;
    complete again returns it, removes the folder, and never recreates the data file."""
    data = random_bytes(2 * PART + 1)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(local, upload_id, number, piece)
    monkeypatch.setattr(LocalStorage, "_remove_upload", staticmethod(lambda folder: None))
    first = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    monkeypatch.undo()
    local_parts._hash_cursors.clear()
    with pytest.raises(ObjectNotFound):  # a late part cannot bring the data file back
        send(LocalStorage(local.root), upload_id, 1, slices(data)[0])

    again = LocalStorage(local.root).complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (again.size, again.sha1) == (first.size, first.sha1) == (len(data), sha1(data))
    assert read(local, again) == data
    assert everything_stored(local) == [KEY, KEY + ".meta.json"]


def test_local_upload_started_by_the_old_layout_cannot_go_on_but_can_be_aborted(local):
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    folder = local.root / ".multipart" / upload_id
    meta = json.loads((folder / "meta.json").read_text())
    del meta["part_size"]
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "data").unlink()
    (folder / "1.part").write_bytes(b"part bytes, old style")

    for call in (
        lambda: send(local, upload_id, 2, b"x"),
        lambda: local.list_parts(KEY, upload_id),
        lambda: local.complete_multipart(KEY, upload_id, [PartInfo(1, 21, sha1(b"x"))], content_type="video/mp4"),
    ):
        with pytest.raises(StorageError) as refused:
            call()
        assert not refused.value.retryable and "start again" in str(refused.value)
    assert [upload.upload_id for upload in local.list_unfinished("")] == [upload_id]
    local.abort_multipart(KEY, upload_id)
    assert everything_stored(local) == []


# Multipart, B2 only ---------------------------------------------------------------


def test_b2_multipart_start_records_the_declared_sha1(b2_storage, b2):
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data))

    [large] = b2.bucket.list_unfinished_large_files()
    assert (large.file_id, large.file_name, large.content_type) == (upload_id, KEY, "video/mp4")
    assert large.file_info == {"large_file_sha1": sha1(data)}
    for number, piece in enumerate(slices(data), start=1):
        send(b2_storage, upload_id, number, piece)
    stored = b2_storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert stored.sha1 == sha1(data) == b2_storage.stat(KEY, stored.file_id).sha1
    assert b2.bucket.get_file_info_by_id(upload_id).file_info["large_file_sha1"] == sha1(data)


def test_b2_finish_that_lost_the_declared_sha1_is_removed(b2_storage, b2, monkeypatch):
    real = b2.sim.finish_large_file

    def finish_large_file(*args):
        response = real(*args)
        return {**response, "fileInfo": {}}  # storage kept the bytes but not the file info

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data))
    for number, piece in enumerate(slices(data), start=1):
        send(b2_storage, upload_id, number, piece)

    with pytest.raises(StorageError) as raised:
        b2_storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert raised.value.retryable is True
    assert everything_stored(b2_storage) == []


def test_b2_multipart_finish_whose_answer_was_lost_counts_as_done(b2_storage, b2, monkeypatch):
    calls: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(api_url, token, file_id, part_sha1s):
        calls.append(file_id)
        if len(calls) > 1:
            raise BadRequest("file is not in progress", "bad_request")
        real(api_url, token, file_id, part_sha1s)
        raise B2ConnectionError("connection reset after the file was finished")

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")
    for number, piece in enumerate(slices(data), start=1):
        send(b2_storage, upload_id, number, piece)

    stored = b2_storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert calls == [upload_id]
    assert (stored.file_id, stored.size) == (upload_id, len(data))
    assert read(b2_storage, stored) == data


def test_b2_part_that_fails_once_is_retried_on_a_fresh_upload_url(b2_storage, b2, sleeps, monkeypatch):
    urls: list[str] = []
    real = b2.sim.upload_part

    def upload_part(url, *args):
        urls.append(url)
        if len(urls) == 1:
            raise B2ConnectionError("connection reset")
        return real(url, *args)

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")
    part = random_bytes(PART)

    assert send(b2_storage, upload_id, 1, part) == PartInfo(1, PART, sha1(part))
    assert len(urls) == 2 and urls[0] != urls[1]
    assert sleeps == [0.5]
    assert b2_storage.list_parts(KEY, upload_id) == [PartInfo(1, PART, sha1(part))]


def test_b2_part_upload_that_keeps_failing_is_a_retryable_error(b2_storage, b2, sleeps, monkeypatch):
    def always_down(*args, **kwargs):
        raise ServiceError("503 service_unavailable")

    monkeypatch.setattr(b2.sim, "upload_part", always_down)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")

    with pytest.raises(StorageError) as raised:
        send(b2_storage, upload_id, 1, random_bytes(PART))

    assert (raised.value.retryable, str(raised.value)) == (True, UNAVAILABLE)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert b2_storage.list_parts(KEY, upload_id) == []  # nothing recorded; the upload can go on
    assert [upload.upload_id for upload in b2_storage.list_unfinished("")] == [upload_id]


def test_b2_multipart_part_size_limits(b2_storage):
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")
    with pytest.raises(ValueError):  # more than B2's largest part: refused before reading
        b2_storage.put_part(KEY, upload_id, 1, iter(()), size=5 * 1000**3 + 1)
