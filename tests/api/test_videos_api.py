"""course_app/api/videos.py through HTTP against the running production build:
upload, details, playback with ranges, deletion, and every refusal, each with a
look at the app's own database and storage folder afterwards."""

from __future__ import annotations

import hashlib
import os
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.api.support import assert_json_error, assert_no_internals
from tests.cli import check_videos
from tests.media import make_video, mp4_header_then_garbage
from tests.server import wait_processed
from tests.stored import storage_root, stored_files

BOUNDARY = "course-studio-test-7d2f9a"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
EVIL = "https://evil.example"


# Building requests ---------------------------------------------------------------------------


def _part_header(name: str, filename: bytes | None = None, content_type: str | None = None) -> bytes:
    header = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'.encode()
    if filename is not None:
        header += b'; filename="' + filename + b'"'
    if content_type:
        header += f"\r\nContent-Type: {content_type}".encode()
    return header + b"\r\n\r\n"


def multipart(fields: list[tuple[str, str]] = (), file: bytes | None = None, *, filename: bytes | str = "clip.mp4",
              file_field: str = "file", after: list[tuple[str, str]] = (), close: bool = True) -> bytes:
    """A multipart/form-data body written by hand, so field order, raw file names
    and a missing end can be exactly what a test needs."""
    body = b"".join(_part_header(name) + value.encode() + b"\r\n" for name, value in fields)
    if file is not None:
        raw_name = filename.encode() if isinstance(filename, str) else filename
        body += _part_header(file_field, raw_name, "application/octet-stream") + file + b"\r\n"
    body += b"".join(_part_header(name) + value.encode() + b"\r\n" for name, value in after)
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def upload(http: httpx.Client, course_id: str, chapter_id: str, data: bytes, *, filename: bytes | str = "clip.mp4",
           title: str | None = None, size: int | str | None = None, **headers: str) -> httpx.Response:
    fields = [("course_id", str(course_id)), ("chapter_id", str(chapter_id))]
    if title is not None:
        fields.append(("title", title))
    if size is not None:
        fields.append(("size", str(size)))
    return http.post("/api/upload", content=multipart(fields, data, filename=filename),
                     headers={"content-type": MULTIPART, **headers})


def new_course(http: httpx.Client, *chapters: str, title: str = "Course") -> tuple[str, list[str]]:
    response = http.post("/api/courses", json={"title": title})
    assert response.status_code == 201, response.text
    course_id = response.json()["id"]
    chapter_ids = []
    for chapter in chapters:
        response = http.post(f"/api/courses/{course_id}/chapters", json={"title": chapter})
        assert response.status_code == 201, response.text
        chapter_ids.append(response.json()["id"])
    return course_id, chapter_ids


def uploaded(http: httpx.Client, course_id: str, chapter_id: str, data: bytes, **kwargs) -> dict:
    response = upload(http, course_id, chapter_id, data, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


# Looking at what the app stored ------------------------------------------------------------------


def video_row(engine, video_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM videos WHERE id = :id"), {"id": uuid.UUID(video_id).hex}).mappings()
        found = row.first()
        return dict(found) if found else None


@dataclass(frozen=True)
class Snapshot:
    videos: frozenset
    files: frozenset
    deletions: frozenset


def snapshot(app_server, engine) -> Snapshot:
    with engine.connect() as conn:
        videos = frozenset(r[0] for r in conn.execute(sa.text("SELECT id FROM videos")))
        deletions = frozenset(r[0] for r in conn.execute(sa.text("SELECT id FROM storage_deletions")))
    return Snapshot(videos, frozenset(stored_files(app_server)), deletions)


@contextmanager
def nothing_stored(app_server, engine):
    """No new video row, stored file (temp files included) or pending deletion."""
    wait_processed(engine)  # earlier uploads' thumbnails are written before the count
    before = snapshot(app_server, engine)
    yield
    after = snapshot(app_server, engine)
    assert after.videos - before.videos == set(), "a video row was left behind"
    assert after.files - before.files == set(), "a file was left in storage"
    assert after.deletions - before.deletions == set(), "a storage deletion was left pending"


# Fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("media")
    return {
        "mp4": make_video(folder / "a.mp4", seconds=2, seed=11).read_bytes(),
        "webm": make_video(folder / "b.webm", seconds=2, seed=12, codec="libvpx").read_bytes(),
        "small": make_video(folder / "c.mp4", seconds=1, seed=13).read_bytes(),
    }


@pytest.fixture
def course(owner):
    """The owner's course with two chapters: (course id, [chapter ids])."""
    _, http = owner
    return new_course(http, "Intro", "Deep dive")


@pytest.fixture
def video(owner, course, media, server_engine) -> dict:
    """A video uploaded and processed (ready)."""
    _, http = owner
    course_id, (intro, _) = course
    created = uploaded(http, course_id, intro, media["small"], filename="lesson.mp4")
    assert wait_processed(server_engine, [created["id"]]) == {created["id"]: "ready"}
    return http.get(f"/api/videos/{created['id']}").json()


def _zip() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("movie.mp4", os.urandom(10_000))
    return buffer.getvalue()


NOT_VIDEOS = {
    "notes.txt": b"Lecture notes, week one.\n" * 800,
    "poster.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(20_000),
    "course.zip": _zip(),
    "lecture.mp4": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + os.urandom(20_000),  # an executable renamed .mp4
    "page.html": b"<!DOCTYPE html><html><head><title>x</title></head><body>" + b"<p>hello</p>" * 2000,
}


# Upload ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "content_type"), [("mp4", "video/mp4"), ("webm", "video/webm")])
def test_upload_of_a_real_video_is_201_processing_then_ready_with_what_probing_found(
        owner, course, media, app_server, server_engine, kind, content_type):
    account, http = owner
    course_id, (intro, _) = course
    data = media[kind]

    response = upload(http, course_id, intro, data, filename=f"Week 1.{kind}", size=len(data))

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["stage"], body["error"]) == ("processing", "verifying", None)
    assert body["size_bytes"] == len(data)
    assert body["sha1"] == hashlib.sha1(data).hexdigest()
    assert body["content_type"] == content_type
    assert body["video_url"] == f"/api/videos/{body['id']}/stream"
    assert (body["course_id"], body["chapter_id"]) == (course_id, intro)
    assert (body["filename"], body["title"], body["position"]) == (f"Week 1.{kind}", "Week 1", 0)
    assert wait_processed(server_engine, [body["id"]]) == {body["id"]: "ready"}
    done = http.get(f"/api/videos/{body['id']}").json()
    assert (done["status"], done["stage"], done["failure_code"]) == ("ready", None, None)
    assert done["duration_seconds"] == pytest.approx(2.0, abs=0.15)
    assert (done["width"], done["height"], done["video_codec"]) == (64, 48, {"mp4": "h264", "webm": "vp8"}[kind])
    for size in ("small", "large"):
        thumbnail = http.get(done["thumbnail_urls"][size])
        assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
        assert thumbnail.headers["content-type"] == "image/jpeg" and "immutable" in thumbnail.headers["cache-control"]
    row = video_row(server_engine, body["id"])
    assert row["storage_key"] == f"videos/{account.id}/{body['id']}"
    assert (row["status"], row["size_bytes"], row["sha1"]) == ("ready", len(data), body["sha1"])
    assert (storage_root(app_server) / row["storage_key"]).read_bytes() == data
    assert http.get(body["video_url"]).content == data


def test_upload_uses_the_given_title_and_takes_fields_from_the_query_string(owner, course, media):
    _, http = owner
    course_id, (intro, _) = course
    first = uploaded(http, course_id, intro, media["small"], title="  Lesson one  ")

    response = http.post(
        "/api/upload", params={"course_id": course_id, "chapter_id": intro, "title": "From the query"},
        content=multipart([], media["small"]), headers={"content-type": MULTIPART},
    )

    assert first["title"] == "Lesson one"
    assert response.status_code == 201, response.text
    assert (response.json()["title"], response.json()["position"]) == ("From the query", 1)


@pytest.mark.parametrize(
    ("filename", "kept"),
    [
        (b"../../etc/passwd.mp4", "passwd.mp4"),
        (b"..\\..\\..\\boot.mp4", "boot.mp4"),
        (b"/tmp/absolute.mp4", "absolute.mp4"),
        (b"bad\x00name\x01\x1b\x7f.mp4", "badname.mp4"),
        (("n" * 1000 + ".mp4").encode(), "n" * 255),
        ("cute\u202egpj.mp4".encode(), "cutegpj.mp4"),
    ],
    ids=["dot-dot", "backslashes", "absolute", "control-chars", "1000-chars", "rtl-override"],
)
def test_a_hostile_file_name_is_kept_only_as_data(owner, course, media, app_server, server_engine, filename, kept):
    account, http = owner
    course_id, (intro, _) = course
    data_dir = app_server.data_dir
    wait_processed(server_engine)  # earlier uploads' thumbnails are written before the count
    outside_before = {p for p in data_dir.parent.rglob("*") if storage_root(app_server) not in p.parents}
    files_before = stored_files(app_server)

    response = upload(http, course_id, intro, media["small"], filename=filename)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == kept
    key = video_row(server_engine, body["id"])["storage_key"]
    assert key == f"videos/{account.id}/{body['id']}"
    wait_processed(server_engine, [body["id"]])  # its thumbnails go beside it, named after it
    new = stored_files(app_server) - files_before
    assert {key, key + ".meta.json"} <= new and all(name.startswith(key + ".") for name in new - {key}), new
    new_outside = {p for p in data_dir.parent.rglob("*") if storage_root(app_server) not in p.parents} - outside_before
    # nothing written beside storage but the database's and the job queue's own files
    assert {p.name for p in new_outside} <= {"course_studio.db-journal", "queue.db", "queue.db-wal", "queue.db-shm"}
    assert not Path("/etc/passwd.mp4").exists() and not Path("/tmp/absolute.mp4").exists()
    assert not any("passwd" in p.name or "boot.mp4" in p.name for p in data_dir.parent.rglob("*"))
    assert http.get(f"/api/videos/{body['id']}").json()["filename"] == kept


# Refusals: who may upload ----------------------------------------------------------------------------


def test_upload_without_credentials_is_401_and_stores_nothing(course, media, new_client, app_server, server_engine):
    course_id, (intro, _) = course

    with nothing_stored(app_server, server_engine):
        anonymous = upload(new_client(), course_id, intro, media["small"])
        bad_token = upload(new_client(), course_id, intro, media["small"], authorization="Bearer cs_not-a-real-token")
        bad_cookie = upload(new_client(), course_id, intro, media["small"], cookie="cs_session=made-up")

    for response in (anonymous, bad_token, bad_cookie):
        assert_json_error(response, 401)


def test_upload_into_someone_elses_chapter_is_403_and_stores_nothing(course, stranger, media, app_server, server_engine):
    course_id, (intro, _) = course

    with nothing_stored(app_server, server_engine):
        response = upload(stranger, course_id, intro, media["small"])

    assert_json_error(response, 403)


def test_upload_into_a_missing_chapter_is_404_and_stores_nothing(owner, course, media, app_server, server_engine):
    _, http = owner
    course_id, _ = course

    with nothing_stored(app_server, server_engine):
        response = upload(http, course_id, str(uuid.uuid4()), media["small"])

    assert_json_error(response, 404)


def test_upload_from_another_site_with_the_cookie_is_403_and_stores_nothing(owner, course, media, app_server, server_engine):
    _, http = owner
    course_id, (intro, _) = course

    with nothing_stored(app_server, server_engine):
        response = upload(http, course_id, intro, media["small"], origin=EVIL)

    assert "Cross-site" in assert_json_error(response, 403)


# Refusals: malformed uploads -----------------------------------------------------------------------------


def _bodies(course_id: str, chapter_id: str, other_course_chapter: str, video: bytes) -> dict[str, bytes]:
    both = [("course_id", course_id), ("chapter_id", chapter_id)]
    return {
        "chapter of another course": multipart([("course_id", course_id), ("chapter_id", other_course_chapter)], video),
        "missing course_id": multipart([("chapter_id", chapter_id)], video),
        "missing chapter_id": multipart([("course_id", course_id)], video),
        "empty course_id": multipart([("course_id", ""), ("chapter_id", chapter_id)], video),
        "malformed chapter_id": multipart([("course_id", course_id), ("chapter_id", "chapter-1")], video),
        "no file field": multipart(both),
        "file under another name": multipart(both, video, file_field="video"),
        "fields after the file": multipart([], video, after=both),
        "size not a number": multipart([*both, ("size", "lots")], video),
        "negative size": multipart([*both, ("size", "-5")], video),
        "empty file": multipart(both, b""),
        "cut off before the end": multipart(both, video, close=False),
    }


BAD_FORMS = list(_bodies("c", "c", "c", b"").keys())


@pytest.mark.parametrize("case", BAD_FORMS)
def test_a_malformed_upload_form_is_400_and_stores_nothing(owner, course, media, app_server, server_engine, case):
    _, http = owner
    course_id, (intro, _) = course
    _, (other_chapter,) = new_course(http, "Elsewhere", title="Other course")
    body = _bodies(course_id, intro, other_chapter, media["small"])[case]

    with nothing_stored(app_server, server_engine):
        response = http.post("/api/upload", content=body, headers={"content-type": MULTIPART})

    assert_json_error(response, 400)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b'{"course_id": "x"}', "application/json"), (b"course_id=x&chapter_id=y", "application/x-www-form-urlencoded"),
     (b"--nope\r\n", "multipart/form-data"), (b"", "")],
    ids=["json", "urlencoded", "multipart-without-boundary", "no-content-type"],
)
def test_an_upload_that_is_not_multipart_is_400(owner, app_server, server_engine, content, content_type):
    _, http = owner

    with nothing_stored(app_server, server_engine):
        response = http.post("/api/upload", content=content, headers={"content-type": content_type})

    assert "multipart/form-data" in assert_json_error(response, 400)


@pytest.mark.parametrize("filename", NOT_VIDEOS)
def test_a_file_that_is_not_a_video_is_415_whatever_its_name(owner, course, app_server, server_engine, filename):
    _, http = owner
    course_id, (intro, _) = course

    with nothing_stored(app_server, server_engine):
        response = upload(http, course_id, intro, NOT_VIDEOS[filename], filename=filename)

    assert "not a video" in assert_json_error(response, 415)
    assert response.json()["code"] == "not_a_video"


# Details --------------------------------------------------------------------------------------------


def test_get_video_returns_its_details(owner, video):
    _, http = owner

    response = http.get(f"/api/videos/{video['id']}")

    assert response.status_code == 200
    assert response.json() == video


def test_video_routes_without_credentials_are_401(video, new_client, server_engine, app_server):
    routes = [("GET", f"/api/videos/{video['id']}"), ("GET", f"/api/videos/{video['id']}/stream"),
              ("DELETE", f"/api/videos/{video['id']}")]

    with nothing_stored(app_server, server_engine):
        for method, path in routes:
            assert_json_error(new_client().request(method, path), 401)
            assert_json_error(new_client().request(method, path, headers={"Authorization": "Bearer nope"}), 401)

    assert video_row(server_engine, video["id"])["status"] == "ready"


def test_someone_elses_video_is_403_on_every_route_and_survives(video, stranger, server_engine, app_server):
    files = stored_files(app_server)

    assert_json_error(stranger.get(f"/api/videos/{video['id']}"), 403)
    response = stranger.get(f"/api/videos/{video['id']}/stream", headers={"Range": "bytes=0-99"})
    assert_json_error(response, 403)
    assert_json_error(stranger.delete(f"/api/videos/{video['id']}"), 403)

    assert video_row(server_engine, video["id"]) is not None
    assert files <= stored_files(app_server)


@pytest.mark.parametrize(("video_id", "status"), [(str(uuid.uuid4()), 404), ("not-a-uuid", 400), ("1", 400)])
def test_an_unknown_or_malformed_video_id_is_refused_on_every_route(owner, video_id, status):
    _, http = owner

    for method, path in [("GET", f"/api/videos/{video_id}"), ("GET", f"/api/videos/{video_id}/stream"),
                         ("DELETE", f"/api/videos/{video_id}")]:
        assert_json_error(http.request(method, path), status)


# Playback ---------------------------------------------------------------------------------------------


def test_stream_returns_the_whole_file(owner, video, media):
    _, http = owner
    data = media["small"]

    response = http.get(video["video_url"])

    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert "no-store" in response.headers["cache-control"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=-100", -100, -1), ("bytes=100-", 100, -1), ("bytes=10-10", 10, 10),
     ("bytes=0-999999999", 0, -1), ("bytes=5-9, 20-29", 5, 9)],
    ids=["first-100", "suffix-100", "open-ended", "one-byte", "end-past-eof", "first-of-several"],
)
def test_stream_serves_byte_ranges(owner, video, media, header, start, end):
    _, http = owner
    data = media["small"]
    size = len(data)
    first, last = start % size, end % size

    response = http.get(video["video_url"], headers={"Range": header})

    assert response.status_code == 206, response.text
    assert response.content == data[first:last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert response.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{beyond}", "bytes=-0", "bytes=9-3"])
def test_an_unsatisfiable_range_is_416(owner, video, media, header):
    _, http = owner
    size = len(media["small"])

    response = http.get(video["video_url"], headers={"Range": header.format(size=size, beyond=size + 10)})

    assert_json_error(response, 416)
    assert response.headers["content-range"] == f"bytes */{size}"


def test_a_video_that_is_not_ready_does_not_play(owner, video, server_engine):
    _, http = owner
    with server_engine.begin() as conn:
        conn.execute(sa.text("UPDATE videos SET status = 'uploading' WHERE id = :id"), {"id": uuid.UUID(video["id"]).hex})

    try:
        assert "not ready" in assert_json_error(http.get(video["video_url"]), 409)
    finally:
        with server_engine.begin() as conn:
            conn.execute(sa.text("UPDATE videos SET status = 'ready' WHERE id = :id"), {"id": uuid.UUID(video["id"]).hex})


# Deletion ---------------------------------------------------------------------------------------------


def test_delete_moves_the_video_to_the_trash_and_keeps_its_file_until_purged(
        owner, course, media, app_server, server_engine):
    _, http = owner
    course_id, (intro, _) = course
    first, doomed, last = (uploaded(http, course_id, intro, media["small"], title=t) for t in ("a", "b", "c"))
    wait_processed(server_engine, [first["id"], doomed["id"], last["id"]])
    key = video_row(server_engine, doomed["id"])["storage_key"]
    assert {key, key + ".meta.json"} <= stored_files(app_server)
    assert len([name for name in stored_files(app_server) if name.startswith(key + ".thumb-")]) == 4  # 2 + sidecars

    response = http.delete(f"/api/videos/{doomed['id']}")

    assert response.status_code == 204 and response.content == b""
    assert video_row(server_engine, doomed["id"])["deleted_at"] is not None
    assert {key, key + ".meta.json"} <= stored_files(app_server)  # kept while in the trash, thumbnails too
    assert len([name for name in stored_files(app_server) if name.startswith(key + ".thumb-")]) == 4
    assert "trash" in assert_json_error(http.get(f"/api/videos/{doomed['id']}"), 404)
    assert_json_error(http.get(f"/api/videos/{doomed['id']}/stream"), 404)
    assert_json_error(http.delete(f"/api/videos/{doomed['id']}"), 404)
    chapter = http.get(f"/api/courses/{course_id}").json()["chapters"][0]
    assert [(v["id"], v["position"]) for v in chapter["videos"]] == [(first["id"], 0), (last["id"], 1)]
    report = check_videos(app_server.env)
    assert report["ok"] and report["trashed_rows"] >= 1, report

    # Deleting it from the trash removes the row and the stored file for good.
    assert http.delete(f"/api/trash/videos/{doomed['id']}").status_code == 204
    assert video_row(server_engine, doomed["id"]) is None
    assert not {key, key + ".meta.json"} & stored_files(app_server)
    with server_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM storage_deletions WHERE storage_key = :k"), {"k": key}).scalar() == 0
    assert check_videos(app_server.env)["ok"]


# API tokens instead of the cookie -------------------------------------------------------------------------


def test_every_video_route_works_with_an_api_token(owner, course, media, new_client, app_server, server_engine):
    _, http = owner
    course_id, (_, deep) = course
    created = http.post("/api/tokens", json={"name": "uploader script"})
    assert created.status_code == 201, created.text
    script = new_client(Authorization=f"Bearer {created.json()['token']}")
    data = media["mp4"]

    response = upload(script, course_id, deep, data, filename="from-script.mp4", origin=EVIL)  # no cookie, no CSRF

    assert response.status_code == 201, response.text
    video_id = response.json()["id"]
    assert script.get(f"/api/videos/{video_id}").json()["sha1"] == hashlib.sha1(data).hexdigest()
    wait_processed(server_engine, [video_id])
    ranged = script.get(f"/api/videos/{video_id}/stream", headers={"Range": "bytes=0-99"})
    assert (ranged.status_code, ranged.content) == (206, data[:100])
    assert script.delete(f"/api/videos/{video_id}").status_code == 204
    assert video_row(server_engine, video_id)["deleted_at"] is not None
    assert_json_error(script.get(f"/api/videos/{video_id}"), 404)
    assert [i["id"] for i in script.get(f"/api/courses/{course_id}/trash").json()["items"]] == [video_id]
    assert script.post(f"/api/trash/videos/{video_id}/restore").json()["chapter_id"] == deep
    assert script.delete(f"/api/videos/{video_id}").status_code == 204
    assert script.delete(f"/api/trash/videos/{video_id}").status_code == 204
    assert video_row(server_engine, video_id) is None


def test_a_file_with_no_picture_inside_fails_at_probing_and_retry_says_it_cannot_help(owner, course, server_engine):
    _, http = owner
    course_id, (intro, _) = course
    created = uploaded(http, course_id, intro, mp4_header_then_garbage(), filename="renamed.mp4")

    assert wait_processed(server_engine, [created["id"]]) == {created["id"]: "failed"}
    failed = http.get(f"/api/videos/{created['id']}").json()
    assert (failed["stage"], failed["failure_code"], failed["retryable"]) == ("probing", "not_decodable", False)
    assert "Upload the video again" in failed["error"] and failed["thumbnail_urls"] == {}
    assert "Retrying cannot help" in assert_json_error(http.post(f"/api/videos/{created['id']}/retry"), 409)
    assert_json_error(http.get(f"/api/videos/{created['id']}/thumbnail/small"), 404)
    assert_json_error(http.get(failed["video_url"]), 409)


def test_retry_of_a_ready_video_is_409(owner, video):
    _, http = owner
    assert "Only a video whose processing failed" in assert_json_error(http.post(f"/api/videos/{video['id']}/retry"), 409)
    assert_json_error(http.get(f"/api/videos/{video['id']}/thumbnail/medium"), 404)


# The API's own description --------------------------------------------------------------------------------


def test_openapi_lists_every_route_and_the_docs_answer(client):
    spec = client.get("/api/openapi.json")
    docs = client.get("/api/docs")

    assert spec.status_code == 200
    paths = spec.json()["paths"]
    expected = {
        "/api/upload": {"post"},
        "/api/videos/{video_id}": {"get", "delete"},
        "/api/videos/{video_id}/stream": {"get"},
        "/api/videos/{video_id}/retry": {"post"},
        "/api/videos/{video_id}/thumbnail/{size}": {"get"},
        "/api/courses": {"get", "post"},
        "/api/courses/{course_id}": {"get"},
        "/api/courses/{course_id}/chapters": {"post"},
        "/api/tokens": {"get", "post"},
        "/api/courses/{course_id}/trash": {"get"},
        "/api/trash/{kind}/{item_id}/restore": {"post"},
        "/api/trash/{kind}/{item_id}": {"delete"},
    }
    for path, methods in expected.items():
        assert path in paths, sorted(paths)
        assert methods <= set(paths[path]), (path, sorted(paths[path]))
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "openapi.json" in docs.text
    assert_no_internals(docs)
