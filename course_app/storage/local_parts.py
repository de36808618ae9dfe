"""The parts of one local multipart upload on disk (its folder, see
local_multipart.py): part records, locks, parts written in place, and the
whole-file SHA1 computed while the parts arrive.

A part's bytes are written with ``os.pwrite`` into the upload's ``data`` file at
offset (number - 1) x part size (the kernel is asked to start writing each
WRITEBACK_STEP bytes to disk as soon as they are in place, so the disk works while
the rest arrives) and fdatasynced before its record ``<number>.part``
(size, SHA1 and a random token, as JSON) is placed (temp file, fsync, rename), so a
recorded part is wholly on disk; a part sent again first loses its record
(durably), then is overwritten and recorded again. A part stream shorter or longer
than its announced ``size`` raises UploadAborted and leaves the part unrecorded
(reading stops before the first byte too many is written, so the next part is
never touched).

Concurrency, across threads and processes: a part is written under ``flock`` of
its lock file ``<number>.lock`` (a second writer of the same part is refused,
retryable) and a shared ``flock`` of ``data``; completing takes ``data``
exclusively (refused, retryable, while a part is being written).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import secrets
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from course_app.storage import local_disk as disk
from course_app.storage.base import ObjectNotFound, PartInfo, StorageError, UploadAborted
from course_app.storage.keys import SHA1_HEX, TEMP_MARKER, UPLOAD_MISSING
from course_app.storage.local_disk import READ_CHUNK_SIZE, READ_FAILED, WRITE_FAILED

logger = logging.getLogger(__name__)

DATA_FILE = "data"
PART_RECORD_NAME = re.compile(r"([1-9][0-9]{0,4})\.part")
HASH_BUFFER_SIZE = 256 * 1024  # reading parts that arrived early back for the whole-file SHA1
HASH_AHEAD_BYTES = 256 * 1024 * 1024  # the most one put_part call hashes into the whole-file SHA1
HASH_QUEUE_CHUNKS = 1  # chunks of an in-order part waiting to be hashed into the whole-file SHA1
WRITEBACK_STEP = 8 * 1024 * 1024  # bytes of a part written before the kernel is asked to write them out
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writing the dirty pages of the range, do not wait
MAX_HASH_CURSORS = 1024
PART_BUSY = "Part {number} is being received by another request right now; send it again in a moment."
PARTS_ARRIVING = "Parts of this upload are still being received; complete it once they have all arrived."
OLD_UPLOAD = "This upload was started by an older version of the server and cannot go on; cancel it and start again."


class PartRecord(NamedTuple):
    size: int
    sha1: str
    token: str  # new on every write: tells a part sent again from the copy it replaced


def part_size_of(meta: dict) -> int:
    part_size = meta.get("part_size")
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise StorageError(OLD_UPLOAD, retryable=False)  # parts in files of their own: not resumable here
    return part_size


def read_part_record(folder: str, number: int) -> PartRecord | None:
    """Part ``number``'s record, or None when the part is not (or no longer) stored."""
    try:
        with open(os.path.join(folder, f"{number}.part"), "rb") as handle:
            record = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except ValueError:
        record = None
    if (
        not isinstance(record, dict)
        or isinstance(record.get("size"), bool)
        or not isinstance(record.get("size"), int)
        or record["size"] < 1
        or not isinstance(record.get("sha1"), str)
        or not SHA1_HEX.fullmatch(record["sha1"])
        or not isinstance(record.get("token"), str)
    ):
        logger.warning("local storage: damaged record of part %s in %s", number, folder)
        return None
    return PartRecord(record["size"], record["sha1"], record["token"])


def write_part_record(folder: str, number: int, size: int, sha1: str) -> None:
    """Record part ``number`` (its bytes are in the data file, synced): a temp file,
    fsynced, renamed into place."""
    path = os.path.join(folder, f"{number}.part")
    temp_path = f"{path}{TEMP_MARKER}{secrets.token_hex(8)}"
    try:
        with open(temp_path, "x", encoding="utf-8") as handle:
            json.dump({"size": size, "sha1": sha1, "token": secrets.token_hex(8)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        disk.remove_quietly(temp_path)
        raise
    disk.fsync_directory(folder)


@contextlib.contextmanager
def locked_data(folder: str, *, exclusive: bool) -> Iterator[int]:
    """The upload's data file open for reading and writing, flock()ed: shared while a
    part is written (parts go in side by side), exclusive while complete_multipart
    seals and places it (refused at once, retryable, while a part is being written).
    ObjectNotFound when the data file is gone: the upload was aborted, or completed
    and the file is the object now (also when that happened while this call waited)."""
    path = os.path.join(folder, DATA_FILE)
    with disk.errors(WRITE_FAILED):
        try:
            fd = os.open(path, os.O_RDWR)  # never O_CREAT: a data file is made only by start_multipart
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(UPLOAD_MISSING) from None
    try:
        with disk.errors(WRITE_FAILED):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
            except BlockingIOError:
                raise StorageError(PARTS_ARRIVING, retryable=True) from None
            try:
                same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
        if not same_file:
            raise ObjectNotFound(UPLOAD_MISSING)
        yield fd
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def part_lock(folder: str, number: int) -> Iterator[None]:
    """One writer per part, across threads and processes (a lock file per part, flock()ed)."""
    with disk.errors(WRITE_FAILED):
        fd = os.open(os.path.join(folder, f"{number}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with disk.errors(WRITE_FAILED):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError(PART_BUSY.format(number=number), retryable=True) from None
        yield
    finally:
        os.close(fd)


def _sync_file_range() -> Any:
    """Linux's sync_file_range(2) through ctypes, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range_call = _sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing bytes ``offset``..``offset + length`` of ``fd``
    to disk now, without waiting for them (sync_file_range, SYNC_FILE_RANGE_WRITE), so
    that the part's fdatasync finds little left to write. Only a hint: nothing where
    the call is missing, and its errors are ignored (fdatasync makes the part durable)."""
    if _sync_file_range_call is not None:
        _sync_file_range_call(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def write_part(
    folder: str, fd: int, number: int, chunks: Iterable[bytes], *, size: int, offset: int, whole: Any = None
) -> PartInfo:
    """Write part ``number`` at ``offset`` of the data file ``fd`` (this thread holds
    the part's lock), fdatasync, then record it. A part sent again loses its record
    (durably) before its bytes are overwritten. ``whole`` (an InOrderPart), when
    given, is handed every byte written too."""
    with disk.errors(WRITE_FAILED):
        if read_part_record(folder, number) is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, f"{number}.part"))
            disk.fsync_directory(folder)  # gone for good before its bytes change
    digest, written, flushed = hashlib.sha1(), 0, 0
    for chunk in chunks:  # errors raised by the source propagate unchanged
        view = memoryview(chunk).cast("B")
        if written + view.nbytes > size:
            raise UploadAborted(f"more than the announced {size} bytes")
        if whole is not None:
            whole.update(view if view.readonly else bytes(view))  # hashed meanwhile, in its thread: keep it as is
        digest.update(view)
        with disk.errors(WRITE_FAILED):
            while view:
                count = os.pwrite(fd, view, offset + written)
                view = view[count:]
                written += count
        if written - flushed >= WRITEBACK_STEP:
            start_writeback(fd, offset + flushed, written - flushed)
            flushed = written
    if written != size:
        raise UploadAborted(f"{written} bytes instead of the announced {size}")
    sha1 = digest.hexdigest()
    with disk.errors(WRITE_FAILED):
        disk.fdatasync(fd)
        write_part_record(folder, number, size, sha1)
    return PartInfo(number=number, size=size, sha1=sha1)


def hash_range(fd: int, offset: int, length: int, digest, buffer: bytearray) -> bool:
    """Feed bytes ``offset``..``offset + length`` of ``fd`` to ``digest`` through
    ``buffer``; False when the file ends first."""
    view = memoryview(buffer)
    while length > 0:
        piece = view[: min(len(view), length)]
        count = _read_at(fd, piece, offset)
        if not count:
            return False
        digest.update(piece[:count])
        offset += count
        length -= count
    return True


def _read_at(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


# The whole-file SHA1, computed while the parts arrive -------------------------------
#
# A cursor per upload started in this process: the SHA1 of parts 1..k. The part the
# cursor needs next (k + 1) is hashed into it while it streams: its writer holds the
# cursor (next_in_line) and hands the bytes it writes to a thread that feeds a copy
# of the cursor's digest (side by side with the part's own SHA1, on another core),
# so an upload whose parts arrive in order is never read back. A part
# that arrives early is written only; once the gap before it is filled, the thread
# that filled it reads it back from the data file (while it is in the page cache)
# and hashes it into the cursor (advance_cursor). complete_multipart usually has the
# digest without reading the file again. The cursor is only a shortcut: complete
# uses it only if the parts it hashed are still the ones recorded (same size and
# SHA1), and hashes the rest (or everything) from the data file. After a restart, or
# in a process that did not start the upload, there is no cursor and complete reads
# the file once.


@dataclasses.dataclass(eq=False)
class _HashCursor:
    digest: Any = dataclasses.field(default_factory=hashlib.sha1)
    hashed: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (size, sha1) of parts 1..k
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class InOrderPart:
    """The part its upload's cursor needs next, while this thread writes it (and
    holds the cursor's lock): a thread of its own hashes the bytes handed to
    ``update`` into a copy of the cursor's digest, so that the part's own SHA1 and
    the whole file's are computed side by side. At most HASH_QUEUE_CHUNKS chunks wait
    for it (memory stays bounded; a slow hash slows the writer)."""

    _END = None

    def __init__(self, cursor: _HashCursor) -> None:
        self.cursor = cursor
        self._digest = cursor.digest.copy()
        self._failed: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=HASH_QUEUE_CHUNKS)
        self._thread = threading.Thread(target=self._hash, name="whole-file-sha1", daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        while (data := self._queue.get()) is not self._END:
            if self._failed is None:
                try:
                    self._digest.update(data)
                except BaseException as exc:  # reported by finish; the queue is still drained
                    self._failed = exc

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data`` (left unchanged until then) after what came before."""
        self._queue.put(data)

    def finish(self) -> Any:
        """Wait for the hashing; the cursor's digest fed with everything handed over,
        or None if hashing failed."""
        self.close()
        if self._failed is not None:
            logger.warning("local storage: hashing a part into the whole-file SHA1 failed: %s", self._failed)
            return None
        return self._digest

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._END)
            self._thread.join()


_hash_cursors: dict[tuple[str, str], _HashCursor] = {}
_hash_cursors_lock = threading.Lock()


def start_cursor(key: tuple[str, str]) -> None:
    with _hash_cursors_lock:
        while len(_hash_cursors) >= MAX_HASH_CURSORS:  # abandoned uploads: forget the oldest
            del _hash_cursors[next(iter(_hash_cursors))]
        _hash_cursors[key] = _HashCursor()


def drop_cursor(key: tuple[str, str], cursor: _HashCursor | None = None) -> None:
    with _hash_cursors_lock:
        if cursor is None or _hash_cursors.get(key) is cursor:
            _hash_cursors.pop(key, None)


@contextlib.contextmanager
def next_in_line(key: tuple[str, str], number: int) -> Iterator[InOrderPart | None]:
    """While part ``number`` is written: if it is the part the upload's cursor needs
    next, hold the cursor and give an InOrderPart whose digest the writer feeds (pass
    it to advance_cursor once the part is recorded); else None (no cursor in this
    process, another thread holds it, or the part arrived early or again), and the
    part is written only."""
    part = None
    cursor = _hash_cursors.get(key)
    if cursor is not None and cursor.lock.acquire(blocking=False):
        if _hash_cursors.get(key) is cursor and len(cursor.hashed) + 1 == number:
            try:
                part = InOrderPart(cursor)
            except BaseException:
                cursor.lock.release()
                raise
        else:
            cursor.lock.release()
    try:
        yield part
    finally:
        if part is not None:
            try:
                part.close()
            finally:
                part.cursor.lock.release()


def advance_cursor(
    key: tuple[str, str], folder: str, fd: int, info: PartInfo, part_size: int, *, streamed: InOrderPart | None = None
) -> None:
    """After part ``info.number`` was recorded: take its digest if it was hashed as it
    streamed (``streamed``, from next_in_line: this thread holds the cursor already);
    drop the cursor if it had hashed another copy of that part; then read back and
    hash the parts recorded next in line (up to HASH_AHEAD_BYTES in all, so that no
    request pays for many). Never raises an Exception: a failure only costs
    complete_multipart a read."""
    if streamed is not None:
        _advance(key, streamed.cursor, folder, fd, info, part_size, streamed.finish())
        return
    cursor = _hash_cursors.get(key)
    if cursor is None or not cursor.lock.acquire(blocking=False):
        return  # no cursor in this process, or another thread is advancing it
    try:
        _advance(key, cursor, folder, fd, info, part_size, None)
    finally:
        cursor.lock.release()


def _advance(
    key: tuple[str, str], cursor: _HashCursor, folder: str, fd: int, info: PartInfo, part_size: int, streamed: Any
) -> None:
    """advance_cursor with the cursor's lock held."""
    try:
        if _hash_cursors.get(key) is not cursor:
            return
        budget = max(HASH_AHEAD_BYTES, part_size)
        if streamed is not None:  # the next part, hashed while it was written (if that failed: read back below)
            cursor.digest = streamed
            cursor.hashed.append((info.size, info.sha1))
            budget -= info.size
        elif info.number <= len(cursor.hashed):  # sent again
            record = read_part_record(folder, info.number)
            if record is None or (record.size, record.sha1) != cursor.hashed[info.number - 1]:
                drop_cursor(key, cursor)  # a part it had hashed changed: complete hashes from the start
                return
        buffer = None
        while budget > 0:  # the parts that arrived early and follow now: read them back
            following = len(cursor.hashed) + 1
            record = read_part_record(folder, following)
            if record is None:
                break
            buffer = buffer or bytearray(HASH_BUFFER_SIZE)
            before = cursor.digest.copy()
            complete = hash_range(fd, (following - 1) * part_size, record.size, cursor.digest, buffer)
            if not complete or read_part_record(folder, following) != record:
                cursor.digest = before  # the part was being sent again while it was read
                break
            cursor.hashed.append((record.size, record.sha1))
            budget -= record.size
    except Exception as exc:
        logger.warning("local storage: hashing the parts in %s ahead of completion stopped: %s", folder, exc)
        drop_cursor(key, cursor)
    except BaseException:
        drop_cursor(key, cursor)
        raise


def whole_file_sha1(key: tuple[str, str], fd: int, ordered: list[PartInfo], total: int) -> str:
    """The SHA1 of the first ``total`` bytes of the data file: the cursor's digest if
    it hashed these very parts, plus what it has not hashed yet, read from ``fd``
    (locked exclusively, so no part changes meanwhile)."""
    digest, done = hashlib.sha1(), 0
    cursor = _hash_cursors.get(key)
    if cursor is not None:
        with cursor.lock:
            hashed = len(cursor.hashed)
            if hashed <= len(ordered) and cursor.hashed == [(part.size, part.sha1) for part in ordered[:hashed]]:
                digest, done = cursor.digest.copy(), hashed
    offset = sum(part.size for part in ordered[:done])
    with disk.errors(READ_FAILED):
        if not hash_range(fd, offset, total - offset, digest, bytearray(READ_CHUNK_SIZE)):
            raise StorageError(READ_FAILED, retryable=True)  # shorter than its parts: changed meanwhile
    logger.debug("local storage: whole-file sha1 read %d of %d bytes at completion", total - offset, total)
    return digest.hexdigest()
