"""course_app/api/replacements.py and replacing through POST /api/uploads, against the
running app (its worker processes the files): a video's file replaced in place,
a failed replacement, and the duplicate look-up with every refusal's shape."""

from __future__ import annotations

import hashlib

import pytest

from tests.api.support import assert_json_error
from tests.api.test_upload_sessions_api import create_body, send, video_bytes
from tests.api.test_videos_api import new_course
from tests.cli import check_videos
from tests.media import mp4_header_then_garbage
from tests.polling import wait_for
from tests.server import wait_processed


def fingerprint(data: bytes) -> str:
    """As the uploader makes it (components/uploads/hash.js)."""
    mib = 1024 * 1024
    return f"v1:{len(data)}:{hashlib.sha1(data[:mib] + data[max(0, len(data) - mib):]).hexdigest()}"


def upload_all(http, body: dict, data: bytes) -> dict:
    response = http.post("/api/uploads", json=body)
    assert response.status_code == 201, response.text
    upload = response.json()
    for number in range(1, upload["part_count"] + 1):
        assert send(http, upload, data, number).status_code == 200
    response = http.post(f"/api/uploads/{upload['id']}/complete", json={})
    assert response.status_code == 200, response.text
    return {**response.json(), "upload": upload}


def replacement_until(http, video_id: str, done, timeout: float = 60):
    """The video's replacement as GET .../replacement answers, once ``done(response)``."""
    return wait_for(lambda: http.get(f"/api/videos/{video_id}/replacement"), "the replacement's answer", until=done,
                    timeout=timeout, describe=lambda response: f"{response.status_code} {response.text}")


@pytest.fixture
def owner(owner):
    """Only the owner's client: these tests never need the account."""
    return owner[1]


@pytest.fixture
def lesson(owner, server_engine):
    """A ready video, the second of its chapter."""
    course_id, (chapter_id,) = new_course(owner, "Basics", title="Replacing")
    for seed, name in ((11, "intro.mp4"), (12, "lecture.mp4")):
        data = video_bytes(70_000, seed=seed)
        video = upload_all(owner, create_body(course_id, chapter_id, data, filename=name), data)
    assert wait_processed(server_engine, [video["id"]]) == {video["id"]: "ready"}
    return owner.get(f"/api/videos/{video['id']}").json()


def test_a_video_is_replaced_in_place_through_the_api(owner, lesson, server_engine, app_server):
    new = video_bytes(150_000, seed=13)
    body = create_body(None, None, new, filename="lecture-v2.mp4", replaces_video_id=lesson["id"])
    answer = upload_all(owner, body, new)
    assert answer["upload"]["replaces_video_id"] == lesson["id"] and answer["upload"]["video_id"] is None
    # The answer is the lesson as it stands: still its old file until the new one is processed.
    assert (answer["id"], answer["status"], answer["size_bytes"]) == (lesson["id"], "ready", lesson["size_bytes"])

    replacement_until(owner, lesson["id"], lambda r: r.status_code == 404)  # swapped in
    after = owner.get(f"/api/videos/{lesson['id']}").json()
    assert (after["id"], after["title"], after["position"], after["chapter_id"]) == (
        lesson["id"], lesson["title"], lesson["position"], lesson["chapter_id"])
    assert (after["status"], after["size_bytes"], after["sha1"], after["filename"]) == (
        "ready", len(new), hashlib.sha1(new).hexdigest(), "lecture-v2.mp4")
    assert after["thumbnail_urls"] and after["thumbnail_urls"] != lesson["thumbnail_urls"]
    assert owner.get(after["video_url"]).content == new
    assert check_videos(app_server.env)["ok"]  # the old file and thumbnails are gone, nothing dangles


def test_a_failed_replacement_leaves_the_video_and_can_be_dismissed(owner, stranger, lesson, app_server):
    broken = mp4_header_then_garbage(80_000, seed=3)
    upload_all(owner, create_body(None, None, broken, replaces_video_id=lesson["id"]), broken)
    failed = replacement_until(owner, lesson["id"], lambda r: r.json().get("status") == "failed").json()
    assert failed["failure_code"] == "not_decodable" and failed["retryable"] is False
    assert failed["message"].startswith("Replacement failed: ")
    assert owner.get(f"/api/videos/{lesson['id']}").json() == lesson  # untouched
    assert "cannot help" in assert_json_error(owner.post(f"/api/videos/{lesson['id']}/replacement/retry"), 409)

    for method in ("GET", "DELETE"):  # someone else's: refused, and it stays
        assert stranger.request(method, f"/api/videos/{lesson['id']}/replacement").status_code in (403, 404)
    assert owner.delete(f"/api/videos/{lesson['id']}/replacement").status_code == 204
    assert_json_error(owner.get(f"/api/videos/{lesson['id']}/replacement"), 404)
    assert owner.get(f"/api/videos/{lesson['id']}").json() == lesson
    assert check_videos(app_server.env)["ok"]


def test_replacing_is_refused_where_it_cannot_apply(owner, stranger, lesson):
    data = video_bytes(70_000, seed=14)
    theirs = stranger.post("/api/uploads", json=create_body(None, None, data, replaces_video_id=lesson["id"]))
    assert theirs.status_code in (403, 404)
    elsewhere, (chapter,) = new_course(owner, "Other")
    assert_json_error(owner.post("/api/uploads", json=create_body(
        elsewhere, chapter, data, replaces_video_id=lesson["id"])), 400)
    assert_json_error(owner.post("/api/uploads", json=create_body(None, None, data, replaces_video_id="nope")), 400)
    assert owner.post("/api/uploads", json=create_body(None, None, data, replaces_video_id=lesson["id"])).status_code == 201
    assert "already on its way" in assert_json_error(owner.post("/api/uploads", json=create_body(
        None, None, video_bytes(71_000, seed=15), replaces_video_id=lesson["id"])), 409)


def test_the_duplicate_lookup_names_only_the_callers_own_videos(owner, stranger, lesson, new_client):
    data = video_bytes(70_000, seed=12)  # the lesson's file
    query = {"fingerprints": [fingerprint(data)]}
    response = owner.post("/api/videos/duplicates", json=query)
    assert response.status_code == 200, response.text
    [match] = response.json()["matches"]
    assert (match["video_id"], match["lesson_number"], match["chapter_number"]) == (lesson["id"], 2, 1)
    assert match["where"] == "Lesson 2 (“lecture”) of Replacing, chapter 1 “Basics”"
    by_sha1 = owner.post("/api/videos/duplicates", json={"sha1s": [hashlib.sha1(data).hexdigest()]}).json()
    assert [m["video_id"] for m in by_sha1["matches"]] == [lesson["id"]]
    assert owner.post("/api/videos/duplicates", json={"fingerprints": [fingerprint(data + b"x")]}).json() == {
        "matches": []}

    assert stranger.post("/api/videos/duplicates", json=query).json() == {"matches": []}
    assert_json_error(new_client().post("/api/videos/duplicates", json=query), 401)
    assert_json_error(owner.post("/api/videos/duplicates", json={}), 400)
    assert_json_error(owner.post("/api/videos/duplicates", json={"fingerprints": ["v1:1:nothex"]}), 400)
    assert_json_error(owner.post("/api/videos/duplicates", json={"sha1s": ["a" * 40] * 101}), 400)


def test_the_duplicate_lookup_is_rate_limited(make_account, login_as):
    http = login_as(make_account())
    query = {"sha1s": ["0" * 40]}
    answers = [http.post("/api/videos/duplicates", json=query).status_code for _ in range(120)]
    assert answers[:120] == [200] * 120
    limited = http.post("/api/videos/duplicates", json=query)
    assert_json_error(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
