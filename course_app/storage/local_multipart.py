"""Multipart uploads on local disk: the ``MultipartStorage`` half of LocalStorage,
as a mixin (its host gives ``_root``, ``_path`` and ``stat``; see local.py).

An upload lives in ``<root>/.multipart/<upload_id>/`` (a folder ``list`` never
shows and no key or prefix may name): ``meta.json`` (key, content type, part size,
the whole-file SHA1 if declared, start time), ``data`` (made empty by
``start_multipart``) into which each part is written in place, and per part a
record and a lock file (local_parts.py). Every part but the last must have exactly
the part size. The upload id is 32 random lowercase hex digits; any other id is
refused with ValueError before the disk is touched.

``complete_multipart`` takes ``data`` exclusively, checks the records against the
parts given, computes the whole-file SHA1, cuts ``data`` to the total size, fsyncs
it, writes the sidecar and renames ``data`` into place (the same file system, so
the bytes are never copied), then removes the folder. The whole-file SHA1 usually
comes from an in-process cursor fed while the parts arrive (local_hashing.py: a
part that arrives in order is hashed as it streams, one that arrives early is read
back in the background once the gap before it is filled); complete trusts the
cursor only for parts whose records still say what it hashed and reads the rest of
``data`` once (after a restart: all of it). Memory does not grow with the file. A
second complete finds the object in place and returns it. An upload started before this layout (one file per part, no
part size in ``meta.json``) cannot go on: its calls raise StorageError (not
retryable) and abort removes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from course_app.storage import local_disk as disk
from course_app.storage import local_hashing, local_parts
from course_app.storage.base import (
    MultipartStorage,
    ObjectNotFound,
    PartInfo,
    StorageError,
    StoredObject,
    UnfinishedUpload,
)
from course_app.storage.keys import (
    EXTRA_PARTS,
    MULTIPART_FOLDER,
    PART_DIFFERS,
    TEMP_MARKER,
    UPLOAD_MISSING,
    check_completed_parts,
    check_key,
    check_part_number,
    check_part_size,
    check_prefix,
    check_sha1,
)
from course_app.storage.local_disk import READ_FAILED, WRITE_FAILED
from course_app.storage.local_parts import DATA_FILE

logger = logging.getLogger(__name__)

# The part size the app (and so the browser) uses on local disk unless
# COURSE_UPLOAD_CHUNK_BYTES says otherwise. A part costs a fixed price whatever its
# size, paid while a client with one part in flight waits: a request
# (authenticated, rate-limited, checked against the ledger), the fdatasync of its
# bytes, its record and a database commit. At 8 MiB that price is paid 128 times a
# GiB: the upload ran at 0.58 x a bare route's speed with one stream and 0.45 with
# three; at 64 MiB, 16 times, and what is left of the gap is the second SHA1 every
# byte needs (its part's and the whole file's) and the app's request path, which a
# single POST pays too (benchmarks/resumable_uploads.py). What a larger part costs:
# a connection lost mid-part sends that part again (at most PARTS_IN_FLIGHT = 3
# parts of a file, 192 MiB, in manager.js), and the browser holds one part per file
# in memory while it hashes it. B2 already uses the account's recommended part
# size, 100 MB.
RECOMMENDED_PART_SIZE = 64 * 1024 * 1024
UPLOAD_META = "meta.json"
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
CHECKSUM_MISMATCH = "The uploaded file does not match the checksum given when the upload started."


def check_upload_id(upload_id: str) -> str:
    if not isinstance(upload_id, str) or not UPLOAD_ID.fullmatch(upload_id):
        raise ValueError("upload_id must be 32 lowercase hex digits")
    return upload_id


class LocalMultipart(MultipartStorage):
    """Multipart uploads written in place into one file per upload under ``<root>/.multipart``."""

    min_part_size = 1
    max_parts = 10_000
    _root: Path

    def _upload_folder(self, upload_id: str) -> str:
        return os.path.join(self._root, MULTIPART_FOLDER, check_upload_id(upload_id))

    def _cursor_key(self, upload_id: str) -> tuple[str, str]:
        return str(self._root), upload_id

    @staticmethod
    def _read_upload_meta(folder: str) -> dict | None:
        """The upload's meta.json, or None when the upload is not there (finished,
        aborted, unknown, or its start never completed)."""
        try:
            with open(os.path.join(folder, UPLOAD_META), "rb") as handle:
                meta = json.loads(handle.read())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            logger.warning("local storage: unreadable upload meta in %s: %s", folder, exc)
            raise StorageError(READ_FAILED, retryable=True) from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("key"), str):
            logger.warning("local storage: damaged upload meta in %s", folder)
            return None
        return meta

    def _upload_meta(self, key: str, upload_id: str) -> tuple[str, dict]:
        """The upload's folder and meta; ObjectNotFound when it is not in progress,
        ValueError when it belongs to another key."""
        check_key(key)
        folder = self._upload_folder(upload_id)
        meta = self._read_upload_meta(folder)
        if meta is None:
            raise ObjectNotFound(UPLOAD_MISSING)
        if meta["key"] != key:
            raise ValueError("upload_id belongs to another key")
        return folder, meta

    def recommended_part_size(self) -> int:
        return RECOMMENDED_PART_SIZE

    def start_multipart(
        self, key: str, *, content_type: str, sha1: str | None = None, part_size: int | None = None
    ) -> str:
        """``part_size`` (default: ``recommended_part_size()``) is the size of every
        part but the last, which may be smaller: part N is written at (N-1) x part_size."""
        check_key(key)
        disk.check_content_type(content_type)
        sha1 = check_sha1(sha1)
        part_size = self.recommended_part_size() if part_size is None else check_part_size(part_size)
        upload_id = secrets.token_hex(16)
        folder = self._upload_folder(upload_id)
        meta = {
            "key": key,
            "content_type": content_type,
            "sha1": sha1,
            "part_size": part_size,
            "started_at": datetime.now(timezone.utc).isoformat(),
        }
        data_path = os.path.join(folder, DATA_FILE)
        temp_meta = os.path.join(folder, f"{UPLOAD_META}{TEMP_MARKER}{secrets.token_hex(8)}")
        try:
            with disk.errors(WRITE_FAILED):
                os.makedirs(os.path.dirname(folder), exist_ok=True)
                os.mkdir(folder)
                os.close(os.open(data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                with open(temp_meta, "x", encoding="utf-8") as handle:
                    json.dump(meta, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp_meta, os.path.join(folder, UPLOAD_META))
                disk.fsync_directory(folder)
                disk.fsync_directory(os.path.dirname(folder))
        except BaseException:
            disk.remove_quietly(temp_meta)
            disk.remove_quietly(data_path)
            with contextlib.suppress(OSError):
                os.rmdir(folder)
            raise
        local_hashing.start_cursor(self._cursor_key(upload_id))
        return upload_id

    def put_part(self, key: str, upload_id: str, number: int, chunks: Iterable[bytes], *, size: int) -> PartInfo:
        """Writes the bytes in place into the upload's data file. ValueError, before
        anything is read, when ``size`` is larger than the upload's part size.
        UploadAborted when ``chunks`` yields fewer or more than ``size`` bytes (reading
        stops before the first byte too many is written); the part is then not
        recorded, and a part sent again has lost its earlier copy (send it again).
        StorageError (retryable) while another request is writing the same part."""
        check_key(key)
        check_upload_id(upload_id)
        check_part_number(number, self.max_parts)
        check_part_size(size)
        folder, meta = self._upload_meta(key, upload_id)
        part_size = local_parts.part_size_of(meta)
        check_part_size(size, part_size)
        cursor_key = self._cursor_key(upload_id)
        try:
            with (
                local_parts.locked_data(folder, exclusive=False) as fd,
                local_parts.part_lock(folder, number),
                local_hashing.next_in_line(cursor_key, number) as in_order,
            ):
                info = local_parts.write_part(folder, fd, number, chunks, size=size, offset=(number - 1) * part_size,
                                              whole=in_order)
                local_hashing.advance_cursor(cursor_key, folder, info, part_size, streamed=in_order)
        except StorageError as exc:
            if isinstance(exc.__cause__, FileNotFoundError) and self._read_upload_meta(folder) is None:
                raise ObjectNotFound(UPLOAD_MISSING) from exc  # aborted or completed meanwhile
            raise
        return info

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        folder, meta = self._upload_meta(key, upload_id)
        part_size = local_parts.part_size_of(meta)
        with disk.errors(READ_FAILED):
            try:
                data_size = os.stat(os.path.join(folder, DATA_FILE)).st_size
            except FileNotFoundError:
                data_size = 0  # placed as the object already, or lost
            return self._held_parts(folder, part_size, data_size)

    def _held_parts(self, folder: str, part_size: int, data_size: int) -> list[PartInfo]:
        """The parts recorded in ``folder`` by number whose bytes lie within the first
        ``data_size`` bytes of the data file (raises OSError)."""
        parts = []
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            raise ObjectNotFound(UPLOAD_MISSING) from None
        for name in names:
            match = local_parts.PART_RECORD_NAME.fullmatch(name)
            if match is None or int(match.group(1)) > self.max_parts:
                continue
            number = int(match.group(1))
            record = local_parts.read_part_record(folder, number)
            if record is None or record.size > part_size or (number - 1) * part_size + record.size > data_size:
                continue
            parts.append(PartInfo(number=number, size=record.size, sha1=record.sha1))
        return sorted(parts, key=lambda part: part.number)

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo], *, content_type: str) -> StoredObject:
        """The object keeps the content type given at start (``content_type`` is used
        only if the upload's record lacks one). ValueError, before storage is touched,
        when a part but the last is not exactly the upload's part size (or the last is
        larger). StorageError (retryable) while a part is still being written."""
        path = self._path(key)
        folder = self._upload_folder(upload_id)
        disk.check_content_type(content_type)
        ordered = check_completed_parts(parts, min_part_size=self.min_part_size, max_parts=self.max_parts)
        total = sum(part.size for part in ordered)
        meta = self._read_upload_meta(folder)
        if meta is None:
            done = self.stat(key, key)
            if done is not None and done.size == total:
                return done  # completed by an earlier call (whose answer may have been lost)
            raise ObjectNotFound(UPLOAD_MISSING)
        if meta["key"] != key:
            raise ValueError("upload_id belongs to another key")
        part_size = local_parts.part_size_of(meta)
        for part in ordered:
            if part.size > part_size or (part.size != part_size and part.number != len(ordered)):
                raise ValueError(
                    f"part {part.number} has {part.size} bytes; every part but the last must have exactly "
                    f"{part_size} bytes (the upload's part size) and the last at most that"
                )

        with disk.errors(WRITE_FAILED):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        stored_type = meta.get("content_type") or content_type
        try:
            with local_parts.locked_data(folder, exclusive=True) as fd:
                sha1, written = self._seal(upload_id, folder, fd, meta, ordered, part_size, total)
                disk.place(path, os.path.join(folder, DATA_FILE), secrets.token_hex(8), size=total, sha1=sha1,
                            content_type=stored_type, written=written)
                disk.fsync_directory(folder)
            stored = StoredObject(
                key=key,
                file_id=key,
                size=total,
                sha1=sha1,
                content_type=stored_type,
                uploaded_at=datetime.fromtimestamp(written.st_mtime, tz=timezone.utc),  # a rename keeps mtime
            )
        except ObjectNotFound:
            # No data file: an earlier call placed it as the object and stopped before
            # removing the folder (or the upload was aborted meanwhile).
            stored = self.stat(key, key)
            if stored is None or stored.size != total:
                raise
        local_hashing.drop_cursor(self._cursor_key(upload_id))
        try:
            self._remove_upload(folder)
        except OSError as exc:  # the object is complete; abort_multipart can finish the cleanup
            logger.warning("local storage: could not remove the parts of upload %s: %s", upload_id, exc)
        return stored

    def _seal(
        self, upload_id: str, folder: str, fd: int, meta: dict, ordered: list[PartInfo], part_size: int, total: int
    ) -> tuple[str, os.stat_result]:
        """With the data file ``fd`` locked exclusively: check that the records are the
        parts given, hash the whole file, check the declared SHA1, cut the file to
        ``total`` bytes and fsync it. Returns its SHA1 and stat."""
        with disk.errors(READ_FAILED):
            data_size = os.fstat(fd).st_size
            held = {part.number: part for part in self._held_parts(folder, part_size, data_size)}
        for part in ordered:
            if held.get(part.number) != part:
                raise StorageError(PART_DIFFERS.format(number=part.number), retryable=False)
        extra = sorted(set(held) - {part.number for part in ordered})
        if extra:
            raise StorageError(EXTRA_PARTS.format(numbers=", ".join(map(str, extra))), retryable=False)
        sha1 = local_hashing.whole_file_sha1(self._cursor_key(upload_id), fd, ordered, total)
        expected_sha1 = meta.get("sha1")
        if expected_sha1 and sha1 != expected_sha1:
            logger.warning(
                "local storage: upload %s of %s has sha1 %s, declared %s", upload_id, meta["key"], sha1, expected_sha1
            )
            raise StorageError(CHECKSUM_MISMATCH, retryable=False)
        with disk.errors(WRITE_FAILED):
            if data_size != total:
                os.ftruncate(fd, total)  # bytes past the last part (a part sent beyond it, never recorded)
            os.fsync(fd)
            written = os.fstat(fd)
        return sha1, written

    @staticmethod
    def _remove_upload(folder: str) -> None:
        """Remove an upload's folder, its meta.json last, so that a failure part-way
        leaves an upload that ``list_unfinished`` still shows and abort can remove."""
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name != UPLOAD_META:
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
        disk.remove_quietly(os.path.join(folder, UPLOAD_META))
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(folder)
        disk.fsync_directory(os.path.dirname(folder))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Removes the parts only: an upload already completed keeps its object."""
        check_key(key)
        folder = self._upload_folder(upload_id)
        meta = self._read_upload_meta(folder)
        if meta is not None and meta["key"] != key:
            raise ValueError("upload_id belongs to another key")
        local_hashing.drop_cursor(self._cursor_key(upload_id))
        with disk.errors(WRITE_FAILED):
            self._remove_upload(folder)

    def list_unfinished(self, prefix: str = "") -> Iterator[UnfinishedUpload]:
        check_prefix(prefix)
        return self._unfinished(prefix)

    def _unfinished(self, prefix: str) -> Iterator[UnfinishedUpload]:
        found = []
        with disk.errors(READ_FAILED):
            try:
                entries = list(os.scandir(os.path.join(self._root, MULTIPART_FOLDER)))
            except FileNotFoundError:
                return
        for entry in entries:
            if not UPLOAD_ID.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            meta = self._read_upload_meta(entry.path)
            if meta is None or not meta["key"].startswith(prefix):
                continue
            try:
                started_at = datetime.fromisoformat(meta.get("started_at") or "")
            except (TypeError, ValueError):
                started_at = None
            if started_at is not None and started_at.tzinfo is None:  # the app writes UTC with its zone
                started_at = started_at.replace(tzinfo=timezone.utc)
            found.append(UnfinishedUpload(key=meta["key"], upload_id=entry.name, started_at=started_at))
        found.sort(key=lambda upload: (upload.key, upload.started_at or datetime.min.replace(tzinfo=timezone.utc)))
        yield from found

