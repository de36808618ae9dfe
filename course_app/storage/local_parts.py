"""The parts of one local multipart upload on disk (its folder, see
local_multipart.py): part records, locks, parts written in place, and the
whole-file SHA1 computed while the parts arrive.

A part's bytes are written with ``os.pwrite`` into the upload's ``data`` file at
offset (number - 1) x part size and fdatasynced before its record ``<number>.part``
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
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
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
HASH_BUFFER_SIZE = 256 * 1024  # reading parts back for the whole-file SHA1 while they arrive
HASH_AHEAD_BYTES = 256 * 1024 * 1024  # the most one put_part call hashes for the parts before it
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


def write_part(folder: str, fd: int, number: int, chunks: Iterable[bytes], *, size: int, offset: int) -> PartInfo:
    """Write part ``number`` at ``offset`` of the data file ``fd`` (this thread holds
    the part's lock), fdatasync, then record it. A part sent again loses its record
    (durably) before its bytes are overwritten."""
    with disk.errors(WRITE_FAILED):
        if read_part_record(folder, number) is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, f"{number}.part"))
            disk.fsync_directory(folder)  # gone for good before its bytes change
    digest, written = hashlib.sha1(), 0
    for chunk in chunks:  # errors raised by the source propagate unchanged
        view = memoryview(chunk).cast("B")
        if written + view.nbytes > size:
            raise UploadAborted(f"more than the announced {size} bytes")
        digest.update(view)
        with disk.errors(WRITE_FAILED):
            while view:
                count = os.pwrite(fd, view, offset + written)
                view = view[count:]
                written += count
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
# A cursor per upload started in this process: the SHA1 of parts 1..k, fed in order
# by the thread that has just recorded a part (reading parts back from the data file
# while they are in the page cache), so complete_multipart usually has the digest
# without reading the file again. It is only a shortcut: complete uses it only if
# the parts it hashed are still the ones recorded (same size and SHA1), and hashes
# the rest (or everything) from the data file. After a restart, or in a process that
# did not start the upload, there is no cursor and complete reads the file once.


@dataclasses.dataclass(eq=False)
class _HashCursor:
    digest: Any = dataclasses.field(default_factory=hashlib.sha1)
    hashed: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (size, sha1) of parts 1..k
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


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


def advance_cursor(key: tuple[str, str], folder: str, fd: int, number: int, part_size: int) -> None:
    """After part ``number`` was recorded: drop the cursor if it had hashed another
    copy of that part, else hash the parts recorded next in line (up to
    HASH_AHEAD_BYTES, so that no request pays for many). Never raises an Exception:
    a failure only costs complete_multipart a read."""
    cursor = _hash_cursors.get(key)
    if cursor is None or not cursor.lock.acquire(blocking=False):
        return  # no cursor in this process, or another thread is advancing it
    try:
        if _hash_cursors.get(key) is not cursor:
            return
        if number <= len(cursor.hashed):  # sent again
            record = read_part_record(folder, number)
            if record is None or (record.size, record.sha1) != cursor.hashed[number - 1]:
                drop_cursor(key, cursor)  # a part it had hashed changed: complete hashes from the start
                return
        buffer = bytearray(HASH_BUFFER_SIZE)
        budget = max(HASH_AHEAD_BYTES, part_size)
        while budget > 0:
            following = len(cursor.hashed) + 1
            record = read_part_record(folder, following)
            if record is None:
                break
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
    finally:
        cursor.lock.release()


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
