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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import stat as stat_mode
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path

from course_app.storage.base import ObjectNotFound, Storage, StorageError, StoredObject
from course_app.storage.keys import SIDECAR_SUFFIX, TEMP_MARKER, check_key, check_prefix, check_range, is_internal_name

logger = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
DISK_FULL = "The server's storage is full; an administrator needs to free space."
WRITE_FAILED = "Could not save the file on the server; try again."
READ_FAILED = "Could not read the stored file; try again."


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


def _sha1_of_file(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(READ_CHUNK_SIZE):
            digest.update(block)
    return digest.hexdigest()


class LocalStorage(Storage):
    """Objects as files under ``root`` (created if missing)."""

    name = "local"

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
        if not content_type or not isinstance(content_type, str):
            raise ValueError("content_type must be a non-empty string")
        directory = os.path.dirname(path)
        token = secrets.token_hex(8)
        temp_path = f"{path}{TEMP_MARKER}{token}"
        temp_sidecar = f"{path}{SIDECAR_SUFFIX}{TEMP_MARKER}{token}"
        digest, size = hashlib.sha1(), 0
        sidecar_placed = data_placed = False
        try:
            with _disk_errors(WRITE_FAILED):
                os.makedirs(directory, exist_ok=True)
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
                _fsync_directory(directory)
        except BaseException:
            _remove_quietly(temp_path)
            _remove_quietly(temp_sidecar)
            if sidecar_placed and not data_placed:
                _remove_quietly(path + SIDECAR_SUFFIX)
            raise
        return StoredObject(
            key=key,
            file_id=key,
            size=size,
            sha1=sha1,
            content_type=content_type,
            uploaded_at=datetime.fromtimestamp(written.st_mtime, tz=timezone.utc),  # a rename keeps mtime
        )

    # Reads ----------------------------------------------------------------

    def _describe(self, key: str, path: str, info: os.stat_result) -> StoredObject:
        """Metadata from the sidecar when it matches the file, else from the bytes.
        Raises FileNotFoundError if the file disappears meanwhile."""
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
