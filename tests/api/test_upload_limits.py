"""The upload size limit (413) and upload rate limit (429) of course_app/api/videos.py,
against a second production build started with small limits for this module."""

from __future__ import annotations

import json
import os
import socket

import h11
import httpx
import pytest

from course_app.api.videos import FORM_OVERHEAD
from tests.accounts import create_account, logged_in_client
from tests.api.support import assert_json_error
from tests.api.test_videos_api import MULTIPART, multipart, new_course, nothing_stored, upload
from tests.cli import check_videos
from tests.media import make_video
from tests.server import engine_of, separate_app, wait_processed
from tests.stored import stored_files

LIMIT = 200_000
UPLOADS_PER_MINUTE = 3


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """The app with a 200,000-byte upload limit and 3 uploads a minute, in its own
    data folder and web build folder (so it never clashes with the session's app)."""
    with separate_app(tmp_path_factory, "small-limits", {
        "COURSE_MAX_UPLOAD_BYTES": str(LIMIT),
        "COURSE_UPLOAD_RATE_LIMIT": f"{UPLOADS_PER_MINUTE}/minute",
    }) as server:
        yield server


@pytest.fixture(scope="module")
def small_engine(small_server):
    with engine_of(small_server) as engine:
        yield engine


@pytest.fixture
def make_instructor(small_server, small_engine):
    """New instructors on the small server, logged in, each with a course and a
    chapter: (client, course id, chapter id). Each has its own upload budget."""
    clients: list[httpx.Client] = []

    def _make() -> tuple[httpx.Client, str, str]:
        http = logged_in_client(small_server.base_url, create_account(small_engine))
        clients.append(http)
        course_id, (chapter_id,) = new_course(http, "Intro")
        return http, course_id, chapter_id

    yield _make
    for http in clients:
        http.close()


@pytest.fixture
def instructor(make_instructor):
    return make_instructor()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    data = make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1, seed=5).read_bytes()
    assert len(data) < LIMIT // 2
    return data


def padded(clip: bytes, size: int) -> bytes:
    """A file of exactly ``size`` bytes that starts like a video."""
    return clip + os.urandom(size - len(clip))


def form_fields(course_id: str, chapter_id: str, **extra: str) -> list[tuple[str, str]]:
    return [("course_id", course_id), ("chapter_id", chapter_id), *extra.items()]


def test_a_file_of_exactly_the_limit_is_accepted(instructor, clip, small_server, small_engine):
    http, course_id, chapter_id = instructor
    data = padded(clip, LIMIT)

    response = upload(http, course_id, chapter_id, data, size=LIMIT)

    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == LIMIT
    assert wait_processed(small_engine, [response.json()["id"]]) == {response.json()["id"]: "ready"}
    assert http.get(response.json()["video_url"]).content == data


def test_a_declared_size_over_the_limit_is_413_and_stores_nothing(instructor, clip, small_server, small_engine):
    http, course_id, chapter_id = instructor

    with nothing_stored(small_server, small_engine):
        response = upload(http, course_id, chapter_id, clip, size=LIMIT + 1)

    assert "limit" in assert_json_error(response, 413)
    assert response.json()["code"] == "too_large"


def send_head_only(server, cookie: str, body: bytes, sent: int) -> tuple[h11.Response, bytes]:
    """POST /api/upload announcing ``len(body)`` bytes but sending only the first
    ``sent``; the answer can only come from the headers."""
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(conn.send(h11.Request(method="POST", target="/api/upload", headers=[
            ("Host", f"localhost:{server.port}"), ("Content-Type", MULTIPART), ("Content-Length", str(len(body))),
            ("Cookie", f"cs_session={cookie}"),
        ])) + conn.send(h11.Data(data=body[:sent])))
        response, content = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                content += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return response, content


def test_a_content_length_over_the_limit_is_413_before_the_body_is_read(instructor, clip, small_server, small_engine):
    http, course_id, chapter_id = instructor
    body = multipart(form_fields(course_id, chapter_id), padded(clip, LIMIT + FORM_OVERHEAD + 1))

    with nothing_stored(small_server, small_engine):
        response, content = send_head_only(small_server, http.cookies["cs_session"], body, sent=20_000)

    assert response.status_code == 413
    error = json.loads(content)
    assert error["code"] == "too_large" and "limit" in error["error"]


def test_a_content_length_over_the_limit_is_413_when_the_whole_body_is_sent(instructor, clip, small_server, small_engine):
    http, course_id, chapter_id = instructor
    body = multipart(form_fields(course_id, chapter_id), padded(clip, LIMIT + FORM_OVERHEAD + 1))

    with nothing_stored(small_server, small_engine):
        response = http.post("/api/upload", content=body, headers={"content-type": MULTIPART})

    assert int(response.request.headers["content-length"]) == len(body)
    assert_json_error(response, 413)


def test_more_bytes_than_the_limit_under_a_modest_content_length_is_413(instructor, clip, small_server, small_engine):
    http, course_id, chapter_id = instructor
    body = multipart(form_fields(course_id, chapter_id), padded(clip, LIMIT + 1))
    assert len(body) < LIMIT + FORM_OVERHEAD  # passes the header check; only counting the bytes catches it

    with nothing_stored(small_server, small_engine):
        response = http.post("/api/upload", content=body, headers={"content-type": MULTIPART})

    assert_json_error(response, 413)


def test_a_chunked_upload_without_content_length_is_stopped_at_the_limit(instructor, clip, small_server, small_engine):
    http, course_id, chapter_id = instructor
    body = multipart(form_fields(course_id, chapter_id), padded(clip, 5 * LIMIT))

    def chunks():
        for start in range(0, len(body), 16_384):
            yield body[start:start + 16_384]

    with nothing_stored(small_server, small_engine):
        response = http.post("/api/upload", content=chunks(), headers={"content-type": MULTIPART})

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_json_error(response, 413)
    report = check_videos(small_server.env)
    assert report["ok"], report


def test_uploads_over_the_rate_limit_are_429(instructor, clip, small_server, small_engine, make_instructor):
    http, course_id, chapter_id = instructor
    for _ in range(UPLOADS_PER_MINUTE):
        assert upload(http, course_id, chapter_id, clip).status_code == 201
    wait_processed(small_engine)  # their thumbnails are in before the count
    files = stored_files(small_server)

    with nothing_stored(small_server, small_engine):
        response = upload(http, course_id, chapter_id, clip)

    assert "Too many upload" in assert_json_error(response, 429)
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["retryable"] is True
    assert stored_files(small_server) == files
    # The limit is per user: someone else still uploads.
    other, other_course, other_chapter = make_instructor()
    assert upload(other, other_course, other_chapter, clip).status_code == 201
