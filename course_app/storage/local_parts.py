"""The parts of one local multipart upload on disk (its folder, see
local_multipart.py): part records, locks and parts written in place (the
whole-file SHA1 computed while they arrive is in local_hashing.py).

A part's bytes are written with ``os.pwrite`` into the upload's ``data`` file at
offset (number - 1) x part size (the kernel is asked to start writing each
WRITEBACK_STEP bytes to disk as soon as they are in place, so the disk works while
the rest arrives) and fdatasynced before its record ``<number>.part``
(size, SHA1 and a random token, as JSON) is placed (temp file, rename), so a
recorded part is wholly on disk. That fdatasync is the part's one sync: the
record gets none of its own, since a power cut can only take a record whose bytes
are on disk anyway; the part is then unrecorded, and complete_multipart refuses
it (the service drops it from the ledger and the browser sends it again, as after
any part storage lost). A part sent again first loses its record (durably), then
is overwritten and recorded again. A part stream shorter or longer
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
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from course_app.storage import local_disk as disk
from course_app.storage.base import ObjectNotFound, PartInfo, StorageError, UploadAborted
from course_app.storage.keys import SHA1_HEX, TEMP_MARKER, UPLOAD_MISSING
from course_app.storage.local_disk import WRITE_FAILED

logger = logging.getLogger(__name__)

DATA_FILE = "data"
PART_RECORD_NAME = re.compile(r"([1-9][0-9]{0,4})\.part")
WRITEBACK_STEP = 8 * 1024 * 1024  # bytes of a part written before the kernel is asked to write them out
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writing the dirty pages of the range, do not wait
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
    """Record part ``number`` once its bytes are in the data file, fdatasynced: a temp
    file renamed into place (a reader never sees half a record), with no sync of its
    own. The data's sync came first, so a record that survives a power cut names
    bytes that are on disk; one that does not survive (or is cut short: read as no
    record) only means the part is sent again, as complete asks for it (see the
    module docstring). Two journal commits less per part."""
    path = os.path.join(folder, f"{number}.part")
    temp_path = f"{path}{TEMP_MARKER}{secrets.token_hex(8)}"
    try:
        with open(temp_path, "x", encoding="utf-8") as handle:
            json.dump({"size": size, "sha1": sha1, "token": secrets.token_hex(8)}, handle)
        os.replace(temp_path, path)
    except BaseException:
        disk.remove_quietly(temp_path)
        raise


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
    (durably) before its bytes are overwritten. ``whole`` (local_hashing.InOrderPart),
    when given, is handed every byte written too."""
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
