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
shows and no key or prefix may name): ``meta.json`` (key, content type, the
whole-file SHA1 if declared, start time) and one ``<number>.part`` per part, each
written like an object (temp file, fsync, sidecar with its SHA1, rename), so a
part is either wholly there or not at all and re-sending it replaces it
atomically. The upload id is 32 random lowercase hex digits; any other id is
refused with ValueError before the disk is touched. ``complete_multipart`` joins
the parts into a temp file beside the final path one MiB at a time (hashing the
whole file on the way; memory does not grow with the file), places it like
``put_stream`` does and then removes the upload's folder. A part stream shorter or
longer than its announced ``size`` raises UploadAborted and leaves that part as it
was.

A process killed mid-write leaves what its clean-up would have removed: temp
files, a sidecar without its data file, a multipart folder without ``meta.json``.
``list_leftovers`` finds them (``list`` never shows them) and ``remove_leftover``
removes one, refusing any path that is not such a leftover; ``course-app
check-videos --repair`` removes those older than its grace period.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat as stat_mode
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path

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
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_FILE = re.compile(r"([1-9][0-9]{0,4})\.part")
UPLOAD_META = "meta.json"


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

    def _write(
        self, path: str, chunks: Iterable[bytes], *, content_type: str, expected_size: int | None = None
    ) -> tuple[int, str, os.stat_result]:
        """Stream ``chunks`` into ``path`` (whose folder exists) through a temp file and
        place it with its sidecar. With ``expected_size``, a stream of any other length
        raises UploadAborted (reading stops at the first byte too many). On any error
        nothing new is left and what was at ``path`` before stays."""
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
                    if expected_size is not None and size > expected_size:
                        raise UploadAborted(f"more than the announced {expected_size} bytes")
                    with _disk_errors(WRITE_FAILED):
                        out.write(chunk)
                if expected_size is not None and size != expected_size:
                    raise UploadAborted(f"{size} bytes instead of the announced {expected_size}")
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
        that never finished) and temp files of parts inside upload folders. A write
        in progress looks the same: judge by ``modified_at``. Paths are relative to
        the root, with ``/``."""
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
            for name in names:  # a part whose write was interrupted
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

    def start_multipart(self, key: str, *, content_type: str, sha1: str | None = None) -> str:
        check_key(key)
        _check_content_type(content_type)
        sha1 = check_sha1(sha1)
        upload_id = secrets.token_hex(16)
        folder = self._upload_folder(upload_id)
        meta = {
            "key": key,
            "content_type": content_type,
            "sha1": sha1,
            "started_at": datetime.now(timezone.utc).isoformat(),
        }
        temp_meta = os.path.join(folder, f"{UPLOAD_META}{TEMP_MARKER}{secrets.token_hex(8)}")
        try:
            with _disk_errors(WRITE_FAILED):
                os.makedirs(os.path.dirname(folder), exist_ok=True)
                os.mkdir(folder)
                with open(temp_meta, "x", encoding="utf-8") as handle:
                    json.dump(meta, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp_meta, os.path.join(folder, UPLOAD_META))
                _fsync_directory(folder)
                _fsync_directory(os.path.dirname(folder))
        except BaseException:
            _remove_quietly(temp_meta)
            with contextlib.suppress(OSError):
                os.rmdir(folder)
            raise
        return upload_id

    def put_part(self, key: str, upload_id: str, number: int, chunks: Iterable[bytes], *, size: int) -> PartInfo:
        """Raises UploadAborted (and keeps what was stored for ``number`` before) when
        ``chunks`` yields fewer or more than ``size`` bytes."""
        check_key(key)
        check_upload_id(upload_id)
        check_part_number(number, self.max_parts)
        check_part_size(size)
        folder, _ = self._upload_meta(key, upload_id)
        path = os.path.join(folder, f"{number}.part")
        try:
            stored_size, sha1, _ = self._write(
                path, chunks, content_type=DEFAULT_CONTENT_TYPE, expected_size=size
            )
        except StorageError as exc:
            if isinstance(exc.__cause__, FileNotFoundError) and self._read_upload_meta(folder) is None:
                raise ObjectNotFound(UPLOAD_MISSING) from exc  # aborted or completed meanwhile
            raise
        return PartInfo(number=number, size=stored_size, sha1=sha1)

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        folder, _ = self._upload_meta(key, upload_id)
        with _disk_errors(READ_FAILED):
            return self._held_parts(folder)

    def _held_parts(self, folder: str) -> list[PartInfo]:
        """The parts in ``folder`` by number (raises OSError)."""
        parts = []
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            raise ObjectNotFound(UPLOAD_MISSING) from None
        for entry in entries:
            match = _PART_FILE.fullmatch(entry.name)
            if match is None or int(match.group(1)) > self.max_parts:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if not stat_mode.S_ISREG(info.st_mode):
                    continue
                sha1 = _sidecar(entry.path, info)["sha1"]
            except FileNotFoundError:
                continue  # replaced or removed meanwhile
            parts.append(PartInfo(number=int(match.group(1)), size=info.st_size, sha1=sha1))
        return sorted(parts, key=lambda part: part.number)

    def complete_multipart(self, key: str, upload_id: str, parts: list[PartInfo], *, content_type: str) -> StoredObject:
        """The object keeps the content type given at start (``content_type`` is used
        only if the upload's record lacks one)."""
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
        with _disk_errors(READ_FAILED):
            held = {part.number: part for part in self._held_parts(folder)}
        for part in ordered:
            if held.get(part.number) != part:
                raise StorageError(PART_DIFFERS.format(number=part.number), retryable=False)
        extra = sorted(set(held) - {part.number for part in ordered})
        if extra:
            raise StorageError(EXTRA_PARTS.format(numbers=", ".join(map(str, extra))), retryable=False)

        with _disk_errors(WRITE_FAILED):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        token = secrets.token_hex(8)
        temp_path = f"{path}{TEMP_MARKER}{token}"
        try:
            sha1, written = self._join(folder, ordered, temp_path)
            expected_sha1 = meta.get("sha1")
            if expected_sha1 and sha1 != expected_sha1:
                logger.warning(
                    "local storage: upload %s of %s has sha1 %s, declared %s", upload_id, key, sha1, expected_sha1
                )
                raise StorageError(CHECKSUM_MISMATCH, retryable=False)
            stored_type = meta.get("content_type") or content_type
            self._place(path, temp_path, token, size=total, sha1=sha1, content_type=stored_type, written=written)
        except BaseException:
            _remove_quietly(temp_path)
            raise
        try:
            self._remove_upload(folder)
        except OSError as exc:  # the object is complete; abort_multipart can finish the cleanup
            logger.warning("local storage: could not remove the parts of upload %s: %s", upload_id, exc)
        return StoredObject(
            key=key,
            file_id=key,
            size=total,
            sha1=sha1,
            content_type=stored_type,
            uploaded_at=datetime.fromtimestamp(written.st_mtime, tz=timezone.utc),
        )

    @staticmethod
    def _join(folder: str, ordered: list[PartInfo], temp_path: str) -> tuple[str, os.stat_result]:
        """Copy the parts into ``temp_path`` through one reused 1 MiB buffer, hashing
        the whole file on the way; returns its SHA1 and stat after fsync."""
        digest = hashlib.sha1()
        buffer = bytearray(READ_CHUNK_SIZE)
        view = memoryview(buffer)
        with _disk_errors(WRITE_FAILED):
            out = open(temp_path, "xb")
        with out:
            for part in ordered:
                copied = 0
                with _disk_errors(READ_FAILED):
                    source = open(os.path.join(folder, f"{part.number}.part"), "rb", buffering=0)
                with source:
                    while True:
                        with _disk_errors(READ_FAILED):
                            count = source.readinto(buffer)
                        if not count:
                            break
                        digest.update(view[:count])
                        with _disk_errors(WRITE_FAILED):
                            out.write(view[:count])
                        copied += count
                if copied != part.size:  # changed since it was checked
                    raise StorageError(PART_DIFFERS.format(number=part.number), retryable=False)
            with _disk_errors(WRITE_FAILED):
                out.flush()
                os.fsync(out.fileno())
                written = os.fstat(out.fileno())
        return digest.hexdigest(), written

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
