"""Local-disk storage: one file per object under a root folder.

Layout: the object ``videos/12/<uuid>`` is the file ``<root>/videos/12/<uuid>``, with
its metadata (size, SHA1, content type) in the sidecar ``<uuid>.meta.json`` beside
it. Uploads are written to ``<uuid>.part-<random>``, fsynced, and renamed into place
only when complete, so a reader never sees half a file and a failed upload leaves
nothing behind. The sidecar is renamed into place *before* the data file and names
the data file's inode and mtime; a sidecar that does not match the file it sits beside (a
crash between the two renames, a file copied in by hand) is ignored and the SHA1
computed from the bytes instead.

``file_id`` is the key itself: a local object has no separate version id. The
``file_id`` argument is accepted for the interface and otherwise ignored.
``list`` ignores ``page_size`` (it walks the folders with ``os.scandir`` lazily).

Multipart uploads live in ``<root>/.multipart/<upload_id>/`` (a folder ``list`` never
shows and no key or prefix may name): ``meta.json`` (key, content type, part size,
the whole-file SHA1 if declared, start time), ``data`` (made empty by
``start_multipart``) into which each part is written in place at offset
(number - 1) x part size, and per part a record ``<number>.part`` (its size, SHA1
and a random token, as JSON) plus a lock file ``<number>.lock``. A part's bytes are
written with ``os.pwrite`` and fdatasynced before its record is placed (temp file,
fsync, rename), so a recorded part is wholly on disk; a part sent again first loses
its record (durably), then is overwritten and recorded again. A part stream shorter
or longer than its announced ``size`` raises UploadAborted and leaves the part
unrecorded (reading stops before the first byte too many is written, so the next
part is never touched). Every part but the last must have exactly the part size.
The upload id is 32 random lowercase hex digits; any other id is refused with
ValueError before the disk is touched.

Concurrency, across threads and processes: a part is written under ``flock`` of its
lock file (a second writer of the same part is refused, retryable) and a shared
``flock`` of ``data``; ``complete_multipart`` takes ``data`` exclusively (refused,
retryable, while a part is being written), checks the records against the parts
given, computes the whole-file SHA1, cuts ``data`` to the total size, fsyncs it,
writes the sidecar and renames ``data`` into place (the same file system, so the
bytes are never copied), then removes the folder. The whole-file SHA1 usually comes
from an in-process cursor fed while the parts arrive (each part is read back from
the page cache by the request that recorded it, in order; see ``_advance_cursor``);
complete trusts it only for parts whose records still say what it hashed and reads
the rest of ``data`` once (after a restart: all of it). Memory does not grow with
the file. A second complete finds the object in place and returns it. An upload
started before this layout (one file per part, no part size in ``meta.json``) cannot
go on: its calls raise StorageError (not retryable) and abort removes it.

A process killed mid-write leaves what its clean-up would have removed: temp
files (also part records' temp files inside an upload folder), a sidecar without
its data file, a multipart folder without ``meta.json``. (A part killed mid-write
leaves only unrecorded bytes in ``data``, which a later write or complete
overwrites or cuts off.)
``list_leftovers`` finds them (``list`` never shows them) and ``remove_leftover``
removes one, refusing any path that is not such a leftover; ``course-app
check-videos --repair`` removes those older than its grace period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat as stat_mode
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from course_app.storage.base import (
    Leftover,
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
    MULTIPART_FOLDER,
    SIDECAR_SUFFIX,
    TEMP_MARKER,
    check_completed_parts,
    check_key,
    check_part_number,
    check_part_size,
    check_prefix,
    check_range,
    check_sha1,
    is_internal_name,
)

logger = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DISK_FULL = "The server's storage is full; an administrator needs to free space."
WRITE_FAILED = "Could not save the file on the server; try again."
READ_FAILED = "Could not read the stored file; try again."
RECOMMENDED_PART_SIZE = 8 * 1024 * 1024
UPLOAD_MISSING = "The upload is not in progress (finished, cancelled or unknown); start it again."
PART_DIFFERS = "Part {number} of the upload is missing or differs from what was sent; send it again."
EXTRA_PARTS = "Storage holds parts beyond the last one given ({numbers}); cancel the upload and start again."
CHECKSUM_MISMATCH = "The uploaded file does not match the checksum given when the upload started."
PART_BUSY = "Part {number} is being received by another request right now; send it again in a moment."
PARTS_ARRIVING = "Parts of this upload are still being received; complete it once they have all arrived."
OLD_UPLOAD = "This upload was started by an older version of the server and cannot go on; cancel it and start again."
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_RECORD = re.compile(r"([1-9][0-9]{0,4})\.part")
_SHA1 = re.compile(r"[0-9a-f]{40}")
UPLOAD_META = "meta.json"
DATA_FILE = "data"
HASH_BUFFER_SIZE = 256 * 1024  # reading parts back for the whole-file SHA1 while they arrive
HASH_AHEAD_BYTES = 256 * 1024 * 1024  # the most one put_part call hashes for the parts before it
MAX_HASH_CURSORS = 1024
_fdatasync = getattr(os, "fdatasync", os.fsync)


@contextlib.contextmanager
def _disk_errors(message: str) -> Iterator[None]:
    """Turn an OSError from the disk into a StorageError that is safe to show."""
    try:
        yield
    except OSError as exc:
        logger.warning("local storage: %s", exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(DISK_FULL, retryable=False) from exc
        raise StorageError(message, retryable=True) from exc


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (not possible on every platform)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_content_type(content_type: str) -> None:
    if not content_type or not isinstance(content_type, str):
        raise ValueError("content_type must be a non-empty string")


def _sidecar(path: str, info: os.stat_result) -> dict:
    """The sidecar of the file at ``path`` (stat ``info``) when it describes that very
    file, else ``{"sha1": <computed from the bytes>}``."""
    meta: dict = {}
    try:
        with open(path + SIDECAR_SUFFIX, "rb") as handle:
            meta = json.loads(handle.read())
    except (OSError, ValueError):
        meta = {}
    if (
        not isinstance(meta, dict)
        or meta.get("inode") != info.st_ino
        or meta.get("mtime_ns") != info.st_mtime_ns
        or meta.get("size") != info.st_size
        or not isinstance(meta.get("sha1"), str)
    ):
        meta = {"sha1": _sha1_of_file(path)}
    return meta


def _sha1_of_file(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(READ_CHUNK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def check_upload_id(upload_id: str) -> str:
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError("upload_id must be 32 lowercase hex digits")
    return upload_id


class LocalStorage(Storage, MultipartStorage):
    """Objects as files under ``root`` (created if missing)."""

    name = "local"
    min_part_size = 1
    max_parts = 10_000

    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()
        self._root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> str:
        return os.path.join(self._root, *check_key(key).split("/"))

    # Uploads --------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        path = self._path(key)
        _check_content_type(content_type)
        with _disk_errors(WRITE_FAILED):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        size, sha1, written = self._write(path, chunks, content_type=content_type)
        return StoredObject(
            key=key,
            file_id=key,
            size=size,
            sha1=sha1,
            content_type=content_type,
            uploaded_at=datetime.fromtimestamp(written.st_mtime, tz=timezone.utc),  # a rename keeps mtime
        )

    def _write(self, path: str, chunks: Iterable[bytes], *, content_type: str) -> tuple[int, str, os.stat_result]:
        """Stream ``chunks`` into ``path`` (whose folder exists) through a temp file and
        place it with its sidecar. On any error nothing new is left and what was at
        ``path`` before stays."""
        token = secrets.token_hex(8)
        temp_path = f"{path}{TEMP_MARKER}{token}"
        digest, size = hashlib.sha1(), 0
        try:
            with _disk_errors(WRITE_FAILED):
                out = open(temp_path, "xb")
            with out:
                for chunk in chunks:  # errors raised by the source propagate unchanged
                    digest.update(chunk)
                    size += memoryview(chunk).nbytes
                    with _disk_errors(WRITE_FAILED):
                        out.write(chunk)
                with _disk_errors(WRITE_FAILED):
                    out.flush()
                    os.fsync(out.fileno())
                    written = os.fstat(out.fileno())
            sha1 = digest.hexdigest()
            self._place(path, temp_path, token, size=size, sha1=sha1, content_type=content_type, written=written)
        except BaseException:
            _remove_quietly(temp_path)
            raise
        return size, sha1, written

    @staticmethod
    def _place(
        path: str, temp_path: str, token: str, *, size: int, sha1: str, content_type: str, written: os.stat_result
    ) -> None:
        """Rename the finished (fsynced) ``temp_path`` into place with its sidecar: the
        sidecar first, naming the data file's inode and mtime, then the data. If the
        data rename fails the sidecar goes too; the caller removes ``temp_path``."""
        temp_sidecar = f"{path}{SIDECAR_SUFFIX}{TEMP_MARKER}{token}"
        sidecar_placed = data_placed = False
        try:
            with _disk_errors(WRITE_FAILED):
                meta = {
                    "size": size,
                    "sha1": sha1,
                    "content_type": content_type,
                    "inode": written.st_ino,
                    "mtime_ns": written.st_mtime_ns,
                }
                with open(temp_sidecar, "x", encoding="utf-8") as handle:
                    json.dump(meta, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp_sidecar, path + SIDECAR_SUFFIX)
                sidecar_placed = True
                os.replace(temp_path, path)
                data_placed = True
                _fsync_directory(os.path.dirname(path))
        except BaseException:
            _remove_quietly(temp_sidecar)
            if sidecar_placed and not data_placed:
                _remove_quietly(path + SIDECAR_SUFFIX)
            raise

    # Reads ----------------------------------------------------------------

    def _describe(self, key: str, path: str, info: os.stat_result) -> StoredObject:
        """Metadata from the sidecar when it matches the file, else from the bytes.
        Raises FileNotFoundError if the file disappears meanwhile."""
        meta = _sidecar(path, info)
        return StoredObject(
            key=key,
            file_id=key,
            size=info.st_size,
            sha1=meta["sha1"],
            content_type=meta.get("content_type") or DEFAULT_CONTENT_TYPE,
            uploaded_at=datetime.fromtimestamp(info.st_mtime, tz=timezone.utc),
        )

    def stat(self, key: str, file_id: str) -> StoredObject | None:
        path = self._path(key)
        with _disk_errors(READ_FAILED):
            try:
                info = os.stat(path)
                if not stat_mode.S_ISREG(info.st_mode):
                    return None
                return self._describe(key, path, info)
            except (FileNotFoundError, NotADirectoryError):
                return None

    def open_range(self, key: str, file_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(key)
        check_range(start, end)
        with _disk_errors(READ_FAILED):
            try:
                info = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                raise ObjectNotFound() from None
        if not stat_mode.S_ISREG(info.st_mode):
            raise ObjectNotFound()
        last = info.st_size - 1 if end is None else min(end, info.st_size - 1)
        return self._read(path, start, last)

    @staticmethod
    def _read(path: str, start: int, last: int) -> Iterator[bytes]:
        if start > last:
            return
        with _disk_errors(READ_FAILED):
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                raise ObjectNotFound() from None
        with handle:
            handle.seek(start)
            remaining = last - start + 1
            while remaining > 0:
                with _disk_errors(READ_FAILED):
                    block = handle.read(min(READ_CHUNK_SIZE, remaining))
                if not block:
                    raise StorageError(READ_FAILED, retryable=True)  # truncated meanwhile
                remaining -= len(block)
                yield block

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[StoredObject]:
        """Objects in key order. Walks only the folders the prefix can reach."""
        check_prefix(prefix)
        if page_size < 1:
            raise ValueError("page_size must be positive")
        folder, _, name_prefix = prefix.rpartition("/")
        directory = os.path.join(self._root, *folder.split("/")) if folder else str(self._root)
        return self._walk(directory, folder + "/" if folder else "", name_prefix)

    def _walk(self, directory: str, key_base: str, name_prefix: str) -> Iterator[StoredObject]:
        try:
            with os.scandir(directory) as entries:
                found = []
                for entry in entries:
                    if not entry.name.startswith(name_prefix) or is_internal_name(entry.name):
                        continue
                    is_dir = entry.is_dir(follow_symlinks=False)
                    # Sorting "name/" for folders yields keys in plain text order.
                    found.append((entry.name + "/" if is_dir else entry.name, entry, is_dir))
        except (FileNotFoundError, NotADirectoryError):
            return
        found.sort(key=itemgetter(0))
        for _, entry, is_dir in found:
            if is_dir:
                yield from self._walk(entry.path, f"{key_base}{entry.name}/", "")
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if not stat_mode.S_ISREG(info.st_mode):
                    continue  # symlinks and special files are never objects
                described = self._describe(key_base + entry.name, entry.path, info)
            except FileNotFoundError:
                continue  # deleted while listing
            yield described

    # Leftovers of interrupted writes ---------------------------------------

    def list_leftovers(self, prefix: str = "") -> Iterator[Leftover]:
        """Temp files (``.part-``) and sidecars without their data file under
        ``prefix`` (a crash mid-write leaves them; ``list`` never shows them), plus,
        whatever the prefix, multipart folders that have no ``meta.json`` (a start
        that never finished) and temp files inside upload folders (of a part's record
        whose write was interrupted). An upload's ``data``, part records and lock
        files are never leftovers: abort removes them. A write in progress looks the
        same: judge by ``modified_at``. Paths are relative to the root, with ``/``."""
        check_prefix(prefix)
        return self._leftovers(prefix)

    def _leftovers(self, prefix: str) -> Iterator[Leftover]:
        folder, _, name_prefix = prefix.rpartition("/")
        top = os.path.join(self._root, *folder.split("/")) if folder else str(self._root)
        for directory, subfolders, names in os.walk(top):
            if directory == top:
                subfolders[:] = [d for d in subfolders if d.startswith(name_prefix) and d != MULTIPART_FOLDER]
                candidates = [n for n in names if n.startswith(name_prefix)]
            else:
                candidates = names
            present = set(names)
            for name in candidates:
                if TEMP_MARKER in name or (
                    name.endswith(SIDECAR_SUFFIX) and name[: -len(SIDECAR_SUFFIX)] not in present
                ):
                    found = self._leftover(os.path.join(directory, name))
                    if found is not None:
                        yield found
        with _disk_errors(READ_FAILED):
            try:
                uploads = list(os.scandir(os.path.join(self._root, MULTIPART_FOLDER)))
            except FileNotFoundError:
                uploads = []
        for entry in uploads:
            if not _UPLOAD_ID.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            if not os.path.exists(os.path.join(entry.path, UPLOAD_META)):
                found = self._leftover(entry.path)
                if found is not None:
                    yield found
                continue
            with _disk_errors(READ_FAILED):
                try:
                    names = os.listdir(entry.path)
                except FileNotFoundError:
                    continue
            for name in names:  # a part record whose write was interrupted
                if TEMP_MARKER in name:
                    found = self._leftover(os.path.join(entry.path, name))
                    if found is not None:
                        yield found

    def _leftover(self, path: str) -> Leftover | None:
        try:
            info = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return None  # finished or removed meanwhile
        return Leftover(
            path=Path(path).relative_to(self._root).as_posix(),
            size=info.st_size,
            modified_at=datetime.fromtimestamp(info.st_mtime, tz=timezone.utc),
        )

    def remove_leftover(self, leftover: Leftover) -> None:
        """Refuses (ValueError) a path that is not a leftover, so an object can never
        be removed through here."""
        parts = leftover.path.split("/") if isinstance(leftover.path, str) else []
        if not parts or any(part in ("", ".", "..") or "\\" in part for part in parts):
            raise ValueError("not a leftover path")
        path = os.path.join(self._root, *parts)
        name = parts[-1]
        with _disk_errors(WRITE_FAILED):
            if len(parts) == 2 and parts[0] == MULTIPART_FOLDER and _UPLOAD_ID.fullmatch(name):
                if os.path.exists(os.path.join(path, UPLOAD_META)):
                    raise ValueError("that multipart upload is in progress, not a leftover")
                shutil.rmtree(path, ignore_errors=True)
                return
            if MULTIPART_FOLDER in parts:
                inside_upload = len(parts) == 3 and parts[0] == MULTIPART_FOLDER and _UPLOAD_ID.fullmatch(parts[1])
                if not inside_upload or TEMP_MARKER not in name:
                    raise ValueError("not a leftover path")
                _remove_quietly(path)
                return
            sidecar_alone = name.endswith(SIDECAR_SUFFIX) and not os.path.lexists(path[: -len(SIDECAR_SUFFIX)])
            if TEMP_MARKER not in name and not sidecar_alone:
                raise ValueError("not a leftover path")
            _remove_quietly(path)

    # Changes and links ----------------------------------------------------

    def delete(self, key: str, file_id: str) -> None:
        path = self._path(key)
        with _disk_errors(WRITE_FAILED):
            for target in (path, path + SIDECAR_SUFFIX):
                try:
                    os.unlink(target)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    pass

    def download_url(self, key: str, file_id: str, *, valid_seconds: int = 300) -> str | None:
        """Always None: the app serves local files itself (``open_range``)."""
        check_key(key)
        return None

    # Multipart uploads ----------------------------------------------------

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
        _check_content_type(content_type)
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
            with _disk_errors(WRITE_FAILED):
                os.makedirs(os.path.dirname(folder), exist_ok=True)
                os.mkdir(folder)
                os.close(os.open(data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                with open(temp_meta, "x", encoding="utf-8") as handle:
                    json.dump(meta, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp_meta, os.path.join(folder, UPLOAD_META))
                _fsync_directory(folder)
                _fsync_directory(os.path.dirname(folder))
        except BaseException:
            _remove_quietly(temp_meta)
            _remove_quietly(data_path)
            with contextlib.suppress(OSError):
                os.rmdir(folder)
            raise
        _start_cursor(self._cursor_key(upload_id))
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
        part_size = _part_size_of(meta)
        check_part_size(size, part_size)
        try:
            with _locked_data(folder, exclusive=False) as fd, _part_lock(folder, number):
                info = _write_part(folder, fd, number, chunks, size=size, offset=(number - 1) * part_size)
                _advance_cursor(self._cursor_key(upload_id), folder, fd, number, part_size)
        except StorageError as exc:
            if isinstance(exc.__cause__, FileNotFoundError) and self._read_upload_meta(folder) is None:
                raise ObjectNotFound(UPLOAD_MISSING) from exc  # aborted or completed meanwhile
            raise
        return info

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        folder, meta = self._upload_meta(key, upload_id)
        part_size = _part_size_of(meta)
        with _disk_errors(READ_FAILED):
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
            match = _PART_RECORD.fullmatch(name)
            if match is None or int(match.group(1)) > self.max_parts:
                continue
            number = int(match.group(1))
            record = _read_part_record(folder, number)
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
        _check_content_type(content_type)
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
        part_size = _part_size_of(meta)
        for part in ordered:
            if part.size > part_size or (part.size != part_size and part.number != len(ordered)):
                raise ValueError(
                    f"part {part.number} has {part.size} bytes; every part but the last must have exactly "
                    f"{part_size} bytes (the upload's part size) and the last at most that"
                )

        with _disk_errors(WRITE_FAILED):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        stored_type = meta.get("content_type") or content_type
        try:
            with _locked_data(folder, exclusive=True) as fd:
                sha1, written = self._seal(upload_id, folder, fd, meta, ordered, part_size, total)
                self._place(path, os.path.join(folder, DATA_FILE), secrets.token_hex(8), size=total, sha1=sha1,
                            content_type=stored_type, written=written)
                _fsync_directory(folder)
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
        _drop_cursor(self._cursor_key(upload_id))
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
        with _disk_errors(READ_FAILED):
            data_size = os.fstat(fd).st_size
            held = {part.number: part for part in self._held_parts(folder, part_size, data_size)}
        for part in ordered:
            if held.get(part.number) != part:
                raise StorageError(PART_DIFFERS.format(number=part.number), retryable=False)
        extra = sorted(set(held) - {part.number for part in ordered})
        if extra:
            raise StorageError(EXTRA_PARTS.format(numbers=", ".join(map(str, extra))), retryable=False)
        sha1 = _whole_file_sha1(self._cursor_key(upload_id), fd, ordered, total)
        expected_sha1 = meta.get("sha1")
        if expected_sha1 and sha1 != expected_sha1:
            logger.warning(
                "local storage: upload %s of %s has sha1 %s, declared %s", upload_id, meta["key"], sha1, expected_sha1
            )
            raise StorageError(CHECKSUM_MISMATCH, retryable=False)
        with _disk_errors(WRITE_FAILED):
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
        _remove_quietly(os.path.join(folder, UPLOAD_META))
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(folder)
        _fsync_directory(os.path.dirname(folder))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Removes the parts only: an upload already completed keeps its object."""
        check_key(key)
        folder = self._upload_folder(upload_id)
        meta = self._read_upload_meta(folder)
        if meta is not None and meta["key"] != key:
            raise ValueError("upload_id belongs to another key")
        _drop_cursor(self._cursor_key(upload_id))
        with _disk_errors(WRITE_FAILED):
            self._remove_upload(folder)

    def list_unfinished(self, prefix: str = "") -> Iterator[UnfinishedUpload]:
        check_prefix(prefix)
        return self._unfinished(prefix)

    def _unfinished(self, prefix: str) -> Iterator[UnfinishedUpload]:
        found = []
        with _disk_errors(READ_FAILED):
            try:
                entries = list(os.scandir(os.path.join(self._root, MULTIPART_FOLDER)))
            except FileNotFoundError:
                return
        for entry in entries:
            if not _UPLOAD_ID.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            meta = self._read_upload_meta(entry.path)
            if meta is None or not meta["key"].startswith(prefix):
                continue
            try:
                started_at = datetime.fromisoformat(meta.get("started_at") or "")
            except (TypeError, ValueError):
                started_at = None
            found.append(UnfinishedUpload(key=meta["key"], upload_id=entry.name, started_at=started_at))
        found.sort(key=lambda upload: (upload.key, upload.started_at or datetime.min.replace(tzinfo=timezone.utc)))
        yield from found


# Multipart helpers ------------------------------------------------------------------


class _PartRecord(NamedTuple):
    size: int
    sha1: str
    token: str  # new on every write: tells a part sent again from the copy it replaced


def _part_size_of(meta: dict) -> int:
    part_size = meta.get("part_size")
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise StorageError(OLD_UPLOAD, retryable=False)  # parts in files of their own: not resumable here
    return part_size


def _read_part_record(folder: str, number: int) -> _PartRecord | None:
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
        or not _SHA1.fullmatch(record["sha1"])
        or not isinstance(record.get("token"), str)
    ):
        logger.warning("local storage: damaged record of part %s in %s", number, folder)
        return None
    return _PartRecord(record["size"], record["sha1"], record["token"])


def _write_part_record(folder: str, number: int, size: int, sha1: str) -> None:
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
        _remove_quietly(temp_path)
        raise
    _fsync_directory(folder)


@contextlib.contextmanager
def _locked_data(folder: str, *, exclusive: bool) -> Iterator[int]:
    """The upload's data file open for reading and writing, flock()ed: shared while a
    part is written (parts go in side by side), exclusive while complete_multipart
    seals and places it (refused at once, retryable, while a part is being written).
    ObjectNotFound when the data file is gone: the upload was aborted, or completed
    and the file is the object now (also when that happened while this call waited)."""
    path = os.path.join(folder, DATA_FILE)
    with _disk_errors(WRITE_FAILED):
        try:
            fd = os.open(path, os.O_RDWR)  # never O_CREAT: a data file is made only by start_multipart
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(UPLOAD_MISSING) from None
    try:
        with _disk_errors(WRITE_FAILED):
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
def _part_lock(folder: str, number: int) -> Iterator[None]:
    """One writer per part, across threads and processes (a lock file per part, flock()ed)."""
    with _disk_errors(WRITE_FAILED):
        fd = os.open(os.path.join(folder, f"{number}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with _disk_errors(WRITE_FAILED):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError(PART_BUSY.format(number=number), retryable=True) from None
        yield
    finally:
        os.close(fd)


def _write_part(folder: str, fd: int, number: int, chunks: Iterable[bytes], *, size: int, offset: int) -> PartInfo:
    """Write part ``number`` at ``offset`` of the data file ``fd`` (this thread holds
    the part's lock), fdatasync, then record it. A part sent again loses its record
    (durably) before its bytes are overwritten."""
    with _disk_errors(WRITE_FAILED):
        if _read_part_record(folder, number) is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, f"{number}.part"))
            _fsync_directory(folder)  # gone for good before its bytes change
    digest, written = hashlib.sha1(), 0
    for chunk in chunks:  # errors raised by the source propagate unchanged
        view = memoryview(chunk).cast("B")
        if written + view.nbytes > size:
            raise UploadAborted(f"more than the announced {size} bytes")
        digest.update(view)
        with _disk_errors(WRITE_FAILED):
            while view:
                count = os.pwrite(fd, view, offset + written)
                view = view[count:]
                written += count
    if written != size:
        raise UploadAborted(f"{written} bytes instead of the announced {size}")
    sha1 = digest.hexdigest()
    with _disk_errors(WRITE_FAILED):
        _fdatasync(fd)
        _write_part_record(folder, number, size, sha1)
    return PartInfo(number=number, size=size, sha1=sha1)


def _hash_range(fd: int, offset: int, length: int, digest, buffer: bytearray) -> bool:
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


def _start_cursor(key: tuple[str, str]) -> None:
    with _hash_cursors_lock:
        while len(_hash_cursors) >= MAX_HASH_CURSORS:  # abandoned uploads: forget the oldest
            del _hash_cursors[next(iter(_hash_cursors))]
        _hash_cursors[key] = _HashCursor()


def _drop_cursor(key: tuple[str, str], cursor: _HashCursor | None = None) -> None:
    with _hash_cursors_lock:
        if cursor is None or _hash_cursors.get(key) is cursor:
            _hash_cursors.pop(key, None)


def _advance_cursor(key: tuple[str, str], folder: str, fd: int, number: int, part_size: int) -> None:
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
            record = _read_part_record(folder, number)
            if record is None or (record.size, record.sha1) != cursor.hashed[number - 1]:
                _drop_cursor(key, cursor)  # a part it had hashed changed: complete hashes from the start
                return
        buffer = bytearray(HASH_BUFFER_SIZE)
        budget = max(HASH_AHEAD_BYTES, part_size)
        while budget > 0:
            following = len(cursor.hashed) + 1
            record = _read_part_record(folder, following)
            if record is None:
                break
            before = cursor.digest.copy()
            complete = _hash_range(fd, (following - 1) * part_size, record.size, cursor.digest, buffer)
            if not complete or _read_part_record(folder, following) != record:
                cursor.digest = before  # the part was being sent again while it was read
                break
            cursor.hashed.append((record.size, record.sha1))
            budget -= record.size
    except Exception as exc:
        logger.warning("local storage: hashing the parts in %s ahead of completion stopped: %s", folder, exc)
        _drop_cursor(key, cursor)
    except BaseException:
        _drop_cursor(key, cursor)
        raise
    finally:
        cursor.lock.release()


def _whole_file_sha1(key: tuple[str, str], fd: int, ordered: list[PartInfo], total: int) -> str:
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
    with _disk_errors(READ_FAILED):
        if not _hash_range(fd, offset, total - offset, digest, bytearray(READ_CHUNK_SIZE)):
            raise StorageError(READ_FAILED, retryable=True)  # shorter than its parts: changed meanwhile
    logger.debug("local storage: whole-file sha1 read %d of %d bytes at completion", total - offset, total)
    return digest.hexdigest()
