"""Shared fixtures: real databases (SQLite file and the local PostgreSQL) and
one production build of the app per test session."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

# Settings come from the environment: give the test process its own data folder
# before anything imports course_app.
_TEST_HOME = Path(tempfile.mkdtemp(prefix="course-studio-tests-"))
os.environ.setdefault("COURSE_DATA_DIR", str(_TEST_HOME / "data"))
os.environ.setdefault("COURSE_SECRET_KEY", "test-secret-" + uuid.uuid4().hex)

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from course_app.db import make_engine, migrate  # noqa: E402
from course_app.models import User  # noqa: E402
from course_app.services import users  # noqa: E402

from tests.server import PG_ADMIN_URL  # noqa: E402
TABLES_IN_DELETE_ORDER = ("idempotent_requests", "upload_parts", "upload_sessions", "storage_deletions", "video_replacements", "videos", "chapters", "courses", "api_tokens", "auth_sessions", "users")


def _pg_available() -> bool:
    try:
        engine = make_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh database on the local server, migrated once, dropped at the end."""
    from tests.server import fresh_postgres

    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL is not running here")
    with fresh_postgres() as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def postgresql_url(postgres_url) -> str:
    """The name the ``engine`` fixture looks up for its "postgresql" param."""
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request):
    """Each database-facing test runs on SQLite and on PostgreSQL, on empty tables."""
    url = request.getfixturevalue(f"{request.param}_url")
    engine = make_engine(url)
    yield engine
    with engine.begin() as conn:
        for table in TABLES_IN_DELETE_ORDER:
            conn.execute(sa.text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture
def session(engine):
    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture
def make_user(session):
    def _make(email: str | None = None, role: str = "instructor", password: str = "correct horse battery") -> User:
        user = users.create_user(
            session=session, email=email or f"{uuid.uuid4().hex[:8]}@example.com", password=password, role=role
        )
        session.commit()
        return user

    return _make


# The running app ---------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption("--production-app", action="store_true", default=False,
                     help="run the session's app (and separate apps) as `course-app serve` on a fresh PostgreSQL "
                          "database with the Redis state manager and two workers")


def pytest_configure(config):
    import tests.server

    tests.server.PRODUCTION = config.getoption("--production-app")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """One production build of the app for the whole session: SQLite, local disk,
    one worker; with --production-app, PostgreSQL, Redis state and two workers."""
    from tests import server as servers

    home = tmp_path_factory.mktemp("app")
    with servers.fresh_postgres() if servers.PRODUCTION else contextlib.nullcontext() as database_url:
        production = servers.production_env(database_url) if servers.PRODUCTION else {}
        yield from _session_app(home, production)


def _session_app(home, production: dict[str, str]):
    from tests.server import AppServer

    # Small parts, so browser tests send files of a few MB in many parts.
    server = AppServer(data_dir=home / "data", log_path=home / "server.log", production=bool(production),
                       extra_env={**production,
                                  # /api/metrics is on, behind its token (the security suite checks it never leaks)
                                  "COURSE_METRICS_TOKEN": production.get("COURSE_METRICS_TOKEN",
                                                                         "metrics-" + uuid.uuid4().hex),
                                  "COURSE_UPLOAD_CHUNK_BYTES": "65536",
                                  # every browser test signs up through the page
                                  "COURSE_SIGNUP_RATE_LIMIT": "1000/hour",
                                  # the security suite's stranger calls every handler and route many
                                  # times a minute, and its socket client sends events at machine
                                  # speed; the limits are proved on an app of their own
                                  # (tests/security/test_socket_limits.py, test_low_limits.py)
                                  "COURSE_API_RATE_LIMIT": "100000/minute",
                                  # every test logs in and asks without credentials from 127.0.0.1;
                                  # the per-address limits are proved in tests/security/test_shared_limits.py
                                  "COURSE_LOGIN_IP_RATE_LIMIT": "100000/minute",
                                  "COURSE_ANONYMOUS_RATE_LIMIT": "100000/minute",
                                  "COURSE_SOCKET_EVENT_RATE_LIMIT": "100000/second",
                                  # canaries: the security tests prove these never reach a browser
                                  # (storage stays local; B2 is not used with them)
                                  "COURSE_B2_KEY_ID": "canary-b2-key-id-" + uuid.uuid4().hex,
                                  "COURSE_B2_APPLICATION_KEY": "canary-b2-application-key-" + uuid.uuid4().hex})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server_engine(app_server):
    """The running app's own database, for assertions and fault injection."""
    engine = make_engine(app_server.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(app_server):
    import httpx

    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def signed_up(client):
    """A new instructor, logged in on ``client`` (cookie set); returns (email, password)."""
    email, password = f"{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
    response = client.post("/api/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    return email, password


# Order ------------------------------------------------------------------------------------

_ORDER = ("tests/unit/", "tests/faults/", "tests/api/", "tests/security/", "tests/e2e/")


def pytest_collection_modifyitems(items):
    """Browser tests last: Playwright's sync API keeps an event loop running in the
    main thread for the rest of the session, and earlier tests use asyncio.run()."""
    def rank(item) -> int:
        path = item.nodeid
        return next((i for i, prefix in enumerate(_ORDER) if path.startswith(prefix)), len(_ORDER))

    items.sort(key=rank)
