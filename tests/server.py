"""Starts the app's production build once for the test session and stops it after:
`reflex run --env prod` on SQLite with one worker by default; with pytest's
``--production-app``, `course-app serve` on a fresh PostgreSQL database with the
Redis state manager and two workers (``production_env``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import uuid

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from course_app.db import make_engine
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = float(os.environ.get("COURSE_TEST_SERVER_TIMEOUT", "600"))
PG_ADMIN_URL = os.environ.get("COURSE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("COURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Set by tests/conftest.py from pytest's --production-app option.
PRODUCTION = False


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@contextmanager
def fresh_postgres(prefix: str = "course_test") -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server; dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def production_env(database_url: str) -> dict[str, str]:
    """What --production-app adds: PostgreSQL, Redis for page state, two workers,
    JSON logs and metrics behind a token."""
    return {"COURSE_DATABASE_URL": database_url, "COURSE_REDIS_URL": REDIS_URL, "COURSE_WEB_WORKERS": "2",
            "COURSE_LOG_FORMAT": "json", "COURSE_METRICS_TOKEN": "metrics-" + uuid.uuid4().hex,
            # Each app its own rate-limit budgets in the shared Redis.
            "COURSE_RATE_LIMIT_KEY_PREFIX": "course-test-" + uuid.uuid4().hex[:12]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(self, data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None, *,
                 production: bool = False, port: int | None = None) -> None:
        self.production = production  # `course-app serve` (its settings come with extra_env)
        self.port = port or free_port()
        self.base_url = f"http://localhost:{self.port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.database_url = f"sqlite:///{data_dir / 'course_studio.db'}"
        self.env = {
            **os.environ,
            "REFLEX_USE_SYSTEM_BUN": "1",
            # The test build lives apart from a developer's `.web`, so both can run at once.
            "REFLEX_WEB_WORKDIR": os.environ.get("COURSE_TEST_WEB_DIR", str(ROOT / ".web-test")),
            "REFLEX_STATES_WORKDIR": str(data_dir.parent / "states"),
            "COURSE_DATA_DIR": str(data_dir),
            "COURSE_DATABASE_URL": self.database_url,
            "COURSE_ALLOWED_ORIGINS": f"http://localhost:{self.port},http://127.0.0.1:{self.port}",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.database_url = self.env["COURSE_DATABASE_URL"]
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.production:
            return [str(Path(sys.executable).parent / "course-app"), "serve", "--port", str(self.port)]
        return [str(Path(sys.executable).parent / "reflex"), "run", "--env", "prod", "--single-port",
                "--frontend-port", str(self.port), "--backend-port", str(self.port), "--loglevel", "info"]

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + BUILD_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/ping", timeout=2).status_code == 200 and \
                        httpx.get(f"{self.base_url}/login", timeout=5, follow_redirects=True).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the app did not start within {BUILD_TIMEOUT:.0f}s:\n{self.log_tail()}")

    def restart(self) -> None:
        """Stop the app and start it again on the same port, data and build folder."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        if getattr(self, "log", None):
            self.log.close()


@contextmanager
def separate_app(tmp_path_factory, name: str, env: dict[str, str]) -> Iterator[AppServer]:
    """Another production build of the app, with its own data and web build folders
    (so it never clashes with the session's app), for tests that need other settings.
    With --production-app, like the session's app: its own PostgreSQL database, Redis,
    two workers."""
    home = tmp_path_factory.mktemp(name)
    with fresh_postgres() if PRODUCTION else nullcontext() as database_url:
        production = production_env(database_url) if PRODUCTION else {}
        server = AppServer(data_dir=home / "data", log_path=home / "server.log", production=PRODUCTION,
                           extra_env={"REFLEX_WEB_WORKDIR": str(home / "web"), **production, **env})
        server.start()
        try:
            yield server
        finally:
            server.stop()


def start_together(servers: list[AppServer]) -> None:
    """Start several app servers, one after the other: each build initializes its
    web folder from the project's one ``reflex.lock``, and two builds at once race
    on it (one was seen leaving it emptied, which broke every later build). Raise
    the first failure, with the ones started so far stopped."""
    started: list[AppServer] = []
    try:
        for server in servers:
            server.log_path.parent.mkdir(parents=True, exist_ok=True)
            server.start()
            started.append(server)
    except BaseException:
        for server in started:
            server.stop()
        raise


@contextmanager
def engine_of(server: AppServer) -> Iterator[Engine]:
    """The server's own database, for assertions."""
    engine = make_engine(server.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def wait_processed(engine: Engine, video_ids=None, *, timeout: float = 180.0) -> dict[str, str]:
    """Wait until the app's worker is done with these videos (every video, when None):
    none of them is still ``processing``. Returns {video id: status}."""
    import uuid

    from sqlmodel import Session, select

    from course_app.models import Video

    wanted = None if video_ids is None else [uuid.UUID(str(v)) for v in video_ids]
    query = select(Video.id, Video.status)
    if wanted is not None:
        query = query.where(Video.id.in_(wanted))

    def statuses() -> dict[str, str]:
        with Session(engine) as session:
            return {str(video_id): status for video_id, status in session.exec(query)}

    return wait_for(statuses, "no video to be processing", until=lambda found: "processing" not in found.values(),
                    timeout=timeout)
