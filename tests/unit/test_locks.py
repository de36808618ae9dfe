"""course_app/locks.py and db.migrate: one holder at a time across processes, a lock
freed when its holder's connection (or process) ends, and migrations applied once
when several processes start together on a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from course_app.db import make_engine
from course_app.locks import FileLock, PostgresLock, RedisLock, advisory_key, sqlite_lock_path
from course_app.settings import get_settings
from tests.conftest import _pg_available
from tests.server import REDIS_URL, fresh_postgres, redis_available

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_pg():
    """An empty PostgreSQL database (no schema), dropped after."""
    if not _pg_available():
        pytest.skip("PostgreSQL is not running here")
    with fresh_postgres("course_lock") as url:
        yield url


def test_advisory_keys_are_stable_signed_64_bit_and_differ_by_name():
    assert advisory_key("migrate") == advisory_key("migrate")
    assert advisory_key("migrate") != advisory_key("upkeep")
    assert -(2**63) <= advisory_key("upkeep") < 2**63


def test_postgres_lock_has_one_holder_and_is_freed_with_its_connection(fresh_pg):
    first, second = PostgresLock(fresh_pg, "upkeep"), PostgresLock(fresh_pg, "upkeep")
    assert first.acquire(blocking=False)
    assert first.acquire(blocking=False)  # already ours
    assert not second.acquire(blocking=False)
    assert first.keep()
    first.release()
    assert not first.keep()
    assert second.acquire(blocking=False)
    # The holder's connection ends (a crashed process): the server frees the lock.
    second._connection.invalidate()
    assert not second.keep()
    assert first.acquire(blocking=False)
    first.release()


def test_file_lock_has_one_holder_across_processes(tmp_path):
    path = tmp_path / "db.sqlite.upkeep.lock"
    lock = FileLock(path)
    assert lock.acquire(blocking=False)
    holder_code = ("import sys; from course_app.locks import FileLock; from pathlib import Path; "
                   "sys.exit(0 if FileLock(Path(sys.argv[1])).acquire(blocking=False) else 3)")
    other = subprocess.run([sys.executable, "-c", holder_code, str(path)], cwd=ROOT, env=os.environ)
    assert other.returncode == 3
    lock.release()
    assert subprocess.run([sys.executable, "-c", holder_code, str(path)], cwd=ROOT, env=os.environ).returncode == 0


def test_sqlite_lock_lies_beside_the_database_file(tmp_path):
    settings = get_settings()
    assert sqlite_lock_path(f"sqlite:///{tmp_path}/x.db", "migrate", settings) == Path(f"{tmp_path}/x.db.migrate.lock")
    assert sqlite_lock_path("sqlite:///:memory:", "migrate", settings).name == "migrate.lock"


def test_redis_lock_expires_unless_kept():
    if not redis_available():
        pytest.skip("Redis is not running here")
    name = f"test-{uuid.uuid4().hex}"
    first, second = RedisLock(REDIS_URL, name, ttl=0.5), RedisLock(REDIS_URL, name, ttl=0.5)
    assert first.acquire(blocking=False)
    assert not second.acquire(blocking=False)
    assert first.keep()
    # The holder stops renewing (it died): the key expires and another takes over.
    first._client.pexpire(first._lock.name, 1)
    assert second.acquire(blocking=True)
    assert not first.keep()
    second.release()
    assert first.acquire(blocking=False)
    first.release()


MIGRATE = "import sys; from course_app.db import migrate; migrate(sys.argv[1]); print('ok')"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_apply_once_when_processes_start_together(backend, fresh_pg, tmp_path):
    url = fresh_pg if backend == "postgresql" else f"sqlite:///{tmp_path / 'fresh.db'}"
    starters = [subprocess.Popen([sys.executable, "-c", MIGRATE, url], cwd=ROOT, env=os.environ,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in starters]
    assert all(code == 0 for code, _ in results), [err[-800:] for code, err in results if code]
    engine = make_engine(url)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert len(versions) == 1
