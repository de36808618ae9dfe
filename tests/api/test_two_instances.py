"""Two app instances (`course-app serve`, two workers each) over one PostgreSQL
database, one Redis and one storage folder, behind a proxy that sends each request
to the other instance in turn: a resumable upload whose parts alternate between
them completes with the right SHA1; a log-in made on one is recognised by the
other; the background upkeep runs in one process of the four, and moves to the
other instance when that one stops."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from contextlib import closing

import httpx
import pytest

from tests.accounts import create_account, logged_in_client
from tests.api.test_upload_sessions_api import create_body, send, video_bytes
from tests.api.test_videos_api import new_course
from tests.conftest import _pg_available
from tests.polling import wait_for
from tests.proxy import AlternatingProxy
from tests.server import (
    AppServer, engine_of, fresh_postgres, production_env, redis_available, start_together, wait_processed,
)


def upkeep_rounds(server: AppServer) -> Counter[int]:
    """Upkeep rounds per process id, from the instance's JSON log."""
    rounds: Counter[int] = Counter()
    for line in server.log_path.read_text(errors="replace").splitlines():
        if '"upkeep round"' in line and line.startswith("{"):
            rounds[json.loads(line)["pid"]] += 1
    return rounds


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    if not (_pg_available() and redis_available()):
        if os.environ.get("CI"):
            pytest.fail("two instances need PostgreSQL and Redis")
        pytest.skip("PostgreSQL or Redis is not running here")
    home = tmp_path_factory.mktemp("two-instances")
    with fresh_postgres() as database_url:
        shared = {**production_env(database_url), "COURSE_STORAGE_DIR": str(home / "storage"),
                  "COURSE_UPLOAD_CHUNK_BYTES": "65536", "COURSE_UPKEEP_INTERVAL_SECONDS": "0.5"}
        servers = [AppServer(data_dir=home / name / "data", log_path=home / name / "server.log", production=True,
                             extra_env={**shared, "REFLEX_WEB_WORKDIR": str(home / name / "web")})
                   for name in ("one", "two")]
        start_together(servers)
        try:
            proxy = AlternatingProxy([s.base_url.replace("localhost", "127.0.0.1") for s in servers]).start()
            try:
                yield servers, proxy
            finally:
                proxy.stop()
        finally:
            for server in servers:
                server.stop()


def test_an_upload_whose_parts_alternate_instances_completes_whole(instances):
    servers, proxy = instances
    with engine_of(servers[0]) as engine:
        with closing(logged_in_client(proxy.base_url, create_account(engine), timeout=60)) as http:
            course_id, (chapter_id,) = new_course(http, "Alternating")
            data = video_bytes(65536 * 5 + 123, seed=11)
            upload = http.post("/api/uploads", json=create_body(course_id, chapter_id, data))
            assert upload.status_code == 201, upload.text
            hits_before = dict(proxy.hits)
            for number in range(1, upload.json()["part_count"] + 1):
                response = send(http, upload.json(), data, number)
                assert response.status_code == 200, response.text
            parts_per_instance = {b: proxy.hits[b] - hits_before.get(b, 0) for b in proxy.backends}
            assert all(count >= 2 for count in parts_per_instance.values()), parts_per_instance
            done = http.post(f"/api/uploads/{upload.json()['id']}/complete",
                             json={"sha1": hashlib.sha1(data).hexdigest()})
            assert done.status_code == 200, done.text
            video = done.json()
            assert video["sha1"] == hashlib.sha1(data).hexdigest() and video["size_bytes"] == len(data)
            assert wait_processed(engine, [video["id"]], timeout=120) == {video["id"]: "ready"}
            for _ in range(2):  # the stored bytes, from each instance in turn
                assert hashlib.sha1(http.get(video["video_url"]).content).hexdigest() == video["sha1"]


def test_a_log_in_on_one_instance_is_recognised_by_the_other(instances):
    servers, _ = instances
    with engine_of(servers[0]) as engine:
        account = create_account(engine)
    with closing(logged_in_client(servers[0].base_url, account)) as one:
        cookie = one.cookies["cs_session"]
    with httpx.Client(base_url=servers[1].base_url, timeout=30, cookies={"cs_session": cookie}) as two:
        me = two.get("/api/auth/me")
        assert me.status_code == 200, me.text
        assert me.json()["email"] == account.email
        assert two.post("/api/auth/logout", headers={"Accept": "application/json"}).status_code == 204
    with httpx.Client(base_url=servers[0].base_url, timeout=30, cookies={"cs_session": cookie}) as one_again:
        assert one_again.get("/api/auth/me").status_code == 401  # the log-out on the other counts here too


def test_upkeep_runs_in_one_process_of_all_and_moves_when_it_stops(instances):
    servers, _ = instances
    wait_for(lambda: sum((upkeep_rounds(servers[0]) + upkeep_rounds(servers[1])).values()) >= 8,
             "eight upkeep rounds", timeout=60, interval=0.2)
    per_instance = [upkeep_rounds(server) for server in servers]
    doers = [(i, pid) for i, rounds in enumerate(per_instance) for pid in rounds]
    assert len(doers) == 1, f"upkeep ran in more than one process: {per_instance}"
    leader = doers[0][0]
    other = servers[1 - leader]
    before = upkeep_rounds(other)
    assert not before
    servers[leader].stop()  # the holder lets the lock go as it stops; else its Redis key expires
    wait_for(lambda: sum(upkeep_rounds(other).values()) >= 3, "the other instance taking over the upkeep",
             timeout=60, interval=0.2)
    assert len(upkeep_rounds(other)) == 1  # one process of the two there
