"""Fixtures the unit tests share: committed sessions on the test database, and
storage on local disk (a temp folder) or b2sdk's simulator. A module that runs on
one backend only, or on a storage of its own, defines its own ``storage``."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import os
import uuid

import pytest
import redis
from b2sdk.v3 import B2Api, B2HttpApiConfig, InMemoryAccountInfo

import course_app.db
from course_app import rate_limits
from course_app.db import session_scope
from course_app.services import courses, processing
from course_app.settings import get_settings
from course_app.storage import set_storage_for_tests
from course_app.storage.b2 import B2Storage
from course_app.storage.local import LocalStorage
from tests.unit.storage.support import BUCKET, PART, FaithfulRawSimulator

REDIS_URL = os.environ.get("COURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def session_factory(engine):
    """What the app passes to services that commit step by step: committed sessions on the test engine."""
    return partial(session_scope, engine)


@pytest.fixture
def app_database(engine, monkeypatch):
    """Point the services' own sessions (``session_scope()``) at the test database."""
    monkeypatch.setattr(course_app.db, "get_engine", lambda: engine)
    return engine


@pytest.fixture
def chapter(session, make_user):
    """(an instructor, a chapter of their course), committed."""
    user = make_user()
    course = courses.create_course(session=session, user=user, title="Course")
    chapter = courses.add_chapter(session=session, user=user, course_id=course.id, title="Intro")
    session.commit()
    return user, chapter


@pytest.fixture
def queued():
    """Processing jobs queued (after commit), in order, instead of sent to the queue."""
    jobs: list[uuid.UUID] = []
    processing.set_enqueuer(lambda video_id, delay: jobs.append(video_id))
    yield jobs
    processing.set_enqueuer(None)


@pytest.fixture
def configured_storage(storage):
    """``get_storage()`` returns this test's ``storage`` (as the settings would choose it)."""
    set_storage_for_tests(storage)
    yield storage
    set_storage_for_tests(None)


@pytest.fixture
def b2():
    """A simulated B2 account with one private bucket."""
    api = B2Api(InMemoryAccountInfo(), api_config=B2HttpApiConfig(_raw_api_class=FaithfulRawSimulator))
    sim = api.session.raw_api
    key_id, application_key = sim.create_account()
    api.authorize_account(key_id, application_key)
    bucket = api.create_bucket(BUCKET, "allPrivate")
    return SimpleNamespace(api=api, sim=sim, bucket=bucket, application_key=application_key)


@pytest.fixture
def sleeps() -> list[float]:
    """The backoff delays B2Storage asked for (recorded, never slept)."""
    return []


@pytest.fixture
def b2_storage(b2, sleeps) -> B2Storage:
    return B2Storage(b2.api, BUCKET, part_size=PART, sleep=sleeps.append)


@pytest.fixture
def local_storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture(params=["local", "b2"])
def storage(request):
    """Every test that takes ``storage`` runs on both backends."""
    return request.getfixturevalue(f"{request.param}_storage")


# Settings and Redis (the rate limits and the socket counts) --------------------------------


@pytest.fixture
def configure(monkeypatch):
    """Set COURSE_* settings for this test; the limiter is made again from them."""

    def _configure(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"COURSE_{name.upper()}", value)
        get_settings.cache_clear()
        rate_limits.limiter.cache_clear()

    yield _configure
    monkeypatch.undo()
    get_settings.cache_clear()
    rate_limits.limiter.cache_clear()


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own in the local Redis, removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip("Redis is not running here")
    prefix = f"test-limits-{uuid.uuid4().hex}"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()
