"""Multipart uploads on LocalStorage only (course_app/storage/local_multipart.py)."""

from __future__ import annotations

import errno
import hashlib
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from course_app.storage import StorageError
from course_app.storage import local_hashing
from course_app.storage.local import LocalStorage
from tests.unit.storage.support import (
    KEY,
    KIB,
    MIB,
    MULTIPART_DATA_SIZE,
    PART,
    everything_stored,
    infos,
    random_bytes,
    read,
    send,
    sha1,
    slices,
)


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
            local_hashing._hash_cursors.clear()
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
