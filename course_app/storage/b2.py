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
backoff, each attempt on a fresh upload URL. Every b2sdk error leaves the B2 modules
as a ``StorageError`` with a message that is safe to show (b2_parts.py).

``file_id`` is B2's file id. ``list`` matches the prefix as plain text (like
``LocalStorage``): it pages ``b2_list_file_names`` itself, because ``Bucket.ls``
treats its argument as a folder (it appends ``/``). Multipart (resumable) uploads
are in b2_multipart.py.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from b2sdk.v3 import B2Api, Bucket, InMemoryAccountInfo
from b2sdk.v3.exception import B2Error, FileNotPresent, TooManyRequests

from course_app.storage.b2_multipart import B2Multipart
from course_app.storage.b2_parts import (
    DAMAGED_IN_TRANSIT,
    MAX_PART_COUNT,
    MAX_PART_SIZE,
    UNAVAILABLE,
    Part,
    PartBuffer,
    is_transient,
    storage_error,
    stored_object,
)
from course_app.storage.base import ObjectNotFound, Storage, StorageError, StoredObject
from course_app.storage.keys import check_key, check_prefix, check_range

logger = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024
MAX_LIST_PAGE = 10_000  # B2's largest b2_list_file_names page
MAX_URL_SECONDS = 7 * 24 * 3600  # B2's longest download authorization
DEFAULT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds before attempts 2..5
TOO_MANY_PARTS = "The file is too large for storage."

T = TypeVar("T")


class B2Storage(Storage, B2Multipart):
    """Objects in one B2 bucket; multipart uploads from the B2Multipart mixin.

    ``api`` is an authorized ``b2sdk.v3.B2Api``. ``part_size`` (bytes) overrides the
    account's recommended part size; it must be at least the account's absolute
    minimum (5 MB on B2, 200 bytes in b2sdk's RawSimulator). ``retry_delays`` are the
    waits before each retry of an upload call (its length + 1 = attempts) and
    ``sleep`` performs them (tests pass a recorder instead of ``time.sleep``).
    """

    name = "b2"

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
        pending = PartBuffer()
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

    def _upload_single(self, key: str, part: Part, content_type: str, sha1: str) -> StoredObject:
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
        return stored_object(version, sha1=sha1)

    def _upload_part(self, file_id: str, number: int, part: Part, key: str) -> None:
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
            if is_transient(exc) and not quiet:
                raise storage_error(exc) from exc
            return None

    def _with_retries(self, operation: Callable[[], T], *, on_retry: Callable[[], None] | None = None) -> T:
        attempts = len(self._retry_delays) + 1
        for attempt in range(attempts):
            try:
                return operation()
            except B2Error as exc:
                if not is_transient(exc) or attempt == attempts - 1:
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
        return None if version is None else stored_object(version)

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
                    yield stored_object(version)
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

    def upload_part(self, part: Part) -> None:
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
        return stored_object(version, sha1=sha1)

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
