"""Disk helpers both halves of LocalStorage use (objects in local.py, multipart
uploads in local_multipart.py): OSErrors turned into messages safe to show,
durable renames, and an object's metadata sidecar.

An object's file ``<uuid>`` has its metadata (size, SHA1, content type) in the
sidecar ``<uuid>.meta.json`` beside it. ``place`` renames the sidecar into place
*before* the data file, and the sidecar names the data file's inode and mtime; a
sidecar that does not match the file it sits beside (a crash between the two
renames, a file copied in by hand) is ignored by ``read_sidecar`` and the SHA1
computed from the bytes instead.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterator

from course_app.storage.base import StorageError
from course_app.storage.keys import SIDECAR_SUFFIX, TEMP_MARKER

logger = logging.getLogger(__name__)

READ_CHUNK_SIZE = 1024 * 1024
DISK_FULL = "The server's storage is full; an administrator needs to free space."
WRITE_FAILED = "Could not save the file on the server; try again."
READ_FAILED = "Could not read the stored file; try again."
fdatasync = getattr(os, "fdatasync", os.fsync)


@contextlib.contextmanager
def errors(message: str) -> Iterator[None]:
    """Turn an OSError from the disk into a StorageError that is safe to show."""
    try:
        yield
    except OSError as exc:
        logger.warning("local storage: %s", exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(DISK_FULL, retryable=False) from exc
        raise StorageError(message, retryable=True) from exc


def remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_directory(directory: str) -> None:
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


def check_content_type(content_type: str) -> None:
    if not content_type or not isinstance(content_type, str):
        raise ValueError("content_type must be a non-empty string")


def read_sidecar(path: str, info: os.stat_result) -> dict:
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
        meta = {"sha1": sha1_of_file(path)}
    return meta


def sha1_of_file(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(READ_CHUNK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def place(
    path: str, temp_path: str, token: str, *, size: int, sha1: str, content_type: str, written: os.stat_result
) -> None:
    """Rename the finished (fsynced) ``temp_path`` into place with its sidecar: the
    sidecar first, naming the data file's inode and mtime, then the data. If the
    data rename fails the sidecar goes too; the caller removes ``temp_path``."""
    temp_sidecar = f"{path}{SIDECAR_SUFFIX}{TEMP_MARKER}{token}"
    sidecar_placed = data_placed = False
    try:
        with errors(WRITE_FAILED):
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
            fsync_directory(os.path.dirname(path))
    except BaseException:
        remove_quietly(temp_sidecar)
        if sidecar_placed and not data_placed:
            remove_quietly(path + SIDECAR_SUFFIX)
        raise
