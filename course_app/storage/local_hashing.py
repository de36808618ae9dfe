"""The whole-file SHA1 of a local multipart upload, computed while its parts arrive,
so that complete_multipart seldom reads the file again.

A cursor per upload started in this process holds the SHA1 of parts 1..k. The part
the cursor needs next (k + 1) is hashed into it while it streams: its writer holds
the cursor (next_in_line) and hands the bytes it writes to a thread that feeds a
copy of the cursor's digest (beside the part's own SHA1, on another core), so an
upload whose parts arrive in order is never read back. A part that arrives early
is written only; once the gap before it is filled, the catch-up thread (one per
process, in the background: no request waits for it) reads the parts now next in
line back from the data file, while they are in the page cache, and hashes them
into the cursor. With several parts in flight most parts arrive early, so this is
how most of a file is hashed then.

The cursor is only a shortcut: complete uses it only if the parts it hashed are
still the ones recorded (same size and SHA1), and hashes the rest (or everything)
from the data file. After a restart, or in a process that did not start the
upload, there is no cursor and complete reads the file once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

from course_app.storage import local_disk as disk
from course_app.storage.base import PartInfo, StorageError
from course_app.storage.local_disk import READ_CHUNK_SIZE, READ_FAILED
from course_app.storage.local_parts import DATA_FILE, hash_range, read_part_record

logger = logging.getLogger(__name__)

HASH_BUFFER_SIZE = 256 * 1024  # reading parts that arrived early back
HASH_QUEUE_CHUNKS = 1  # chunks of an in-order part waiting to be hashed into the whole-file SHA1
MAX_HASH_CURSORS = 1024
CURSOR_WAIT_SECONDS = 0.01  # the catch-up thread's wait for a cursor held by a writer checking its turn

CursorKey = tuple[str, str]  # (storage root, upload id)


@dataclasses.dataclass(eq=False)
class _HashCursor:
    digest: Any = dataclasses.field(default_factory=hashlib.sha1)
    hashed: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (size, sha1) of parts 1..k
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    folder: str = ""  # where the catch-up thread reads (set with part_size when a part is recorded)
    part_size: int = 0
    queued: bool = False  # waiting for, or in, the catch-up thread (guarded by _catch_up_lock)
    again: bool = False  # asked for again while it was in the catch-up thread


class InOrderPart:
    """The part its upload's cursor needs next, while this thread writes it (and
    holds the cursor's lock): a thread of its own hashes the bytes handed to
    ``update`` into a copy of the cursor's digest, so that the part's own SHA1 and
    the whole file's are computed side by side. At most HASH_QUEUE_CHUNKS chunks wait
    for it (memory stays bounded; a slow hash slows the writer)."""

    _END = None

    def __init__(self, cursor: _HashCursor) -> None:
        self.cursor = cursor
        self.catch_up = False  # read back what follows once the cursor is let go
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


_hash_cursors: dict[CursorKey, _HashCursor] = {}
_hash_cursors_lock = threading.Lock()


def start_cursor(key: CursorKey) -> None:
    with _hash_cursors_lock:
        while len(_hash_cursors) >= MAX_HASH_CURSORS:  # abandoned uploads: forget the oldest
            del _hash_cursors[next(iter(_hash_cursors))]
        _hash_cursors[key] = _HashCursor()


def drop_cursor(key: CursorKey, cursor: _HashCursor | None = None) -> None:
    with _hash_cursors_lock:
        if cursor is None or _hash_cursors.get(key) is cursor:
            _hash_cursors.pop(key, None)


@contextlib.contextmanager
def next_in_line(key: CursorKey, number: int) -> Iterator[InOrderPart | None]:
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
            if part.catch_up:
                _schedule(key, part.cursor)


def advance_cursor(
    key: CursorKey, folder: str, info: PartInfo, part_size: int, *, streamed: InOrderPart | None = None
) -> None:
    """After part ``info.number`` was recorded: take its digest if it was hashed as it
    streamed (``streamed``, from next_in_line: this thread holds the cursor); then,
    if parts recorded after it may now be next in line (or this one still is), ask
    the catch-up thread to read them back (for a streamed part: once next_in_line
    lets the cursor go). Returns at once; never raises an Exception (a failure only
    costs complete_multipart a read)."""
    cursor = streamed.cursor if streamed is not None else _hash_cursors.get(key)
    if cursor is None:
        return  # no cursor in this process
    try:
        cursor.folder, cursor.part_size = folder, part_size
        if streamed is not None:
            digest = streamed.finish()
            if digest is not None and _hash_cursors.get(key) is cursor:
                cursor.digest = digest
                cursor.hashed.append((info.size, info.sha1))
                if not os.path.exists(os.path.join(folder, f"{info.number + 1}.part")):
                    return  # nothing recorded ahead of the cursor: no read-back needed
            streamed.catch_up = True
            return
        hashed = cursor.hashed
        if info.number <= len(hashed) and hashed[info.number - 1] != (info.size, info.sha1):
            drop_cursor(key, cursor)  # a part it had hashed changed: complete hashes from the start
            return
        _schedule(key, cursor)
    except Exception as exc:
        logger.warning("local storage: hashing part %s in %s ahead of completion stopped: %s", info.number, folder, exc)
        drop_cursor(key, cursor)


# The catch-up thread --------------------------------------------------------------------

_catch_up_queue: queue.SimpleQueue = queue.SimpleQueue()
_catch_up_lock = threading.Condition()
_catch_up_thread: threading.Thread | None = None
_catch_up_waiting = 0  # cursors queued or in a pass


def _schedule(key: CursorKey, cursor: _HashCursor) -> None:
    global _catch_up_thread, _catch_up_waiting
    with _catch_up_lock:
        if cursor.queued:
            cursor.again = True  # the pass under way looks again before it lets go
            return
        cursor.queued, cursor.again = True, False
        _catch_up_waiting += 1
        if _catch_up_thread is None or not _catch_up_thread.is_alive():
            _catch_up_thread = threading.Thread(target=_catch_up_forever, name="whole-file-sha1-catch-up",
                                                daemon=True)
            _catch_up_thread.start()
    _catch_up_queue.put((key, cursor))


def _catch_up_forever() -> None:
    global _catch_up_waiting
    while True:
        key, cursor = _catch_up_queue.get()
        while True:
            try:
                _catch_up(key, cursor)
            except Exception as exc:
                logger.warning("local storage: hashing the parts in %s ahead of completion stopped: %s",
                               cursor.folder, exc)
                drop_cursor(key, cursor)
            with _catch_up_lock:
                if cursor.again and _hash_cursors.get(key) is cursor:
                    cursor.again = False
                    continue
                cursor.queued = cursor.again = False
                _catch_up_waiting -= 1
                _catch_up_lock.notify_all()
                break


def _catch_up(key: CursorKey, cursor: _HashCursor) -> None:
    """Read back and hash the recorded parts next in line. Without waiting long for
    the cursor: whoever holds it (a part streaming in order, or complete) asks again
    once it is done, or hashes what comes next itself."""
    if not cursor.lock.acquire(timeout=CURSOR_WAIT_SECONDS):
        return
    try:
        if _hash_cursors.get(key) is not cursor or not cursor.folder:
            return
        try:
            fd = os.open(os.path.join(cursor.folder, DATA_FILE), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return  # completed or aborted meanwhile
        try:
            _read_back(cursor, fd)
        finally:
            os.close(fd)
    finally:
        cursor.lock.release()


def _read_back(cursor: _HashCursor, fd: int) -> None:
    """With the cursor held: hash the parts recorded next in line, each checked
    against its record before and after it is read (a part sent again meanwhile is
    left for later)."""
    buffer = None
    while True:
        following = len(cursor.hashed) + 1
        record = read_part_record(cursor.folder, following)
        if record is None:
            return
        buffer = buffer or bytearray(HASH_BUFFER_SIZE)
        before = cursor.digest.copy()
        complete = hash_range(fd, (following - 1) * cursor.part_size, record.size, cursor.digest, buffer)
        if not complete or read_part_record(cursor.folder, following) != record:
            cursor.digest = before  # the part was being sent again while it was read
            return
        cursor.hashed.append((record.size, record.sha1))


def settle(timeout: float = 30.0) -> bool:
    """Wait until the catch-up thread has nothing left to do (for tests and tools);
    False if it still had work after ``timeout`` seconds."""
    with _catch_up_lock:
        return _catch_up_lock.wait_for(lambda: _catch_up_waiting == 0, timeout)


# At completion ---------------------------------------------------------------------------


def whole_file_sha1(key: CursorKey, fd: int, ordered: list[PartInfo], total: int) -> str:
    """The SHA1 of the first ``total`` bytes of the data file: the cursor's digest if
    it hashed these very parts, plus what it has not hashed yet, read from ``fd``
    (locked exclusively, so no part changes meanwhile). Waits for a catch-up pass
    under way, which is hashing what would be read here."""
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
