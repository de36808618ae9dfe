"""The operations doors on the running app: /api/health, the request id on every
answer, /api/metrics behind its token (counting a real resumable upload), and, with
JSON logs (--production-app), one JSON line per request in the server's log."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid

import pytest

from tests.api.test_upload_sessions_api import create_body, send, video_bytes
from tests.api.test_videos_api import new_course
from tests.polling import wait_for


def metric(text: str, name: str, **labels) -> float:
    """The sample ``name{labels}`` of a Prometheus exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
            if found == wanted:
                return float(match.group(3))
    return 0.0


def test_health_answers_each_check_ok_with_its_latency(client, app_server):
    response = client.get("/api/health")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    expected = ["database", "storage", "redis", "queue"] if app_server.env.get("COURSE_REDIS_URL") else \
        ["database", "storage", "queue"]
    assert list(checks) == expected
    assert all(c["ok"] and c["ms"] >= 0 for c in checks.values()), checks
    for secret in (app_server.env["COURSE_DATABASE_URL"], app_server.env["COURSE_SECRET_KEY"], str(app_server.data_dir)):
        assert secret not in response.text


def test_every_answer_carries_a_request_id(client):
    assert client.get("/api/health", headers={"X-Request-ID": "lb-check-1"}).headers["x-request-id"] == "lb-check-1"
    for path in ("/api/auth/me", "/login", "/ping", "/api/nothing"):
        made = client.get(path, headers={"X-Request-ID": "not a sane id"}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), (path, made)


def test_metrics_need_their_token_and_count_a_resumable_upload(client, app_server, make_account, login_as):
    token = app_server.env["COURSE_METRICS_TOKEN"]
    assert client.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", headers={"Authorization": "Bearer wrong-token-but-long-enough"}).status_code == 401

    def scrape() -> str:
        response = client.get("/api/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        return response.text

    before = scrape()
    owner = login_as(make_account())
    course_id, (chapter_id,) = new_course(owner, "Counted")
    data = video_bytes(65536 * 2 + 500, seed=7)
    upload = owner.post("/api/uploads", json=create_body(course_id, chapter_id, data)).json()
    for number in (1, 2, 3):
        assert send(owner, upload, data, number).status_code == 200
    done = owner.post(f"/api/uploads/{upload['id']}/complete", json={"sha1": hashlib.sha1(data).hexdigest()})
    assert done.status_code == 200, done.text
    after = scrape()

    # Counters are summed over every worker of the app (multiprocess mode under `serve`).
    assert metric(after, "course_upload_bytes_total") - metric(before, "course_upload_bytes_total") == len(data)
    assert metric(after, "course_uploads_completed_total") - metric(before, "course_uploads_completed_total") == 1
    route = "/api/uploads/{upload_id}/parts/{number}"
    assert metric(after, "course_http_requests_total", method="PUT", route=route, status="200") - \
        metric(before, "course_http_requests_total", method="PUT", route=route, status="200") == 3
    assert "course_queue_depth " in after and "course_outbox_backlog " in after
    assert upload["id"] not in after  # route templates, never raw paths


def test_json_logs_have_one_line_per_request(client, app_server):
    if not app_server.env.get("COURSE_LOG_FORMAT") == "json":
        pytest.skip("the default test app logs text; --production-app turns JSON logs on")
    request_id = "logcheck-" + uuid.uuid4().hex

    def logged() -> list[dict]:  # the worker writes its line just after the answer has gone
        return [json.loads(line) for line in app_server.log_path.read_text(errors="replace").splitlines()
                if request_id in line and line.startswith("{")]

    client.get("/api/auth/me", headers={"X-Request-ID": request_id})
    wait_for(logged, "the request's JSON log line",
             until=lambda lines: any(line.get("message") == "request" for line in lines))
    time.sleep(0.5)  # a second line for the same request, if one were written, comes as soon
    lines = logged()
    requests = [line for line in lines if line.get("message") == "request"]
    assert len(requests) == 1, lines
    assert {k: requests[0][k] for k in ("method", "path", "status")} == {"method": "GET", "path": "/api/auth/me",
                                                                        "status": 401}
