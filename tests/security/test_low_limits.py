"""Limits that need a server of their own: bodies over the size limits refused
while they stream (413, lying Content-Length included), the rate limits of
log-in, sign-up, uploads and the API (the trash routes; 429 with Retry-After and a
JSON error), and the storage quota, which counts the bytes kept in a course trash.

One production build with small limits serves this whole module (the session's
app allows 5 GiB uploads and 1,000 sign-ups an hour). tests/api/test_upload_limits.py
already covers /api/upload's declared size, honest over-limit Content-Length,
more bytes than the limit under a modest Content-Length, chunked bodies and its
rate limit; these are the cases it does not."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import uuid

import h11
import httpx
import pytest
import sqlalchemy as sa

from course_app.api.body_limit import MAX_BODY_BYTES
from course_app.db import session_scope
from course_app.services import users
from tests.accounts import PASSWORD, create_account, logged_in_client
from tests.api.support import assert_json_error
from tests.api.test_upload_limits import form_fields, padded
from tests.api.test_videos_api import MULTIPART, multipart, new_course, nothing_stored
from tests.server import engine_of, separate_app

LIMIT = 200_000
PART = 65536
UPLOADS_PER_MINUTE = 3
PARTS_PER_MINUTE = 4
LOGINS_PER_MINUTE = 3
SIGNUPS_PER_HOUR = 2
API_PER_MINUTE = 40
QUOTA = 300_000


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """The app with small size and rate limits, in its own data and web build folders."""
    with separate_app(tmp_path_factory, "security-limits", {
        "COURSE_MAX_UPLOAD_BYTES": str(LIMIT),
        "COURSE_UPLOAD_CHUNK_BYTES": str(PART),
        "COURSE_UPLOAD_RATE_LIMIT": f"{UPLOADS_PER_MINUTE}/minute",
        "COURSE_PART_RATE_LIMIT": f"{PARTS_PER_MINUTE}/minute",
        "COURSE_LOGIN_RATE_LIMIT": f"{LOGINS_PER_MINUTE}/minute",
        "COURSE_SIGNUP_RATE_LIMIT": f"{SIGNUPS_PER_HOUR}/hour",
        "COURSE_API_RATE_LIMIT": f"{API_PER_MINUTE}/minute",
        "COURSE_QUOTA_BYTES": str(QUOTA),
    }) as server:
        yield server


@pytest.fixture(scope="module")
def limited_engine(limited):
    with engine_of(limited) as engine:
        yield engine


@pytest.fixture
def instructor(limited, limited_engine):
    """A new instructor (own rate-limit budgets) with a course and a chapter."""
    http = logged_in_client(limited.base_url, create_account(limited_engine), timeout=60)
    course_id, (chapter_id,) = new_course(http, "Intro")
    yield http, course_id, chapter_id
    http.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    from tests.media import make_video

    data = make_video(tmp_path_factory.mktemp("limits-clip") / "clip.mp4", seconds=1, seed=8).read_bytes()
    assert len(data) < PART
    return data


def _create_body(course_id: str, chapter_id: str, data: bytes, size: int | None = None) -> dict:
    return {"course_id": course_id, "chapter_id": chapter_id, "filename": "lecture.mp4",
            "size": size if size is not None else len(data), "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(),
            "head": base64.b64encode(data[:8192]).decode()}


def raw_request(server, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                *, chunked: bool = False) -> tuple[int, dict, bytes]:
    """Send exactly these headers and bytes (a lying Content-Length, a chunked body
    with no end) and read the one answer, however much of the body the server took."""
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", f"localhost:{server.port}"), *headers]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(conn.send(h11.Request(method=method, target=target, headers=headers)))
        try:
            if chunked:  # never the last chunk: only counting can stop this body
                for start in range(0, len(body), 65536):
                    sock.sendall(conn.send(h11.Data(data=body[start:start + 65536])))
            else:  # all of it, past h11's framing, whatever Content-Length said
                sock.sendall(body)
        except OSError:
            pass  # the server answered and stopped reading while we were still sending
        status, response_headers, content = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                content += bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, response_headers, content


def _cookie(http: httpx.Client) -> tuple[str, str]:
    return ("Cookie", f"cs_session={http.cookies['cs_session']}")


def _alive(server) -> None:
    assert httpx.get(f"{server.base_url}/ping", timeout=10).status_code == 200


# Oversize bodies (413), streamed ---------------------------------------------------------------


def test_a_content_length_that_claims_less_than_is_sent_stores_nothing(instructor, clip, limited, limited_engine):
    """The server reads only the declared bytes: the form is cut off, the rest
    is never taken as file data."""
    http, course_id, chapter_id = instructor
    body = multipart(form_fields(course_id, chapter_id), padded(clip, 2 * LIMIT))
    declared = 20_000

    with nothing_stored(limited, limited_engine):
        status, _, content = raw_request(limited, "POST", "/api/upload", [
            ("Content-Type", MULTIPART), ("Content-Length", str(declared)), _cookie(http)], body)

    assert status in (400, 413), content
    assert json.loads(content)["error"]
    _alive(limited)


def test_a_resumable_upload_declaring_more_than_the_limit_is_413(instructor, clip, limited, limited_engine):
    http, course_id, chapter_id = instructor

    with nothing_stored(limited, limited_engine):
        response = http.post("/api/uploads", json=_create_body(course_id, chapter_id, clip, size=LIMIT + 1))

    assert "limit" in assert_json_error(response, 413)


@pytest.fixture
def open_upload(instructor, clip):
    http, course_id, chapter_id = instructor
    data = padded(clip, PART * 2 + 100)
    response = http.post("/api/uploads", json=_create_body(course_id, chapter_id, data))
    assert response.status_code == 201, response.text
    return http, response.json(), data


def test_a_part_declaring_more_than_its_size_is_413_before_a_byte_is_stored(open_upload, limited, limited_engine):
    http, upload, data = open_upload
    body = data[:PART] + b"x" * 1000

    with nothing_stored(limited, limited_engine):
        status, _, content = raw_request(limited, "PUT", f"/api/uploads/{upload['id']}/parts/1", [
            ("Content-Length", str(len(body))), _cookie(http)], body)

    assert status == 413, content
    assert http.get(f"/api/uploads/{upload['id']}").json()["parts"] == []


def test_a_part_whose_content_length_lies_low_is_refused_and_nothing_is_stored(open_upload, limited, limited_engine):
    http, upload, data = open_upload

    with nothing_stored(limited, limited_engine):
        status, _, content = raw_request(limited, "PUT", f"/api/uploads/{upload['id']}/parts/1", [
            ("Content-Length", "1000"), _cookie(http)], data[:PART])

    assert status == 400, content
    assert http.get(f"/api/uploads/{upload['id']}").json()["parts"] == []


def test_a_chunked_part_without_a_length_is_refused(open_upload, limited, limited_engine):
    http, upload, data = open_upload

    with nothing_stored(limited, limited_engine):
        status, _, content = raw_request(limited, "PUT", f"/api/uploads/{upload['id']}/parts/1", [
            ("Transfer-Encoding", "chunked"), _cookie(http)], data[:PART] * 4, chunked=True)

    assert status in (400, 413), content
    assert http.get(f"/api/uploads/{upload['id']}").json()["parts"] == []


JSON_ROUTES = ["/api/auth/login", "/api/auth/signup", "/api/courses", "/api/uploads", "/api/tokens"]


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_a_json_body_over_the_cap_is_413_from_its_content_length(instructor, limited, limited_engine, path):
    """Without the cap FastAPI reads a JSON body whole into memory: a 1 GiB log-in
    would be held in memory (and its password hashed)."""
    http, course_id, _ = instructor
    body = json.dumps({"email": "a@example.com", "password": "p" * (2 * MAX_BODY_BYTES), "title": "t",
                       "name": "n", "course_id": course_id}).encode()

    with nothing_stored(limited, limited_engine):
        response = http.post(path, content=body, headers={"content-type": "application/json"})

    assert "too large" in assert_json_error(response, 413)


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/courses"])
def test_a_chunked_json_body_is_cut_off_at_the_cap(instructor, limited, limited_engine, path):
    """No Content-Length to judge by: the server counts and answers 413 once the
    cap is passed, while the client is still sending (the end never comes)."""
    http, _, _ = instructor
    body = b'{"email": "a@example.com", "title": "' + b"t" * (3 * MAX_BODY_BYTES)

    with nothing_stored(limited, limited_engine):
        status, _, content = raw_request(limited, "POST", path, [
            ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"), _cookie(http)], body, chunked=True)

    assert status == 413, content
    assert json.loads(content)["code"] == "too_large"
    _alive(limited)


def test_a_form_log_in_over_the_cap_is_413(limited):
    with httpx.Client(base_url=limited.base_url, timeout=60) as anonymous:
        response = anonymous.post("/api/auth/login", data={"email": "a@example.com", "password": "p" * (2 * MAX_BODY_BYTES)})
    assert_json_error(response, 413)


# Rate limits (429) -------------------------------------------------------------------------------


def assert_rate_limited(response: httpx.Response, what: str) -> None:
    assert f"Too many {what}" in assert_json_error(response, 429)
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "rate_limited" and response.json()["retryable"] is True


def test_log_in_attempts_over_the_limit_are_429_even_with_the_right_password(limited, limited_engine):
    email, other = create_account(limited_engine).email, create_account(limited_engine).email
    with httpx.Client(base_url=limited.base_url, timeout=30) as http:
        for _ in range(LOGINS_PER_MINUTE):
            assert_json_error(http.post("/api/auth/login", json={"email": email, "password": "wrong guess 123"}), 401)

        refused = http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        other_account = http.post("/api/auth/login", json={"email": other, "password": PASSWORD})

    assert_rate_limited(refused, "log-in")
    assert "cs_session" not in str(refused.headers.get_list("set-cookie"))
    assert other_account.status_code == 200  # the limit is per account (and address), not global


def test_sign_ups_over_the_limit_are_429_and_create_nothing(limited, limited_engine):
    with httpx.Client(base_url=limited.base_url, timeout=30) as http:
        for _ in range(SIGNUPS_PER_HOUR):
            response = http.post("/api/auth/signup", json={"email": f"{uuid.uuid4().hex[:10]}@example.com",
                                                           "password": PASSWORD})
            assert response.status_code == 201, response.text
        email = f"{uuid.uuid4().hex[:10]}@example.com"

        refused = http.post("/api/auth/signup", json={"email": email, "password": PASSWORD})

    assert_rate_limited(refused, "sign-up")
    with session_scope(limited_engine) as session:
        assert users.get_user_by_email(session=session, email=email) is None


def test_resumable_uploads_over_the_limit_are_429_and_share_the_budget_with_plain_uploads(
        instructor, clip, limited, limited_engine):
    http, course_id, chapter_id = instructor
    for number in range(UPLOADS_PER_MINUTE):
        data = padded(clip, len(clip) + 1000 + number)
        assert http.post("/api/uploads", json=_create_body(course_id, chapter_id, data)).status_code == 201

    with nothing_stored(limited, limited_engine):
        resumable = http.post("/api/uploads", json=_create_body(course_id, chapter_id, padded(clip, len(clip) + 5000)))
        plain = http.post("/api/upload", content=multipart(form_fields(course_id, chapter_id), clip),
                          headers={"content-type": MULTIPART})

    assert_rate_limited(resumable, "upload")
    assert_rate_limited(plain, "upload")


def test_parts_over_the_limit_are_429(open_upload, limited, limited_engine):
    http, upload, data = open_upload
    part = data[:PART]
    headers = {"X-Part-SHA1": hashlib.sha1(part).hexdigest()}
    for _ in range(PARTS_PER_MINUTE):
        assert http.put(f"/api/uploads/{upload['id']}/parts/1", content=part, headers=headers).status_code == 200

    response = http.put(f"/api/uploads/{upload['id']}/parts/2", content=data[PART:2 * PART],
                        headers={"X-Part-SHA1": hashlib.sha1(data[PART:2 * PART]).hexdigest()})

    assert_rate_limited(response, "part upload")
    assert [p["number"] for p in http.get(f"/api/uploads/{upload['id']}").json()["parts"]] == [1]


def test_trash_routes_over_the_api_limit_are_429_and_change_nothing(instructor, clip, limited, limited_engine):
    http, course_id, chapter_id = instructor
    video = http.post("/api/upload", content=multipart(form_fields(course_id, chapter_id), clip),
                      headers={"content-type": MULTIPART}).json()
    assert http.delete(f"/api/videos/{video['id']}").status_code == 204
    for _ in range(API_PER_MINUTE):
        if http.get(f"/api/courses/{course_id}/trash").status_code == 429:
            break
    else:
        pytest.fail("the API limit never refused a trash listing")

    for method, path in [("GET", f"/api/courses/{course_id}/trash"),
                         ("POST", f"/api/trash/videos/{video['id']}/restore"),
                         ("DELETE", f"/api/trash/videos/{video['id']}")]:
        assert_rate_limited(http.request(method, path), "API")
    with limited_engine.connect() as conn:
        row = conn.execute(sa.text("SELECT deleted_at FROM videos WHERE id = :id"),
                           {"id": video["id"].replace("-", "")}).one()
    assert row.deleted_at is not None  # still in the trash, neither restored nor purged


def test_trashed_bytes_count_toward_the_quota_until_deleted_for_good(instructor, clip, limited, limited_engine):
    """The trash keeps the file, so its bytes stay counted; deleting it forever frees them."""
    http, course_id, chapter_id = instructor
    big = padded(clip, QUOTA * 2 // 3)
    video = http.post("/api/upload", content=multipart(form_fields(course_id, chapter_id), big),
                      headers={"content-type": MULTIPART})
    assert video.status_code == 201, video.text
    assert http.delete(f"/api/videos/{video.json()['id']}").status_code == 204
    assert http.get(f"/api/courses/{course_id}/trash").json()["trashed_bytes"] == len(big)
    second = padded(clip, QUOTA // 2)

    refused = http.post("/api/uploads", json=_create_body(course_id, chapter_id, second))
    assert "storage is left" in assert_json_error(refused, 413) and refused.json()["code"] == "quota_exceeded"

    assert http.delete(f"/api/trash/videos/{video.json()['id']}").status_code == 204
    assert http.post("/api/uploads", json=_create_body(course_id, chapter_id, second)).status_code == 201
