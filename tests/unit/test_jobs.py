"""course_app/jobs.py: the queue is a SQLite file in the data folder by default and
Redis by setting; a message goes through either and comes back as the same task."""

from __future__ import annotations

import os
import uuid

import pytest
from huey import RedisHuey, SqliteHuey

from course_app import jobs
from course_app.settings import Settings


def _round_trip(queue) -> None:
    @queue.task(name=f"add-{uuid.uuid4().hex}")
    def add(a: int, b: int) -> int:
        return a + b

    add(2, 3)
    assert queue.pending_count() == 1
    assert queue.execute(queue.dequeue()) == 5
    assert queue.pending_count() == 0


def test_the_default_queue_is_a_sqlite_file_in_the_data_folder(tmp_path):
    queue = jobs.make_queue(Settings(data_dir=tmp_path))

    assert isinstance(queue, SqliteHuey)
    _round_trip(queue)
    assert (tmp_path / "queue.db").is_file()


def test_a_redis_url_gives_a_redis_queue(tmp_path):
    import redis

    url = os.environ.get("COURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {url}")
        pytest.skip("Redis is not running here")
    queue = jobs.make_queue(Settings(data_dir=tmp_path, queue_url=url))
    queue.flush()

    assert isinstance(queue, RedisHuey)
    _round_trip(queue)
    assert not (tmp_path / "queue.db").exists()


def test_a_queue_url_that_is_not_redis_is_refused():
    with pytest.raises(ValueError, match="redis://"):
        Settings(queue_url="amqp://localhost")
