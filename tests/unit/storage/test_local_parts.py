"""Local multipart: parts written in place (course_app/storage/local_parts.py), the
whole-file SHA1 hashed ahead (local_hashing.py): a part that arrives in order while
it streams, one that arrives early read back in the background once the gap before
it is filled."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import pytest

from course_app.storage import ObjectNotFound, StorageError, UploadAborted
from course_app.storage import local_hashing, local_parts
from course_app.storage.base import PartInfo
from course_app.storage.local import LocalStorage
from tests.unit.storage.support import KEY, PART, everything_stored, infos, random_bytes, read, send, sha1, slices


@pytest.fixture
def local(tmp_path):
    local_hashing._hash_cursors.clear()
    yield LocalStorage(tmp_path / "storage")
    local_hashing._hash_cursors.clear()


@pytest.fixture
def reads_at_complete(monkeypatch) -> list[tuple[int, int]]:
    """(offset, length) of every range complete_multipart reads to hash the file."""
    ranges: list[tuple[int, int]] = []
    real = local_hashing.whole_file_sha1

    def whole_file_sha1(key, fd, ordered, total):
        real_hash_range = local_hashing.hash_range

        def hash_range(fd, offset, length, digest, buffer):
            ranges.append((offset, length))
            return real_hash_range(fd, offset, length, digest, buffer)

        monkeypatch.setattr(local_hashing, "hash_range", hash_range)
        try:
            return real(key, fd, ordered, total)
        finally:
            monkeypatch.setattr(local_hashing, "hash_range", real_hash_range)

    monkeypatch.setattr(local_hashing, "whole_file_sha1", whole_file_sha1)
    return ranges


def data_inode(storage: LocalStorage, upload_id: str) -> int:
    return os.stat(storage.root / ".multipart" / upload_id / "data").st_ino


class DataReads:
    """(offset, bytes) of every positional read (os.pread / os.preadv) of an upload's
    data file, whoever makes it."""

    def __init__(self, monkeypatch) -> None:
        self.inode: int | None = None
        self.ranges: list[tuple[int, int]] = []
        real_pread, real_preadv = os.pread, os.preadv

        def pread(fd, length, offset):
            data = real_pread(fd, length, offset)
            self._note(fd, offset, len(data))
            return data

        def preadv(fd, buffers, offset, *flags):
            count = real_preadv(fd, buffers, offset, *flags)
            self._note(fd, offset, count)
            return count

        monkeypatch.setattr(os, "pread", pread)
        monkeypatch.setattr(os, "preadv", preadv)

    def _note(self, fd: int, offset: int, count: int) -> None:
        if count and os.fstat(fd).st_ino == self.inode:
            self.ranges.append((offset, count))

    def watch(self, storage: LocalStorage, upload_id: str) -> None:
        self.inode = data_inode(storage, upload_id)

    def parts(self) -> set[int]:
        """The part numbers (PART-sized parts) whose bytes were read."""
        return {number for offset, count in self.ranges
                for number in range(offset // PART + 1, (offset + count - 1) // PART + 2)}

    def total(self) -> int:
        return sum(count for _, count in self.ranges)


@pytest.fixture
def data_reads(monkeypatch) -> DataReads:
    return DataReads(monkeypatch)


def rchar() -> int:
    """Bytes this process has read through any read-like system call (/proc/self/io)."""
    with open("/proc/self/io", "rb") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(b"rchar:"))


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
    assert everything_stored(local) == [KEY, KEY + ".meta.json"] and local_hashing._hash_cursors == {}


def test_local_complete_after_a_restart_hashes_the_file_once(local, reads_at_complete):
    data = random_bytes(3 * PART + 5)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    for number, piece in enumerate(slices(data)[:2], start=1):
        send(local, upload_id, number, piece)

    local_hashing._hash_cursors.clear()  # the process restarted: what was hashed ahead is lost
    restarted = LocalStorage(local.root)
    for number in (3, 4):
        send(restarted, upload_id, number, slices(data)[number - 1])
    stored = restarted.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert reads_at_complete == [(0, len(data))]
    assert read(restarted, stored) == data


def test_local_parts_in_order_are_hashed_as_they_stream_and_never_read_back(local, reads_at_complete, data_reads):
    data = random_bytes(3 * PART + 77)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    data_reads.watch(local, upload_id)
    before = rchar()
    for number, piece in enumerate(slices(data), start=1):
        send(local, upload_id, number, piece)
    read_while_sending = rchar() - before

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert data_reads.ranges == [] and reads_at_complete == [(len(data), 0)]  # not read back, nor at complete
    # Whatever the way of reading: the process read its small records and meta, not a part.
    assert read_while_sending < PART // 4
    assert read(local, stored) == data


@pytest.mark.parametrize(("order", "read_back"), [
    ((4, 3, 2, 1), {2, 3, 4}),
    ((2, 4, 1, 3), {2, 4}),
    ((1, 3, 4, 2), {3, 4}),
    ((1, 2, 4, 3), {4}),
])
def test_local_parts_out_of_order_are_hashed_once_the_gap_is_filled(local, reads_at_complete, data_reads, order,
                                                                   read_back):
    """Only the parts that arrived before the one ahead of them are read back (once
    each); the others are hashed while they stream."""
    data = random_bytes(3 * PART + 77)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    data_reads.watch(local, upload_id)
    for number in order:
        send(local, upload_id, number, slices(data)[number - 1])
        assert local_hashing.settle()  # the next part comes once the read-back is done

    assert data_reads.parts() == read_back
    assert data_reads.total() == sum(len(slices(data)[number - 1]) for number in read_back)
    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.size, stored.sha1, read(local, stored)) == (len(data), sha1(data), data)
    assert reads_at_complete == [(len(data), 0)]


def test_local_part_arriving_while_the_one_before_streams_is_read_back_after_it(local, reads_at_complete,
                                                                                data_reads):
    """Part 2 arrives whole while part 1 is still streaming (part 1 holds the cursor):
    part 2 is written only, and read back once part 1 is recorded and lets the
    cursor go; part 3, next in line by then, is hashed while it streams."""
    data = random_bytes(2 * PART + 300)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    data_reads.watch(local, upload_id)
    started, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def slow() -> Iterator[bytes]:
        yield slices(data)[0][:1000]
        started.set()
        release.wait(10)
        yield slices(data)[0][1000:]

    writer = threading.Thread(target=lambda: outcome.append(local.put_part(KEY, upload_id, 1, slow(), size=PART)))
    writer.start()
    try:
        assert started.wait(10)
        assert send(local, upload_id, 2, slices(data)[1]) == infos(data)[1]
        assert local_hashing.settle()
        assert data_reads.ranges == []
    finally:
        release.set()
        writer.join(10)
    assert outcome == [infos(data)[0]]
    assert local_hashing.settle()
    assert data_reads.ranges == [(PART, PART)]  # part 2, read back once part 1 let the cursor go
    send(local, upload_id, 3, slices(data)[2])

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(data), data)
    assert data_reads.ranges == [(PART, PART)] and reads_at_complete == [(len(data), 0)]


def test_local_part_in_order_cut_off_part_way_leaves_the_hash_as_it_was(local, reads_at_complete, data_reads):
    """An in-order part whose stream breaks part-way is not hashed into the whole-file
    SHA1 (its bytes so far are forgotten with it); sent again, it is hashed whole."""
    data = random_bytes(2 * PART + 300)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    data_reads.watch(local, upload_id)
    send(local, upload_id, 1, slices(data)[0])

    def cut_off() -> Iterator[bytes]:
        yield slices(data)[1][: PART // 2]
        raise UploadAborted("client went away")

    with pytest.raises(UploadAborted):
        local.put_part(KEY, upload_id, 2, cut_off(), size=PART)
    with pytest.raises(UploadAborted):  # too short
        local.put_part(KEY, upload_id, 2, iter([slices(data)[1][:100]]), size=PART)
    for number in (2, 3):
        send(local, upload_id, number, slices(data)[number - 1])

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(data), data)
    assert data_reads.ranges == [] and reads_at_complete == [(len(data), 0)]


def test_local_part_request_does_not_wait_for_the_parts_read_back_after_it(local, reads_at_complete,
                                                                          monkeypatch):
    """Parts that arrived early are read back by the catch-up thread: the request
    that filled the gap answers without waiting for it."""
    data = random_bytes(3 * PART + 1)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    reading, release = threading.Event(), threading.Event()
    real = local_hashing.hash_range

    def slow_hash_range(fd, offset, length, digest, buffer):
        reading.set()
        assert release.wait(10)
        return real(fd, offset, length, digest, buffer)

    for number in (4, 3, 2):
        send(local, upload_id, number, slices(data)[number - 1])
    monkeypatch.setattr(local_hashing, "hash_range", slow_hash_range)
    try:
        assert send(local, upload_id, 1, slices(data)[0]) == infos(data)[0]  # answered while 2-4 wait
        assert reading.wait(10)
    finally:
        release.set()
    assert local_hashing.settle()
    monkeypatch.setattr(local_hashing, "hash_range", real)

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(data), data)
    assert reads_at_complete == [(len(data), 0)]  # everything was hashed ahead


def test_local_part_sent_again_with_other_bytes_is_the_one_completed(local, reads_at_complete):
    data = random_bytes(3 * PART + 10)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    first = [send(local, upload_id, number, piece) for number, piece in enumerate(slices(data), start=1)]
    assert first == infos(data)
    assert send(local, upload_id, 2, slices(data)[1]) == first[1]  # the same bytes again: nothing changes

    other = slices(data)[1][:-1] + bytes([slices(data)[1][-1] ^ 0xFF])  # one byte differs
    replaced = send(local, upload_id, 2, other)
    assert (str(local.root), upload_id) not in local_hashing._hash_cursors  # what it hashed is stale: dropped
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
    cursor = local_hashing._hash_cursors.pop((str(local.root), upload_id))
    other = random_bytes(PART, seed=5)
    send(LocalStorage(local.root), upload_id, 1, other)  # "another process"
    local_hashing._hash_cursors[(str(local.root), upload_id)] = cursor
    new_data = other + data[PART:]

    stored = local.complete_multipart(KEY, upload_id, infos(new_data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(new_data), new_data)
    assert reads_at_complete == [(0, len(new_data))]


def test_local_part_rewritten_while_it_is_hashed_ahead_is_hashed_again(local, monkeypatch):
    """While part 2 is read back to be hashed ahead, it is sent again twice: once cut off
    part-way (other bytes in place, no record), then with the original bytes. The
    record looks the same as before, but what was read was not those bytes: the
    cursor notices (the record is not the one it saw) and complete gets it right."""
    data = random_bytes(2 * PART + 10)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    folder = str(local.root / ".multipart" / upload_id)
    send(local, upload_id, 2, slices(data)[1])
    real = local_hashing.hash_range
    rewrites: list[int] = []

    def hash_range(fd, offset, length, digest, buffer):
        if offset != PART or rewrites:
            return real(fd, offset, length, digest, buffer)
        rewrites.append(offset)
        os.unlink(os.path.join(folder, "2.part"))  # sent again, cut off after its bytes were written
        writer = os.open(os.path.join(folder, "data"), os.O_WRONLY)
        try:
            os.pwrite(writer, bytes(length), offset)
            try:
                return real(fd, offset, length, digest, buffer)
            finally:  # and sent again once more, with the original bytes
                os.pwrite(writer, slices(data)[1], offset)
                local_parts.write_part_record(folder, 2, PART, sha1(slices(data)[1]))
        finally:
            os.close(writer)

    monkeypatch.setattr(local_hashing, "hash_range", hash_range)
    send(local, upload_id, 1, slices(data)[0])  # hashed as it streams; part 2 then read back
    assert local_hashing.settle()
    monkeypatch.undo()
    assert rewrites == [PART]
    send(local, upload_id, 3, slices(data)[2])

    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert (stored.sha1, read(local, stored)) == (sha1(data), data)


def test_local_part_asks_the_kernel_to_write_each_step_out_while_it_arrives(local, monkeypatch):
    """Every WRITEBACK_STEP bytes written, the range written since the last hint is
    handed to start_writeback (contiguous, within the part); the part's bytes and
    SHA1 are the same as without hints, and a hint that fails changes nothing."""
    monkeypatch.setattr(local_parts, "WRITEBACK_STEP", 100_000)
    hints: list[tuple[int, int]] = []
    real = local_parts.start_writeback

    def start_writeback(fd, offset, length):
        hints.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(local_parts, "start_writeback", start_writeback)
    data = random_bytes(2 * PART + 5)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    send(local, upload_id, 2, slices(data)[1])  # chunks of 50,000 bytes: a hint every second chunk

    assert hints == [(PART + offset, 100_000) for offset in range(0, PART - 100_000 + 1, 100_000)]
    real(-1, 0, 10)  # a bad file descriptor: ignored (fdatasync is what makes a part durable)
    for number in (1, 3):
        send(local, upload_id, number, slices(data)[number - 1])
    stored = local.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert (stored.sha1, read(local, stored)) == (sha1(data), data)


def test_local_part_costs_one_sync_its_bytes_fdatasync_before_its_record(local, monkeypatch):
    """A part is made durable by one fdatasync of the data file, before its record is
    placed; the record gets no fsync (file or directory) of its own: a power cut can
    only take a record whose bytes are on disk (tests/faults: complete asks for the
    part again). A part sent again loses its old record durably first."""
    data = random_bytes(2 * PART)
    upload_id = local.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    folder = local.root / ".multipart" / upload_id
    events: list[str] = []
    real_fsync, real_fdatasync = os.fsync, local_parts.disk.fdatasync

    def fsync(fd):
        events.append("fsync data" if os.fstat(fd).st_ino == data_inode(local, upload_id) else "fsync other")
        real_fsync(fd)

    def fdatasync(fd):
        events.append("fdatasync data" if os.fstat(fd).st_ino == data_inode(local, upload_id) else "fdatasync other")
        real_fdatasync(fd)

    def recorded(number: int) -> None:
        events.append(f"record {number}" if (folder / f"{number}.part").exists() else f"no record {number}")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(local_parts.disk, "fdatasync", fdatasync)
    real_write_record = local_parts.write_part_record
    monkeypatch.setattr(local_parts, "write_part_record",
                        lambda folder, number, size, sha1: (recorded(number), real_write_record(folder, number, size, sha1),
                                                            recorded(number))[1])
    send(local, upload_id, 1, slices(data)[0])
    assert events == ["fdatasync data", "no record 1", "record 1"]

    events.clear()
    send(local, upload_id, 1, slices(data)[0])  # sent again: the old record goes for good first
    assert events == ["fsync other", "fdatasync data", "no record 1", "record 1"]
    monkeypatch.undo()
    send(local, upload_id, 2, slices(data)[1])
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
    local_hashing._hash_cursors.clear()
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
