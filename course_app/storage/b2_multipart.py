"""Multipart (resumable) uploads on B2: the ``MultipartStorage`` half of
B2Storage, as a mixin (see b2.py).

They are B2 large files driven by the caller: the upload id is the large file's
fileId; ``start_multipart`` records a declared whole-file SHA1 as the
``large_file_sha1`` file info. B2 needs each part's length and SHA1 before its
bytes, so ``put_part`` buffers exactly one part (the caller bounds the part size;
at most ``MAX_PART_SIZE``) and sends it with the same retries as ``put_stream``.
``complete_multipart`` first compares the caller's parts with ``b2_list_parts`` (a
missing or different part fails before anything is finished, and the upload stays
resumable), then finishes. A repeated finish is refused by B2 (400), so a finish
that fails, or a second ``complete_multipart``, looks at the file first and counts
an already finished file of the expected size as done. B2 checks every part's
SHA1 but never the whole file's: the returned ``sha1`` is the declared
``large_file_sha1`` (verified to be kept in the file info), or ``""`` when none was
declared. ``abort_multipart`` cancels an unfinished file and leaves a finished one
(an object by then) alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from b2sdk.v3.exception import B2Error, FileNotPresent, NonExistentBucket

from course_app.storage.b2_parts import (
    DAMAGED_IN_TRANSIT,
    MAX_PART_COUNT,
    MAX_PART_SIZE,
    PartBuffer,
    is_transient,
    storage_error,
    stored_object,
)
from course_app.storage.base import (
    MultipartStorage,
    ObjectNotFound,
    PartInfo,
    StorageError,
    StoredObject,
    UnfinishedUpload,
    UploadAborted,
)
from course_app.storage.keys import (
    EXTRA_PARTS,
    PART_DIFFERS,
    UPLOAD_MISSING,
    check_completed_parts,
    check_key,
    check_part_number,
    check_part_size,
    check_prefix,
    check_sha1,
)

logger = logging.getLogger(__name__)

MAX_PARTS_PAGE = 1000  # B2's largest b2_list_parts page
MAX_UNFINISHED_PAGE = 100  # B2's largest b2_list_unfinished_large_files page
_FILE_ID = re.compile(r"[0-9A-Za-z_-]{1,200}")

COMPLETED_DIFFERENTLY = "The upload was already completed with different parts."


def multipart_error(exc: B2Error) -> StorageError:
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


class B2Multipart(MultipartStorage):
    """Resumable uploads as B2 large files. The host (B2Storage) gives ``_api``,
    ``_bucket``, ``_part_size`` and the upload calls with their retries:
    ``_upload_part``, ``_finish_large_file``, ``_large_file``, ``_delete_quietly``."""

    max_parts = MAX_PART_COUNT

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
        pending = PartBuffer()
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
            raise multipart_error(exc) from exc

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
            raise multipart_error(exc) from exc
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
        return stored_object(version)

    @staticmethod
    def _already_completed(version: Any, total: int) -> StoredObject:
        if version.size != total:
            logger.warning("B2 file %s was completed with %d bytes, not %d", version.id_, version.size, total)
            raise StorageError(COMPLETED_DIFFERENTLY, retryable=False)
        return stored_object(version)

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
            if not is_transient(exc) and self._large_file(upload_id, quiet=True) is None:
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

