"""The operations doors, in process: /api/health (each check with its latency, 503
naming only the kind of a failure, rate limited per address), /api/metrics (absent
without a token, bearer-only with one), the request id and JSON request line around
every request, and the counts the metrics keep."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from course_app import logs, metrics, rate_limits
from course_app.api import build_api, health
from course_app.api.request_log import route_name, with_request_log
from course_app.settings import Settings

TOKEN = "metrics-token-" + "x" * 20


def call(app, method: str, url: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def settings(monkeypatch, tmp_path):
    """The settings the routes read, changeable per test; a fresh rate limiter."""
    current = {"value": Settings(data_dir=tmp_path)}

    def use(**changes) -> Settings:
        current["value"] = Settings(data_dir=tmp_path, **changes)
        return current["value"]

    for module in ("course_app.api.health", "course_app.api.metrics_route", "course_app.api.request_log"):
        monkeypatch.setattr(f"{module}.get_settings", lambda: current["value"])
    rate_limits.limiter.cache_clear()
    yield use
    rate_limits.limiter.cache_clear()


@pytest.fixture
def app(app_database, settings):
    return build_api()


# /api/health -------------------------------------------------------------------------


def test_health_reports_each_check_with_its_latency(app):
    response = call(app, "GET", "/api/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert list(body["checks"]) == ["database", "storage", "queue"]  # no Redis configured
    for check in body["checks"].values():
        assert check["ok"] is True and isinstance(check["ms"], float) and check["ms"] >= 0
    assert response.headers["cache-control"] == "no-store"


def test_health_checks_redis_when_configured(app, settings):
    settings(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    response = call(app, "GET", "/api/health")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == {"ok": False, "error": "ConnectionError",
                                                  "ms": response.json()["checks"]["redis"]["ms"]}
    assert "127.0.0.1:1" not in response.text


def test_a_failed_check_gives_503_and_only_the_kind_of_error(app, monkeypatch):
    def broken() -> None:
        raise OperationalError("SELECT 1", {}, Exception("could not connect to db.secret-host.example password=hunter2"))

    monkeypatch.setattr(health, "check_database", broken)
    response = call(app, "GET", "/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"]["ok"] is False and body["checks"]["database"]["error"] == "OperationalError"
    assert body["checks"]["storage"]["ok"] is True
    assert "secret-host" not in response.text and "hunter2" not in response.text


def test_a_check_that_hangs_times_out(app, monkeypatch):
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(health, "check_queue", lambda: time.sleep(2))
    response = call(app, "GET", "/api/health")
    assert response.status_code == 503
    assert response.json()["checks"]["queue"]["error"] == "timeout"
    assert response.json()["checks"]["queue"]["ms"] < 1500  # answered at the timeout, not when it woke


def test_a_missing_storage_folder_fails_the_storage_check(app, monkeypatch, tmp_path):
    from course_app.storage import set_storage_for_tests
    from course_app.storage.local import LocalStorage

    storage = LocalStorage(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    set_storage_for_tests(storage)
    try:
        response = call(app, "GET", "/api/health")
    finally:
        set_storage_for_tests(None)
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["ok"] is False


def test_health_is_rate_limited_per_address(app, settings):
    settings(api_rate_limit="3/minute")
    answers = [call(app, "GET", "/api/health").status_code for _ in range(5)]
    assert answers[:3] == [200, 200, 200]
    assert answers[3:] == [429, 429]


# /api/metrics ------------------------------------------------------------------------


def test_no_metrics_route_without_a_token(app):
    assert call(app, "GET", "/api/metrics").status_code == 404
    assert call(app, "GET", "/api/metrics", headers={"Authorization": "Bearer anything-at-all-here"}).status_code == 404


def test_metrics_need_the_bearer_token(app, settings):
    settings(metrics_token=TOKEN)
    assert call(app, "GET", "/api/metrics").status_code == 401
    assert call(app, "GET", "/api/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    assert call(app, "GET", "/api/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    response = call(app, "GET", "/api/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in ("course_queue_depth", "course_outbox_backlog", "course_upload_bytes_total",
                 "course_uploads_completed_total"):
        assert f"\n{name} " in response.text or response.text.startswith(f"{name} "), name


def test_the_outbox_backlog_counts_pending_deletions(app, settings, session):
    from course_app.services.outbox import enqueue_storage_deletion

    settings(metrics_token=TOKEN)
    for number in range(3):
        enqueue_storage_deletion(session=session, storage_key=f"videos/1/{number}.mp4", file_id=None, reason="test")
    session.commit()
    text = call(app, "GET", "/api/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "\ncourse_outbox_backlog 3.0\n" in text


# The request id, the request line and the counts -------------------------------------------


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def observed(settings):
    """A small API behind the request middleware, with JSON request lines."""
    settings(log_format="json")
    inner = FastAPI()

    @inner.put("/api/uploads/{upload_id}/parts/{number}")
    async def part(upload_id: str, number: int, request: Request):
        return {"size": len(await request.body())}

    @inner.get("/api/boom")
    async def boom():
        raise RuntimeError("boom")

    yield with_request_log(inner)
    logging.getLogger("course_app").handlers.clear()


def test_a_sane_request_id_is_echoed_and_a_bad_one_replaced(observed):
    assert call(observed, "PUT", "/api/uploads/u1/parts/1",
                headers={"X-Request-ID": "edge-42.a_b:c"}).headers["x-request-id"] == "edge-42.a_b:c"
    for bad in ("has space", "x" * 129, "<script>", ""):
        made = call(observed, "PUT", "/api/uploads/u1/parts/1", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert made != bad and len(made) == 32
    first = call(observed, "PUT", "/api/uploads/u1/parts/1").headers["x-request-id"]
    assert first != call(observed, "PUT", "/api/uploads/u1/parts/1").headers["x-request-id"]


def test_each_request_is_one_json_line(observed, capsys):
    call(observed, "PUT", "/api/uploads/u1/parts/7", content=b"x" * 10, headers={"X-Request-ID": "req-1"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["message"] == "request"]
    assert len(requests) == 1
    line = requests[0]
    assert {k: line[k] for k in ("method", "path", "route", "status", "request_id", "level", "logger")} == {
        "method": "PUT", "path": "/api/uploads/u1/parts/7", "route": "/api/uploads/{upload_id}/parts/{number}",
        "status": 200, "request_id": "req-1", "level": "info", "logger": "course_app.access"}
    assert isinstance(line["ms"], float)


def test_requests_are_counted_by_route_template_and_upload_bytes_added(observed):
    route = "/api/uploads/{upload_id}/parts/{number}"
    before = sample("course_http_requests_total", method="PUT", route=route, status="200")
    bytes_before = sample("course_upload_bytes_total")
    call(observed, "PUT", "/api/uploads/a/parts/1", content=b"x" * 1000)
    call(observed, "PUT", "/api/uploads/b/parts/2", content=b"x" * 500)
    assert sample("course_http_requests_total", method="PUT", route=route, status="200") == before + 2
    assert sample("course_upload_bytes_total") == bytes_before + 1500


def test_a_server_error_is_a_failure(observed):
    before = sample("course_failures_total", kind="request")
    with pytest.raises(RuntimeError):
        call(observed, "GET", "/api/boom")
    assert sample("course_failures_total", kind="request") == before + 1


def test_completed_uploads_are_counted():
    before = sample("course_uploads_completed_total")
    metrics.observe_request(method="POST", route="/api/uploads/{upload_id}/complete", status=200, seconds=0.1,
                            body_bytes=0)
    metrics.observe_request(method="POST", route="/api/upload", status=201, seconds=0.1, body_bytes=10)
    metrics.observe_request(method="POST", route="/api/upload", status=413, seconds=0.1, body_bytes=10)
    assert sample("course_uploads_completed_total") == before + 2


@pytest.mark.parametrize("path, name", [("/_event/", "/_event"), ("/ping", "/ping"), ("/_upload", "/_upload"),
                                        ("/api/nothing/here", "/api (no route)"), ("/courses/abc", "pages"),
                                        ("/assets/x.js", "pages")])
def test_paths_without_an_api_route_get_a_fixed_name(path, name):
    assert route_name({"path": path}) == name


def test_json_log_records_carry_the_request_id_and_the_exception():
    import sys

    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.getLogger("course_app.x").makeRecord(
            "course_app.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    token = logs.request_id.set("rid-9")
    try:
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.request_id.reset(token)
    assert (line["message"], line["level"], line["request_id"]) == ("failed here", "error", "rid-9")
    assert "ValueError: bad" in line["exception"]


def test_workers_counts_are_summed_in_multiprocess_mode(tmp_path):
    """Under `serve` each worker writes its counters to the instance's folder; a
    scrape answered by any one of them sums them all."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = ("import sys; from course_app import metrics; "
             "metrics.observe_request(method='PUT', route='/api/upload', status=201, seconds=0.1, "
             "body_bytes=int(sys.argv[1]))")
    for size in ("1000", "234"):
        subprocess.run([sys.executable, "-c", count, size], env=env, check=True, timeout=60)
    scrape = subprocess.run([sys.executable, "-c", "from course_app import metrics; "
                             "print(metrics.exposition().decode())"], env=env, check=True, timeout=60,
                            capture_output=True, text=True).stdout
    assert "\ncourse_upload_bytes_total 1234.0\n" in scrape
    assert 'course_http_requests_total{method="PUT",route="/api/upload",status="201"} 2.0' in scrape
