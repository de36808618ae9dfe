"""Named locks shared by every process of the app, on every machine: so several
processes starting together apply migrations once, and one process at a time does
the background upkeep.

Each lock lives where the processes already meet:
- Redis (``COURSE_REDIS_URL``): redis-py's lock, a key with an expiry the holder
  renews, so a holder that dies frees it when the key expires;
- PostgreSQL: a session advisory lock, held by an open connection, freed by the
  server when that connection ends (a crashed holder included). Needs a session
  (not a transaction-mode) pooler;
- SQLite (one machine): an OS file lock beside the database file (``filelock``),
  freed by the operating system when the holder exits.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from course_app.settings import Settings, get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "course-studio:lock:"


class SharedLock(Protocol):
    def acquire(self, *, blocking: bool) -> bool:
        """Take the lock (waiting for it when ``blocking``); True when held."""

    def keep(self) -> bool:
        """Renew the hold; False when it was lost (its connection or key is gone)."""

    def release(self) -> None:
        """Let the lock go (a lock not held is left alone)."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``, from the lock's name."""
    return int.from_bytes(hashlib.sha1(f"{KEY_PREFIX}{name}".encode()).digest()[:8], "big", signed=True)


class PostgresLock:
    def __init__(self, url: str, name: str) -> None:
        from course_app.db import with_driver

        self._engine = create_engine(with_driver(url), poolclass=NullPool)
        self._key = advisory_key(name)
        self._connection: Connection | None = None

    def acquire(self, *, blocking: bool) -> bool:
        if self._connection is not None:
            return True
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if blocking:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
                held = True
            else:
                held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}).scalar())
        except BaseException:
            connection.close()
            raise
        if held:
            self._connection = connection
        else:
            connection.close()
        return held

    def keep(self) -> bool:
        if self._connection is None:
            return False
        try:  # the lock lives as long as the session that took it
            self._connection.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("The connection holding a lock was lost; the lock with it")
            self._drop()
            return False

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except Exception:  # the connection is gone: so is the lock
            pass
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass


class FileLock:
    def __init__(self, path: Path) -> None:
        import filelock

        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = filelock.FileLock(str(path))

    def acquire(self, *, blocking: bool) -> bool:
        import filelock

        try:
            self._lock.acquire(timeout=-1 if blocking else 0)
            return True
        except filelock.Timeout:
            return False

    def keep(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)


class RedisLock:
    def __init__(self, url: str, name: str, ttl: float) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._lock = self._client.lock(KEY_PREFIX + name, timeout=ttl, thread_local=False)

    def acquire(self, *, blocking: bool) -> bool:
        if self._lock.local.token is not None and self.keep():
            return True
        return bool(self._lock.acquire(blocking=blocking))

    def keep(self) -> bool:
        from redis.exceptions import LockError, RedisError

        if self._lock.local.token is None:
            return False
        try:
            self._lock.reacquire()  # back to the full expiry, only if the key is still ours
            return True
        except (LockError, RedisError):
            self._lock.local.token = None
            return False

    def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        if self._lock.local.token is None:
            return
        try:
            self._lock.release()
        except (LockError, RedisError):
            self._lock.local.token = None


def sqlite_lock_path(database_url: str, name: str, settings: Settings) -> Path:
    path = database_url.removeprefix("sqlite:///")
    if path and ":memory:" not in path:
        return Path(f"{path}.{name}.lock")
    return settings.data_dir.resolve() / f"{name}.lock"


def database_lock(name: str, url: str | None = None) -> SharedLock:
    """A lock in the database itself (for migrations: no other service needed)."""
    settings = get_settings()
    url = url or settings.resolved_database_url
    if url.startswith("sqlite"):
        return FileLock(sqlite_lock_path(url, name, settings))
    return PostgresLock(url, name)


def shared_lock(name: str, *, ttl: float = 90) -> SharedLock:
    """Redis when configured (its key expires ``ttl`` seconds after the last renewal),
    else the database's own lock."""
    settings = get_settings()
    if settings.redis_url:
        # Named by the database too: apps of other deployments may share the Redis server.
        deployment = hashlib.sha1(settings.resolved_database_url.encode()).hexdigest()[:12]
        return RedisLock(settings.redis_url, f"{deployment}:{name}", ttl)
    return database_lock(name)
