"""Where video bytes live. ``get_storage()`` returns the backend the settings choose
(``COURSE_STORAGE_BACKEND``: ``local`` or ``b2``), built once per process."""

from __future__ import annotations

import threading

from course_app.settings import Settings, get_settings
from course_app.storage.base import (
    ObjectNotFound,
    Storage,
    StorageError,
    StoredObject,
    UploadAborted,
    video_key,
)

__all__ = [
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StoredObject",
    "UploadAborted",
    "build_storage",
    "get_storage",
    "set_storage_for_tests",
    "video_key",
]

_lock = threading.Lock()
_storage: Storage | None = None


def build_storage(settings: Settings) -> Storage:
    """A new backend for ``settings`` (B2: authorizes now; raises StorageError if B2
    refuses the key or cannot be reached)."""
    if settings.storage_backend == "b2":
        from course_app.storage.b2 import B2Storage

        return B2Storage.from_credentials(settings.b2_key_id, settings.b2_application_key, settings.b2_bucket_name)
    from course_app.storage.local import LocalStorage

    return LocalStorage(settings.resolved_storage_dir)


def get_storage() -> Storage:
    """The process's storage, built from the settings on first use. A failed build is
    not cached, so the next call tries again."""
    global _storage
    with _lock:
        if _storage is None:
            _storage = build_storage(get_settings())
        return _storage


def set_storage_for_tests(storage: Storage | None) -> None:
    """Make ``get_storage()`` return ``storage``; ``None`` forgets it so the next call
    builds from the settings again."""
    global _storage
    with _lock:
        _storage = storage
