"""The database engine, sessions and migrations (the single source of truth)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from course_app.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Threads per process for the database calls made from the event loop (run_in_session,
# asyncio.to_thread): as many as the engine's pool has connections (5 + 10 overflow),
# where asyncio's default is cpus + 4 (6 here), a queue that an editor's save waited
# in behind fifty uploads' log-in checks and part records.
DATABASE_THREADS = 15


def with_driver(url: str) -> str:
    """Name the PostgreSQL driver the project ships (psycopg2): SQLAlchemy 2.1
    maps a bare ``postgresql://`` to psycopg 3, which is not installed."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and ":memory:" not in url:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(with_driver(url), pool_pre_ping=True)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings().resolved_database_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest Alembic revision (idempotent). Several processes
    starting together take turns (a PostgreSQL advisory lock, or a file lock beside the
    SQLite file): the first applies what is missing, the others find it done."""
    from alembic import command
    from alembic.config import Config

    from course_app.locks import database_lock

    url = url or get_settings().resolved_database_url
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    lock = database_lock("migrate", url)
    lock.acquire(blocking=True)
    try:
        command.upgrade(config, "head")
    finally:
        lock.release()


async def use_database_threads() -> None:
    """Lifespan task: size the event loop's default thread pool (see DATABASE_THREADS)."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="db"))


def _call_in_session(fn, kwargs):
    with session_scope() as session:
        return fn(session=session, **kwargs)


async def run_in_session(fn, /, **kwargs):
    """Run ``fn(session=..., **kwargs)`` in its own transaction, off the event loop."""
    return await asyncio.to_thread(_call_in_session, fn, kwargs)
