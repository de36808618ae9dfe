"""course_app/api/upload_sessions.py through HTTP against the running app: the
resumable upload life cycle, idempotent parts, and every refusal."""

from __future__ import annotations

import base64
import functools
import hashlib
import random
import socket
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.api.support import assert_json_error
from tests.api.test_videos_api import EVIL, new_course, nothing_stored
from tests.cli import check_videos
from tests.media import make_video
from tests.server import wait_processed
from tests.stored import stored_files



@functools.cache
def _clip(seed: int) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return make_video(Path(folder) / "clip.mp4", seconds=1, seed=seed).read_bytes()


def video_bytes(size: int, seed: int = 1) -> bytes:
    """A real little video (so processing makes it ready) padded with random bytes to ``size``."""
    clip = _clip(seed)
    return (clip + random.Random(seed).randbytes(max(0, size - len(clip))))[:size]


def create_body(course_id: str, chapter_id: str, data: bytes, **overrides) -> dict:
    body = {
        "course_id": course_id, "chapter_id": chapter_id, "filename": "lecture.mp4", "size": len(data),
        "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(), "head": base64.b64encode(data[:8192]).decode(),
    }
    return {**body, **overrides}


def part(data: bytes, upload: dict, number: int) -> bytes:
    return data[(number - 1) * upload["chunk_size"]: number * upload["chunk_size"]]


def send(http, upload: dict, data: bytes, number: int, *, sha1: bool = True, **headers):
    chunk = part(data, upload, number)
    if sha1:
        headers["X-Part-SHA1"] = hashlib.sha1(chunk).hexdigest()
    return http.put(f"/api/uploads/{upload['id']}/parts/{number}", content=chunk, headers=headers)


@pytest.fixture
def owner(owner):
    """Only the owner's client: these tests never need the account."""
    return owner[1]


@pytest.fixture
def course(owner):
    course_id, (chapter_id, other_chapter) = new_course(owner, "Parts", "Other")
    return course_id, chapter_id, other_chapter


@pytest.fixture
def data() -> bytes:
    return video_bytes(65536 * 3 + 1000)  # four parts at the test server's 64 KiB part size


@pytest.fixture
def upload(owner, course, data) -> dict:
    response = owner.post("/api/uploads", json=create_body(course[0], course[1], data))
    assert response.status_code == 201, response.text
    return response.json()


def uploads_table(engine, upload_id: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM upload_sessions WHERE id = :id"),
                                 {"id": uuid.UUID(upload_id).hex}).mappings().one())


def test_life_cycle_out_of_order_then_complete(owner, course, data, upload, server_engine, app_server):
    assert upload["part_count"] == 4 and upload["missing_parts"] == [1, 2, 3, 4] and upload["status"] == "active"
    for number in (4, 2, 1, 3):
        response = send(owner, upload, data, number)
        assert response.status_code == 200, response.text
        assert response.json()["sha1"] == hashlib.sha1(part(data, upload, number)).hexdigest()
    status = owner.get(f"/api/uploads/{upload['id']}").json()
    assert status["missing_parts"] == [] and status["confirmed_bytes"] == len(data)

    listed = owner.get("/api/uploads", params={"course_id": course[0]}).json()
    assert [u["id"] for u in listed] == [upload["id"]]

    response = owner.post(f"/api/uploads/{upload['id']}/complete", json={"sha1": hashlib.sha1(data).hexdigest()})
    assert response.status_code == 200, response.text
    video = response.json()
    assert video["status"] == "processing" and video["size_bytes"] == len(data)
    assert video["sha1"] == hashlib.sha1(data).hexdigest()
    assert wait_processed(server_engine, [video["id"]]) == {video["id"]: "ready"}
    assert owner.get(video["video_url"]).content == data
    again = owner.post(f"/api/uploads/{upload['id']}/complete")
    assert again.status_code == 200 and again.json()["id"] == video["id"]
    assert owner.get("/api/uploads", params={"course_id": course[0]}).json() == []
    assert uploads_table(server_engine, upload["id"])["status"] == "completed"
    assert check_videos(app_server.env)["ok"]


def test_resending_a_confirmed_part_is_harmless(owner, upload, data):
    first = send(owner, upload, data, 1)
    second = send(owner, upload, data, 1)
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    assert owner.get(f"/api/uploads/{upload['id']}").json()["missing_parts"] == [2, 3, 4]


def test_the_same_file_again_resumes_the_open_upload(owner, course, data, upload):
    send(owner, upload, data, 2)
    response = owner.post("/api/uploads", json=create_body(course[0], course[1], data))
    assert response.status_code == 200, response.text
    resumed = response.json()
    assert resumed["id"] == upload["id"] and resumed["missing_parts"] == [1, 3, 4]


def test_a_damaged_part_is_refused_and_not_recorded(owner, upload, data):
    chunk = part(data, upload, 1)
    response = owner.put(f"/api/uploads/{upload['id']}/parts/1", content=chunk,
                         headers={"X-Part-SHA1": hashlib.sha1(chunk[:-1] + b"x").hexdigest()})
    assert_json_error(response, 400)
    assert response.json()["code"] == "checksum_mismatch" and response.json()["retryable"] is True
    assert owner.get(f"/api/uploads/{upload['id']}").json()["parts"] == []


@pytest.mark.parametrize("number, size_change, status", [(0, 0, 400), (5, 0, 400), (1, 1, 413), (1, -1, 400), (4, 5, 413)])
def test_out_of_range_and_wrong_size_parts_are_refused(owner, upload, data, number, size_change, status):
    chunk = part(data, upload, min(max(number, 1), 4))
    body = chunk + b"x" * size_change if size_change > 0 else chunk[: len(chunk) + size_change]
    response = owner.put(f"/api/uploads/{upload['id']}/parts/{number}", content=body)
    assert_json_error(response, status)
    assert owner.get(f"/api/uploads/{upload['id']}").json()["parts"] == []


def test_complete_with_missing_parts_is_409_and_names_them(owner, upload, data):
    send(owner, upload, data, 1)
    response = owner.post(f"/api/uploads/{upload['id']}/complete")
    assert_json_error(response, 409)
    assert response.json()["code"] == "missing_parts" and response.json()["missing_parts"] == [2, 3, 4]


def test_abort_leaves_nothing_stored(owner, course, data, app_server, server_engine):
    with nothing_stored(app_server, server_engine):
        created = owner.post("/api/uploads", json=create_body(course[0], course[1], data)).json()
        send(owner, created, data, 1)
        assert owner.delete(f"/api/uploads/{created['id']}").status_code == 204
    row = uploads_table(server_engine, created["id"])
    assert row["status"] == "aborted"
    assert not any(row["storage_upload_id"] in path for path in stored_files(app_server))
    assert_json_error(send(owner, created, data, 2), 409)


@pytest.mark.parametrize("change, status, code", [
    ({"head": base64.b64encode(b"MZ\x90\x00" + bytes(300)).decode()}, 415, "not_a_video"),
    ({"head": base64.b64encode(b"<html><script>alert(1)</script>").decode()}, 415, "not_a_video"),
    ({"head": "%%% not base64"}, 400, "invalid_input"),
    ({"size": 0}, 422, "invalid_input"),
    ({"size": 6 * 1024**3}, 413, "too_large"),
    ({"fingerprint": ""}, 422, "invalid_input"),
    ({"sha1": "xyz"}, 400, "invalid_input"),
    ({"chapter_id": "not-an-id"}, 400, "invalid_input"),
])
def test_create_refusals_store_nothing(owner, course, data, app_server, server_engine, change, status, code):
    with nothing_stored(app_server, server_engine):
        response = owner.post("/api/uploads", json={**create_body(course[0], course[1], data), **change})
    assert_json_error(response, status)
    assert response.json()["code"] == code


def test_a_chapter_of_another_course_is_refused(owner, course, data, app_server, server_engine):
    _, (foreign_chapter,) = new_course(owner, "Elsewhere", title="Second course")
    with nothing_stored(app_server, server_engine):
        response = owner.post("/api/uploads", json=create_body(course[0], foreign_chapter, data))
    assert_json_error(response, 400)


def test_strangers_and_anonymous_users_are_refused_everywhere(owner, stranger, new_client, course, data, upload,
                                                              app_server, server_engine):
    anonymous = new_client()
    with nothing_stored(app_server, server_engine):
        assert_json_error(stranger.post("/api/uploads", json=create_body(course[0], course[1], data)), 403)
        assert_json_error(anonymous.post("/api/uploads", json=create_body(course[0], course[1], data)), 401)
        for client, status in ((stranger, 403), (anonymous, 401)):
            assert_json_error(client.get(f"/api/uploads/{upload['id']}"), status)
            assert_json_error(send(client, upload, data, 1), status)
            assert_json_error(client.post(f"/api/uploads/{upload['id']}/complete"), status)
            assert_json_error(client.delete(f"/api/uploads/{upload['id']}"), status)
        assert_json_error(stranger.get("/api/uploads", params={"course_id": course[0]}), 403)
        assert_json_error(anonymous.get("/api/uploads", params={"course_id": course[0]}), 401)
    assert owner.get(f"/api/uploads/{upload['id']}").json()["status"] == "active"


def _answer(sock) -> tuple[int, bytes]:
    """One HTTP/1.1 answer read off a raw socket: its status and body."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), body


def test_a_refused_part_leaves_the_connection_usable(app_server, upload, data):
    """The refusal goes out before the part is read; the part is read and dropped
    first, so the same connection takes the next request (else the server closes
    it, and a client reusing it meets a closed socket)."""
    chunk = part(data, upload, 1)
    with socket.create_connection(("127.0.0.1", app_server.port), timeout=20) as sock:
        sock.sendall(f"PUT /api/uploads/{upload['id']}/parts/1 HTTP/1.1\r\nHost: localhost\r\n"
                     f"Content-Length: {len(chunk)}\r\n\r\n".encode() + chunk)
        assert _answer(sock)[0] == 401
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert _answer(sock)[0] == 200


def test_a_cross_site_request_with_the_cookie_is_refused(owner, course, data, app_server, server_engine):
    with nothing_stored(app_server, server_engine):
        response = owner.post("/api/uploads", json=create_body(course[0], course[1], data), headers={"Origin": EVIL})
    assert_json_error(response, 403)


def test_unknown_or_malformed_upload_ids(owner):
    assert_json_error(owner.get(f"/api/uploads/{uuid.uuid4()}"), 404)
    assert_json_error(owner.get("/api/uploads/not-a-uuid"), 400)
    assert_json_error(owner.put("/api/uploads/not-a-uuid/parts/1", content=b"x"), 400)
