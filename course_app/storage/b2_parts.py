"""What crosses the wire to B2 and back: bytes held as parts (views of the
received chunks, never copied into one buffer; a seekable file over them for each
attempt), B2 file versions as StoredObjects, and b2sdk errors as StorageErrors with
a message that is safe to show."""

from __future__ import annotations

import bisect
import collections
import hashlib
import itertools
import logging
from datetime import datetime, timezone
from typing import Any

from b2sdk.v3.exception import (
    AccessDenied,
    B2Error,
    BucketIdNotFound,
    CapExceeded,
    FileNotPresent,
    MaxRetriesExceeded,
    NonExistentBucket,
    NotAllowedByAppKeyError,
    RestrictedBucket,
    Unauthorized,
)

from course_app.storage.base import ObjectNotFound, StorageError, StoredObject
from course_app.storage.keys import SHA1_HEX
from course_app.storage.readers import SizedReader

logger = logging.getLogger(__name__)

MAX_PART_SIZE = 5 * 1000**3  # B2's largest part
MAX_PART_COUNT = 10_000  # B2's most parts per large file
DEFAULT_CONTENT_TYPE = "application/octet-stream"

UNAVAILABLE = "Storage is unavailable right now; try again."
CREDENTIALS_REJECTED = "Storage refused the app's credentials; an administrator needs to check the B2 settings."
BUCKET_MISSING = "The storage bucket does not exist; an administrator needs to check the B2 settings."
STORAGE_FULL = "Storage is full (the B2 account cap was reached); an administrator needs to raise it."
DAMAGED_IN_TRANSIT = "The file was damaged on its way to storage; try again."
REFUSED = "Storage refused the request."


def is_transient(exc: B2Error) -> bool:
    return bool(exc.should_retry_upload() or exc.should_retry_http())


def storage_error(exc: B2Error) -> StorageError:
    """The user-facing StorageError for a b2sdk error (the b2sdk error is logged, not shown)."""
    if isinstance(exc, FileNotPresent) and not isinstance(exc, NonExistentBucket):
        return ObjectNotFound()
    if isinstance(exc, (NonExistentBucket, BucketIdNotFound)):
        error = StorageError(BUCKET_MISSING, retryable=False)
    elif isinstance(exc, (Unauthorized, AccessDenied, NotAllowedByAppKeyError, RestrictedBucket)):
        error = StorageError(CREDENTIALS_REJECTED, retryable=False)
    elif isinstance(exc, CapExceeded):
        error = StorageError(STORAGE_FULL, retryable=False)
    elif is_transient(exc) or isinstance(exc, MaxRetriesExceeded):
        error = StorageError(UNAVAILABLE, retryable=True)
    else:
        error = StorageError(REFUSED, retryable=False)
    logger.warning("B2 call failed (%s: %s) -> %s", type(exc).__name__, exc, error)
    return error


def known_sha1(version: Any) -> str:
    info = getattr(version, "file_info", None) or {}
    for candidate in (info.get("sha1"), info.get("large_file_sha1"), getattr(version, "content_sha1", None)):
        if candidate and SHA1_HEX.fullmatch(candidate):
            return candidate
    return ""


def stored_object(version: Any, *, sha1: str | None = None) -> StoredObject:
    timestamp = getattr(version, "upload_timestamp", None)
    return StoredObject(
        key=version.file_name,
        file_id=version.id_,
        size=version.size,
        sha1=sha1 if sha1 is not None else known_sha1(version),
        content_type=version.content_type or DEFAULT_CONTENT_TYPE,
        uploaded_at=datetime.fromtimestamp(timestamp / 1000, tz=timezone.utc) if timestamp is not None else None,
    )


class PartBuffer:
    """Bytes received but not yet uploaded, kept as the chunks themselves: a part is
    handed out as views of them, never copied into one new buffer, so memory stays
    about one part."""

    def __init__(self) -> None:
        self._pieces: collections.deque[memoryview] = collections.deque()
        self.size = 0

    def add(self, data: bytes) -> None:
        if data:
            self._pieces.append(memoryview(data))
            self.size += len(data)

    def take(self, count: int) -> Part:
        taken: list[memoryview] = []
        needed = count
        while needed:
            piece = self._pieces[0]
            if len(piece) <= needed:
                taken.append(self._pieces.popleft())
                needed -= len(piece)
            else:
                taken.append(piece[:needed])
                self._pieces[0] = piece[needed:]
                needed = 0
        self.size -= count
        return Part(taken)

    def take_all(self) -> Part:
        return self.take(self.size)


class Part:
    """The bytes of one upload call, as views; ``stream()`` gives a fresh file to send."""

    def __init__(self, views: list[memoryview]) -> None:
        self.views = views
        self.size = sum(len(view) for view in views)
        digest = hashlib.sha1()
        for view in views:
            digest.update(view)
        self.sha1 = digest.hexdigest()

    def stream(self) -> PartStream:
        return PartStream(self.views, self.size)


class PartStream(SizedReader):
    """A read-only, seekable file over a list of byte views (b2sdk rewinds it before
    every attempt; requests reads its length from ``len()``)."""

    def __init__(self, views: list[memoryview], size: int) -> None:
        super().__init__(size)
        self._views = views
        self._starts = list(itertools.accumulate((len(view) for view in views), initial=0))[:-1]

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        written = 0
        while written < len(target) and self._position < self._size:
            index = bisect.bisect_right(self._starts, self._position) - 1
            view = self._views[index]
            offset = self._position - self._starts[index]
            count = min(len(view) - offset, len(target) - written)
            target[written : written + count] = view[offset : offset + count]
            written += count
            self._position += count
        return written

