"""Local-disk storage: one file per object under a root folder.

Layout: the object ``videos/12/<uuid>`` is the file ``<root>/videos/12/<uuid>``, with
its metadata (size, SHA1, content type) in the sidecar ``<uuid>.meta.json`` beside
it (local_disk.py). Uploads are written to ``<uuid>.part-<random>``, fsynced, and
renamed into place only when complete, so a reader never sees half a file and a
failed upload leaves nothing behind. Multipart uploads (local_multipart.py) live in
``<root>/.multipart/``, which ``list`` never shows.

``file_id`` is the key itself: a local object has no separate version id. The
``file_id`` argument is accepted for the interface and otherwise ignored.
``list`` ignores ``page_size`` (it walks the folders with ``os.scandir`` lazily).

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

import hashlib
import os
import secrets
import shutil
import stat as stat_mode
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path

from course_app.storage import local_disk as disk
from course_app.storage.base import Leftover, ObjectNotFound, Storage, StorageError, StoredObject
from course_app.storage.keys import (
    MULTIPART_FOLDER,
    SIDECAR_SUFFIX,
    TEMP_MARKER,
    check_key,
    check_prefix,
    check_range,
    is_internal_name,
)
from course_app.storage.local_disk import READ_CHUNK_SIZE, READ_FAILED, WRITE_FAILED
from course_app.storage.local_multipart import UPLOAD_ID, UPLOAD_META, LocalMultipart

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class LocalStorage(Storage, LocalMultipart):
    """Objects as files under ``root`` (created if missing); multipart uploads from
    the LocalMultipart mixin."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()
        self._root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> str:
        return os.path.join(self._root, *check_key(key).split("/"))

    def local_path(self, key: str) -> str | None:
        return self._path(key)

    # Uploads --------------------------------------------------------------

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        path = self._path(key)
        disk.check_content_type(content_type)
        with disk.errors(WRITE_FAILED):
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
            with disk.errors(WRITE_FAILED):
                out = open(temp_path, "xb")
            with out:
                for chunk in chunks:  # errors raised by the source propagate unchanged
                    digest.update(chunk)
                    size += memoryview(chunk).nbytes
                    with disk.errors(WRITE_FAILED):
                        out.write(chunk)
                with disk.errors(WRITE_FAILED):
                    out.flush()
                    os.fsync(out.fileno())
                    written = os.fstat(out.fileno())
            sha1 = digest.hexdigest()
            disk.place(path, temp_path, token, size=size, sha1=sha1, content_type=content_type, written=written)
        except BaseException:
            disk.remove_quietly(temp_path)
            raise
        return size, sha1, written

    # Reads ----------------------------------------------------------------

    def _describe(self, key: str, path: str, info: os.stat_result) -> StoredObject:
        """Metadata from the sidecar when it matches the file, else from the bytes.
        Raises FileNotFoundError if the file disappears meanwhile."""
        meta = disk.read_sidecar(path, info)
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
        with disk.errors(READ_FAILED):
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
        with disk.errors(READ_FAILED):
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
        with disk.errors(READ_FAILED):
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                raise ObjectNotFound() from None
        with handle:
            handle.seek(start)
            remaining = last - start + 1
            while remaining > 0:
                with disk.errors(READ_FAILED):
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
        with disk.errors(READ_FAILED):
            try:
                uploads = list(os.scandir(os.path.join(self._root, MULTIPART_FOLDER)))
            except FileNotFoundError:
                uploads = []
        for entry in uploads:
            if not UPLOAD_ID.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            if not os.path.exists(os.path.join(entry.path, UPLOAD_META)):
                found = self._leftover(entry.path)
                if found is not None:
                    yield found
                continue
            with disk.errors(READ_FAILED):
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
        with disk.errors(WRITE_FAILED):
            if len(parts) == 2 and parts[0] == MULTIPART_FOLDER and UPLOAD_ID.fullmatch(name):
                if os.path.exists(os.path.join(path, UPLOAD_META)):
                    raise ValueError("that multipart upload is in progress, not a leftover")
                shutil.rmtree(path, ignore_errors=True)
                return
            if MULTIPART_FOLDER in parts:
                inside_upload = len(parts) == 3 and parts[0] == MULTIPART_FOLDER and UPLOAD_ID.fullmatch(parts[1])
                if not inside_upload or TEMP_MARKER not in name:
                    raise ValueError("not a leftover path")
                disk.remove_quietly(path)
                return
            sidecar_alone = name.endswith(SIDECAR_SUFFIX) and not os.path.lexists(path[: -len(SIDECAR_SUFFIX)])
            if TEMP_MARKER not in name and not sidecar_alone:
                raise ValueError("not a leftover path")
            disk.remove_quietly(path)

    # Changes and links ----------------------------------------------------

    def delete(self, key: str, file_id: str) -> None:
        path = self._path(key)
        with disk.errors(WRITE_FAILED):
            for target in (path, path + SIDECAR_SUFFIX):
                try:
                    os.unlink(target)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    pass

    def download_url(self, key: str, file_id: str, *, valid_seconds: int = 300) -> str | None:
        """Always None: the app serves local files itself (``open_range``)."""
        check_key(key)
        return None

