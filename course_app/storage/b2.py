"""Backblaze B2 storage through b2sdk's v3 API.

Uploads stream: ``put_stream`` buffers at most one part (``part_size``, by default
the account's recommended part size: 100 MB on real B2). A stream that fits in one
part is stored with one ``b2_upload_file`` call; a longer one becomes a B2 large
file (``start_large_file``, ``upload_part`` per part, ``finish_large_file``), so
memory stays about one part whatever the file size.

SHA1: B2 checks the SHA1 we send with every upload call (the whole file for a
single upload, each part for a large file) and we check what it reports back.
The whole-file SHA1 of a *large* file cannot be put in its file info: B2 takes
file info when the large file starts, before the bytes have been read, and has no
call to change it afterwards. ``put_stream`` returns that SHA1 (the caller keeps it
in the database); ``stat``/``list`` report ``sha1=""`` (unknown) for such files.

Uploads are the one place b2sdk does not retry (its HTTP layer sends upload calls
once), so ``upload_file``/``upload_part``/``finish_large_file`` are retried here with
backoff, each attempt on a fresh upload URL. Every b2sdk error leaves this module as
a ``StorageError`` with a message that is safe to show.

``file_id`` is B2's file id. ``list`` matches the prefix as plain text (like
``LocalStorage``): it pages ``b2_list_file_names`` itself, because ``Bucket.ls``
treats its argument as a folder (it appends ``/``).

Multipart (resumable) uploads are B2 large files driven by the caller: the upload
id is the large file's fileId; ``start_multipart`` records a declared whole-file
SHA1 as the ``large_file_sha1`` file info. B2 needs each part's length and SHA1
before its bytes, so ``put_part`` buffers exactly one part (the caller bounds the
part size; at most ``MAX_PART_SIZE``) and sends it with the same retries as
``put_stream``. ``complete_multipart`` first compares the caller's parts with
``b2_list_parts`` (a missing or different part fails before anything is
finished, and the upload stays resumable), then finishes. A repeated finish is
refused by B2 (400), so a finish that fails, or a second ``complete_multipart``,
looks at the file first and counts an already finished file of the expected size
as done. B2 checks every part's SHA1 but never the whole file's: the returned
``sha1`` is the declared ``large_file_sha1`` (verified to be kept in the file
info), or ``""`` when none was declared. ``abort_multipart`` cancels an
unfinished file and leaves a finished one (an object by then) alone.
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import io
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote

from b2sdk.v3 import B2Api, Bucket, InMemoryAccountInfo
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
    TooManyRequests,
    Unauthorized,
)

from course_app.storage.base import (
    MultipartStorage,
    ObjectNotFound,
    PartInfo,
    Storage,
    StorageError,
    StoredObject,
    UnfinishedUpload,
    UploadAborted,
)
from course_app.storage.keys import (
    check_completed_parts,
    check_key,
    check_part_number,
    check_part_size,
    check_prefix,
    check_range,
    check_sha1,
)

logger = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024
MAX_PART_SIZE = 5 * 1000**3  # B2's largest part
MAX_PART_COUNT = 10_000  # B2's most parts per large file
MAX_LIST_PAGE = 10_000  # B2's largest b2_list_file_names page
MAX_PARTS_PAGE = 1000  # B2's largest b2_list_parts page
MAX_UNFINISHED_PAGE = 100  # B2's largest b2_list_unfinished_large_files page
MAX_URL_SECONDS = 7 * 24 * 3600  # B2's longest download authorization
DEFAULT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds before attempts 2..5
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SHA1_HEX = re.compile(r"[0-9a-f]{40}")
_FILE_ID = re.compile(r"[0-9A-Za-z_-]{1,200}")

UNAVAILABLE = "Storage is unavailable right now; try again."
CREDENTIALS_REJECTED = "Storage refused the app's credentials; an administrator needs to check the B2 settings."
BUCKET_MISSING = "The storage bucket does not exist; an administrator needs to check the B2 settings."
STORAGE_FULL = "Storage is full (the B2 account cap was reached); an administrator needs to raise it."
DAMAGED_IN_TRANSIT = "The file was damaged on its way to storage; try again."
TOO_MANY_PARTS = "The file is too large for storage."
REFUSED = "Storage refused the request."
UPLOAD_MISSING = "The upload is not in progress (finished, cancelled or unknown); start it again."
PART_DIFFERS = "Part {number} of the upload is missing or differs from what was sent; send it again."
EXTRA_PARTS = "Storage holds parts beyond the last one given ({numbers}); cancel the upload and start again."
COMPLETED_DIFFERENTLY = "The upload was already completed with different parts."

T = TypeVar("T")


def _is_transient(exc: B2Error) -> bool:
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
    elif _is_transient(exc) or isinstance(exc, MaxRetriesExceeded):
        error = StorageError(UNAVAILABLE, retryable=True)
    else:
        error = StorageError(REFUSED, retryable=False)
    logger.warning("B2 call failed (%s: %s) -> %s", type(exc).__name__, exc, error)
    return error


def _multipart_error(exc: B2Error) -> StorageError:
    """Like ``storage_error``, but "not found" means the upload is not in progress."""
    if isinstance(exc, FileNotPresent) and not isinstance(exc, NonExistentBucket):
        logger.info("B2 large file not found: %s", exc)
        return ObjectNotFound(UPLOAD_MISSING)
    return storage_error(exc)


def check_upload_id(upload_id: str) -> str:
    """A B2 fileId as the upload id: letters, digits, ``_`` and ``-`` only."""
    if not isinstance(upload_id, str) or not _FILE_ID.fullmatch(upload_id):
        raise ValueError("upload_id must be a B2 file id")
    return upload_id


def _known_sha1(version: Any) -> str:
    info = getattr(version, "file_info", None) or {}
    for candidate in (info.get("sha1"), info.get("large_file_sha1"), getattr(version, "content_sha1", None)):
        if candidate and _SHA1_HEX.fullmatch(candidate):
            return candidate
    return ""


def _stored(version: Any, *, sha1: str | None = None) -> StoredObject:
    timestamp = getattr(version, "upload_timestamp", None)
    return StoredObject(
        key=version.file_name,
        file_id=version.id_,
        size=version.size,
        sha1=sha1 if sha1 is not None else _known_sha1(version),
        content_type=version.content_type or DEFAULT_CONTENT_TYPE,
        uploaded_at=datetime.fromtimestamp(timestamp / 1000, tz=timezone.utc) if timestamp is not None else None,
    )


class _PartBuffer:
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

    def take(self, count: int) -> _Part:
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
        return _Part(taken)

    def take_all(self) -> _Part:
        return self.take(self.size)


class _Part:
    """The bytes of one upload call, as views; ``stream()`` gives a fresh file to send."""

    def __init__(self, views: list[memoryview]) -> None:
        self.views = views
        self.size = sum(len(view) for view in views)
        digest = hashlib.sha1()
        for view in views:
            digest.update(view)
        self.sha1 = digest.hexdigest()

    def stream(self) -> _PartStream:
        return _PartStream(self.views, self.size)


class _PartStream(io.RawIOBase):
    """A read-only, seekable file over a list of byte views (b2sdk rewinds it before
    every attempt; requests reads its length from ``len()``)."""

    def __init__(self, views: list[memoryview], size: int) -> None:
        super().__init__()
        self._views = views
        self._starts = list(itertools.accumulate((len(view) for view in views), initial=0))[:-1]
        self._size = size
        self._position = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

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


class B2Storage(Storage, MultipartStorage):
    """Objects in one B2 bucket.

    ``api`` is an authorized ``b2sdk.v3.B2Api``. ``part_size`` (bytes) overrides the
    account's recommended part size; it must be at least the account's absolute
    minimum (5 MB on B2, 200 bytes in b2sdk's RawSimulator). ``retry_delays`` are the
    waits before each retry of an upload call (its length + 1 = attempts) and
    ``sleep`` performs them (tests pass a recorder instead of ``time.sleep``).
    """

    name = "b2"
    max_parts = MAX_PART_COUNT

    def __init__(
        self,
        api: B2Api,
        bucket_name: str,
        *,
        part_size: int | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        minimum = api.account_info.get_absolute_minimum_part_size()
        if part_size is None:
            part_size = api.account_info.get_recommended_part_size()
        if not minimum <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {minimum} and {MAX_PART_SIZE} bytes, not {part_size}")
        self._api = api
        self.min_part_size = minimum
        self._part_size = part_size
        self._retry_delays = tuple(retry_delays)
        self._sleep = sleep
        try:
            self._bucket = api.get_bucket_by_name(bucket_name)
        except B2Error as exc:
            raise storage_error(exc) from exc

    @classmethod
    def from_credentials(
        cls, key_id: str, application_key: str, bucket_name: str, *, part_size: int | None = None, **api_kwargs: Any
    ) -> B2Storage:
        """Authorize with an application key and open ``bucket_name``. ``api_kwargs``
        go to ``B2Api`` (e.g. ``api_config``). Raises StorageError when B2 refuses
        the key or cannot be reached."""
        api = B2Api(InMemoryAccountInfo(), **api_kwargs)
        try:
            api.authorize_account(key_id, application_key)
        except B2Error as exc:
            raise storage_error(exc) from exc
        return cls(api, bucket_name, part_size=part_size)

    @property
    def api(self) -> B2Api:
        return self._api

    @property
    def bucket(self) -> Bucket:
        return self._bucket

    @property
    def part_size(self) -> int:
        return self._part_size

    # Uploads --------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        check_key(key)
        if not content_type or not isinstance(content_type, str):
            raise ValueError("content_type must be a non-empty string")
        whole = hashlib.sha1()
        pending = _PartBuffer()
        large: _LargeUpload | None = None
        try:
            for chunk in chunks:  # errors raised by the source propagate unchanged
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"chunks must be bytes, not {type(chunk).__name__}")
                data = bytes(chunk)  # a copy only if the source may reuse its buffer
                whole.update(data)
                pending.add(data)
                del data, chunk
                while pending.size > self._part_size:  # more than one part: must be a large file
                    if large is None:
                        large = _LargeUpload(self, key, content_type)
                    large.upload_part(pending.take(self._part_size))
            if large is None:
                return self._upload_single(key, pending.take_all(), content_type, whole.hexdigest())
            large.upload_part(pending.take_all())  # the last part; never empty
            return large.finish(whole.hexdigest())
        except BaseException:
            if large is not None:
                large.cancel()
            raise

    def _upload_single(self, key: str, part: _Part, content_type: str, sha1: str) -> StoredObject:
        bucket_id = self._bucket.id_
        response = self._with_retries(
            lambda: self._api.session.upload_file(
                bucket_id, key, part.size, content_type, sha1, {"sha1": sha1}, part.stream()
            ),
            on_retry=lambda: self._api.account_info.clear_bucket_upload_data(bucket_id),
        )
        version = self._api.file_version_factory.from_api_response(response)
        if version.size != part.size or version.content_sha1 != sha1:
            logger.warning(
                "B2 stored %s as %d bytes sha1 %s; sent %d bytes sha1 %s",
                key, version.size, version.content_sha1, part.size, sha1,
            )
            self._delete_quietly(version.id_, key)
            raise StorageError(DAMAGED_IN_TRANSIT, retryable=True)
        return _stored(version, sha1=sha1)

    def _upload_part(self, file_id: str, number: int, part: _Part, key: str) -> None:
        """Send one part (retried, each attempt on a fresh part URL) and check B2's answer."""
        response = self._with_retries(
            lambda: self._api.session.upload_part(file_id, number, part.size, part.sha1, part.stream()),
            on_retry=lambda: self._api.account_info.clear_large_file_upload_urls(file_id),
        )
        if response.get("contentSha1") != part.sha1 or response.get("contentLength") != part.size:
            logger.warning("B2 part %d of %s came back as %s", number, key, response)
            raise StorageError(DAMAGED_IN_TRANSIT, retryable=True)

    def _finish_large_file(self, file_id: str, part_sha1s: list[str]) -> Any:
        """Finish with retries; the finished file version. A finish whose answer was
        lost, or that already happened, is found by looking at the file: B2 answers
        a repeated finish with 400, so it is never taken as a failure unseen."""

        def finish_once() -> Any:
            try:
                response = self._api.session.finish_large_file(file_id, part_sha1s)
                return self._api.file_version_factory.from_api_response(response)
            except B2Error:
                version = self._large_file(file_id, quiet=True)
                if version is not None and version.action == "upload":
                    return version
                raise

        return self._with_retries(finish_once)

    def _large_file(self, file_id: str, *, quiet: bool = False) -> Any | None:
        """The file version of ``file_id`` (``action`` "start" while unfinished where B2
        shows it, "upload" once finished), or None when B2 does not know or show it.
        A transient failure raises StorageError unless ``quiet``."""
        try:
            return self._bucket.get_file_info_by_id(file_id)
        except B2Error as exc:
            if _is_transient(exc) and not quiet:
                raise storage_error(exc) from exc
            return None

    def _with_retries(self, operation: Callable[[], T], *, on_retry: Callable[[], None] | None = None) -> T:
        attempts = len(self._retry_delays) + 1
        for attempt in range(attempts):
            try:
                return operation()
            except B2Error as exc:
                if not _is_transient(exc) or attempt == attempts - 1:
                    raise storage_error(exc) from exc
                delay = self._retry_delays[attempt]
                if isinstance(exc, TooManyRequests) and exc.retry_after_seconds:
                    delay = max(delay, exc.retry_after_seconds)
                logger.info("B2 upload call failed (%s), retry %d in %.1fs", exc, attempt + 1, delay)
                if on_retry is not None:
                    on_retry()
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _delete_quietly(self, file_id: str, key: str) -> None:
        try:
            self._api.delete_file_version(file_id, key)
        except B2Error as exc:
            logger.warning("could not delete %s (%s) after a failed upload: %s", key, file_id, exc)

    # Reads ----------------------------------------------------------------

    def _version(self, key: str, file_id: str) -> Any | None:
        """The uploaded file version, or None (missing, unfinished or another name)."""
        try:
            if file_id:
                version = self._bucket.get_file_info_by_id(file_id)
            else:
                version = self._bucket.get_file_info_by_name(key)
        except FileNotPresent:
            return None
        except B2Error as exc:
            raise storage_error(exc) from exc
        if version.file_name != key or getattr(version, "action", "upload") != "upload":
            return None
        return version

    def stat(self, key: str, file_id: str) -> StoredObject | None:
        check_key(key)
        version = self._version(key, file_id)
        return None if version is None else _stored(version)

    def open_range(self, key: str, file_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        check_key(key)
        check_range(start, end)
        range_: tuple[int, int] | None = None
        if start or end is not None:
            version = self._version(key, file_id)
            if version is None:
                raise ObjectNotFound()
            last = version.size - 1 if end is None else min(end, version.size - 1)
            if start > last:
                return iter(())
            file_id = version.id_
            range_ = (start, last)
        try:
            if file_id:
                downloaded = self._bucket.download_file_by_id(file_id, range_=range_)
            else:
                downloaded = self._bucket.download_file_by_name(key, range_=range_)
        except B2Error as exc:
            raise storage_error(exc) from exc
        if downloaded.download_version.file_name != key:
            downloaded.response.close()
            raise ObjectNotFound()
        expected = downloaded.download_version.content_length if range_ is None else range_[1] - range_[0] + 1
        return self._stream(downloaded.response, expected)

    @staticmethod
    def _stream(response: Any, expected: int) -> Iterator[bytes]:
        received = 0
        try:
            for chunk in response.iter_content(chunk_size=READ_CHUNK_SIZE):
                if chunk:
                    received += len(chunk)
                    yield chunk
        except B2Error as exc:
            raise storage_error(exc) from exc
        finally:
            response.close()
        if received != expected:
            logger.warning("B2 download ended after %d of %d bytes", received, expected)
            raise StorageError(UNAVAILABLE, retryable=True)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[StoredObject]:
        check_prefix(prefix)
        if not 1 <= page_size <= MAX_LIST_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_LIST_PAGE}")
        return self._list_pages(prefix, page_size)

    def _list_pages(self, prefix: str, page_size: int) -> Iterator[StoredObject]:
        session, bucket_id = self._api.session, self._bucket.id_
        start_name: str | None = prefix or None
        while True:
            try:
                page = session.list_file_names(bucket_id, start_name, page_size, prefix or None)
            except B2Error as exc:
                raise storage_error(exc) from exc
            for entry in page["files"]:
                version = self._api.file_version_factory.from_api_response(entry)
                if version.action == "upload" and version.file_name.startswith(prefix):
                    yield _stored(version)
            start_name = page.get("nextFileName")
            if start_name is None:
                return

    # Changes and links ----------------------------------------------------

    def delete(self, key: str, file_id: str) -> None:
        check_key(key)
        if not file_id:
            version = self._version(key, "")
            if version is None:
                return
            file_id = version.id_
        try:
            self._api.delete_file_version(file_id, key)
        except FileNotPresent:
            pass
        except B2Error as exc:
            raise storage_error(exc) from exc

    def download_url(self, key: str, file_id: str, *, valid_seconds: int = 300) -> str | None:
        """A URL carrying a download token limited to exactly this key (B2 tokens
        authorize a name prefix; keys are unique uuids, so the prefix is the key)."""
        check_key(key)
        if not 1 <= valid_seconds <= MAX_URL_SECONDS:
            raise ValueError(f"valid_seconds must be between 1 and {MAX_URL_SECONDS}")
        try:
            token = self._bucket.get_download_authorization(key, valid_seconds)
        except B2Error as exc:
            raise storage_error(exc) from exc
        return f"{self._bucket.get_download_url(key)}?Authorization={quote(token, safe='')}"

    # Multipart uploads ----------------------------------------------------

    def recommended_part_size(self) -> int:
        return self._part_size

    def start_multipart(
        self, key: str, *, content_type: str, sha1: str | None = None, part_size: int | None = None
    ) -> str:
        """``part_size`` is ignored: B2 keeps each part as sent (every part but the last
        at least ``min_part_size``)."""
        check_key(key)
        if not content_type or not isinstance(content_type, str):
            raise ValueError("content_type must be a non-empty string")
        sha1 = check_sha1(sha1)
        file_info = {"large_file_sha1": sha1} if sha1 else {}
        try:
            response = self._api.session.start_large_file(self._bucket.id_, key, content_type, file_info)
        except B2Error as exc:
            raise storage_error(exc) from exc
        return response["fileId"]

    def put_part(self, key: str, upload_id: str, number: int, chunks: Iterable[bytes], *, size: int) -> PartInfo:
        """Buffers the part (``size`` bytes) in memory: B2 needs its SHA1 first. Raises
        UploadAborted, sending nothing, when ``chunks`` yields fewer or more than
        ``size`` bytes (reading stops at the first byte too many)."""
        check_key(key)
        check_upload_id(upload_id)
        check_part_number(number, self.max_parts)
        check_part_size(size, MAX_PART_SIZE)
        pending = _PartBuffer()
        for chunk in chunks:  # errors raised by the source propagate unchanged
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"chunks must be bytes, not {type(chunk).__name__}")
            pending.add(bytes(chunk))  # a copy only if the source may reuse its buffer
            del chunk
            if pending.size > size:
                raise UploadAborted(f"more than the announced {size} bytes")
        if pending.size != size:
            raise UploadAborted(f"{pending.size} bytes instead of the announced {size}")
        part = pending.take_all()
        try:
            self._upload_part(upload_id, number, part, key)
        except ObjectNotFound as exc:
            raise ObjectNotFound(UPLOAD_MISSING) from exc.__cause__
        return PartInfo(number=number, size=part.size, sha1=part.sha1)

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        check_key(key)
        check_upload_id(upload_id)
        try:
            return self._held_parts(upload_id)
        except B2Error as exc:
            raise _multipart_error(exc) from exc

    def _held_parts(self, upload_id: str) -> list[PartInfo]:
        parts = [
            PartInfo(number=part.part_number, size=part.content_length, sha1=part.content_sha1)
            for part in self._api.list_parts(upload_id, batch_size=MAX_PARTS_PAGE)
        ]
        return sorted(parts, key=lambda part: part.number)

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo], *, content_type: str) -> StoredObject:
        """The object keeps the content type given at start (B2 takes it then)."""
        check_key(key)
        check_upload_id(upload_id)
        if not content_type or not isinstance(content_type, str):
            raise ValueError("content_type must be a non-empty string")
        ordered = check_completed_parts(parts, min_part_size=self.min_part_size, max_parts=self.max_parts)
        total = sum(part.size for part in ordered)

        declared_sha1: str | None = None
        state = self._large_file(upload_id)
        if state is not None:
            if state.file_name != key:
                raise ValueError("upload_id belongs to another key")
            if state.action == "upload":  # completed by an earlier call
                return self._already_completed(state, total)
            declared_sha1 = (state.file_info or {}).get("large_file_sha1")

        try:
            held = {part.number: part for part in self._held_parts(upload_id)}
        except B2Error as exc:
            version = self._large_file(upload_id, quiet=True)
            if version is not None and version.action == "upload" and version.file_name == key:
                return self._already_completed(version, total)
            raise _multipart_error(exc) from exc
        for part in ordered:
            if held.get(part.number) != part:
                raise StorageError(PART_DIFFERS.format(number=part.number), retryable=False)
        extra = sorted(set(held) - {part.number for part in ordered})
        if extra:
            raise StorageError(EXTRA_PARTS.format(numbers=", ".join(map(str, extra))), retryable=False)

        try:
            version = self._finish_large_file(upload_id, [part.sha1 for part in ordered])
        except ObjectNotFound as exc:
            raise ObjectNotFound(UPLOAD_MISSING) from exc.__cause__
        if version.file_name != key:
            raise ValueError("upload_id belongs to another key")
        kept_sha1 = (version.file_info or {}).get("large_file_sha1")
        if version.size != total or (declared_sha1 and kept_sha1 != declared_sha1):
            logger.warning(
                "B2 finished %s (%s) with %d bytes, large_file_sha1 %s; expected %d bytes, %s",
                key, upload_id, version.size, kept_sha1, total, declared_sha1,
            )
            self._delete_quietly(version.id_, key)
            raise StorageError(DAMAGED_IN_TRANSIT, retryable=True)
        return _stored(version)

    @staticmethod
    def _already_completed(version: Any, total: int) -> StoredObject:
        if version.size != total:
            logger.warning("B2 file %s was completed with %d bytes, not %d", version.id_, version.size, total)
            raise StorageError(COMPLETED_DIFFERENTLY, retryable=False)
        return _stored(version)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Cancels an unfinished upload; a finished one is an object by then and stays
        (``delete`` removes it)."""
        check_key(key)
        check_upload_id(upload_id)
        state = self._large_file(upload_id)
        if state is not None:
            if state.file_name != key:
                raise ValueError("upload_id belongs to another key")
            if state.action == "upload":
                return
        try:
            self._api.cancel_large_file(upload_id)
        except FileNotPresent as exc:
            if isinstance(exc, NonExistentBucket):
                raise storage_error(exc) from exc
            return  # already cancelled, or never started
        except B2Error as exc:
            if not _is_transient(exc) and self._large_file(upload_id, quiet=True) is None:
                logger.info("B2 refused to cancel %s (%s), which it no longer shows: %s", key, upload_id, exc)
                return
            raise storage_error(exc) from exc

    def list_unfinished(self, prefix: str = "") -> Iterator[UnfinishedUpload]:
        check_prefix(prefix)
        return self._unfinished_pages(prefix)

    def _unfinished_pages(self, prefix: str) -> Iterator[UnfinishedUpload]:
        """Pages ``b2_list_unfinished_large_files`` itself (b2sdk's UnfinishedLargeFile
        drops the upload timestamp)."""
        session, bucket_id = self._api.session, self._bucket.id_
        start_file_id: str | None = None
        while True:
            try:
                page = session.list_unfinished_large_files(
                    bucket_id, start_file_id, MAX_UNFINISHED_PAGE, prefix or None
                )
            except B2Error as exc:
                raise storage_error(exc) from exc
            for entry in page["files"]:
                if not entry["fileName"].startswith(prefix):
                    continue
                timestamp = entry.get("uploadTimestamp")
                yield UnfinishedUpload(
                    key=entry["fileName"],
                    upload_id=entry["fileId"],
                    started_at=datetime.fromtimestamp(timestamp / 1000, tz=timezone.utc) if timestamp else None,
                )
            start_file_id = page.get("nextFileId")
            if start_file_id is None:
                return


class _LargeUpload:
    """One B2 large file being uploaded part by part."""

    def __init__(self, storage: B2Storage, key: str, content_type: str) -> None:
        self._storage = storage
        self._session = storage.api.session
        self.key = key
        self._part_sha1s: list[str] = []
        self._size = 0
        self._done = False
        try:
            response = self._session.start_large_file(storage.bucket.id_, key, content_type, {})
        except B2Error as exc:
            raise storage_error(exc) from exc
        self.file_id: str = response["fileId"]

    def upload_part(self, part: _Part) -> None:
        number = len(self._part_sha1s) + 1
        if number > MAX_PART_COUNT:
            raise StorageError(TOO_MANY_PARTS, retryable=False)
        self._storage._upload_part(self.file_id, number, part, self.key)
        self._part_sha1s.append(part.sha1)
        self._size += part.size

    def finish(self, sha1: str) -> StoredObject:
        version = self._storage._finish_large_file(self.file_id, self._part_sha1s)
        self._done = True
        if version.size != self._size:
            logger.warning("B2 finished %s with %d bytes; sent %d", self.key, version.size, self._size)
            self._storage._delete_quietly(self.file_id, self.key)
            raise StorageError(DAMAGED_IN_TRANSIT, retryable=True)
        return _stored(version, sha1=sha1)

    def cancel(self) -> None:
        """Best effort: an unfinished large file left behind by a failure here is
        listed by ``bucket.list_unfinished_large_files()`` (and B2 lifecycle rules can
        cancel old ones)."""
        if self._done:
            return
        self._done = True
        try:
            self._storage.api.cancel_large_file(self.file_id)
        except B2Error as exc:
            logger.warning("could not cancel unfinished upload %s (%s): %s", self.key, self.file_id, exc)
