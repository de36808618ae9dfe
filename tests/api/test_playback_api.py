"""course_app/api/playback.py and publishing through HTTP against the running
production build: signed links (ranges, validators, cache headers, no cookie),
expired and tampered links, who gets a link, and publishing refused while videos
are not ready."""

from __future__ import annotations

import hashlib
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa

from course_app.services import playback
from course_app.settings import get_settings
from tests.api.support import assert_json_error
from tests.api.test_videos_api import course, media, new_course, uploaded, video_row  # noqa: F401  (fixtures)
from tests.media import mp4_header_then_garbage
from tests.server import wait_processed


def _set_status(engine, video_id: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE videos SET status = :s WHERE id = :id"), {"s": status, "id": uuid.UUID(video_id).hex})


def _links(http, video_id: str) -> dict:
    response = http.get(f"/api/videos/{video_id}/playback")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "private, no-store"
    return response.json()


def _with_query(url: str, **changes: str) -> str:
    split = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(split.query).items()} | changes
    return f"{split.path}?{urlencode(query)}"


@pytest.fixture
def ready(owner, course, media, server_engine) -> dict:  # noqa: F811
    """Two ready videos in the owner's draft course: {"ids": [...], "data": [...]}."""
    _, http = owner
    course_id, (intro, deep) = course
    first = uploaded(http, course_id, intro, media["mp4"], title="Welcome")
    second = uploaded(http, course_id, deep, media["small"], title="Setup")
    ids = [first["id"], second["id"]]
    assert wait_processed(server_engine, ids) == {i: "ready" for i in ids}
    return {"ids": ids, "data": [media["mp4"], media["small"]], "course": course_id}


# Publishing ---------------------------------------------------------------------------------------


def test_publishing_is_refused_naming_the_videos_not_ready_then_allowed_once_they_are(
        owner, course, media, server_engine):  # noqa: F811
    _, http = owner
    course_id, (intro, deep) = course
    good = uploaded(http, course_id, intro, media["small"], title="Intro")
    broken = uploaded(http, course_id, deep, mp4_header_then_garbage(), title="Broken", filename="broken.mp4")
    assert wait_processed(server_engine, [good["id"], broken["id"]]) == {good["id"]: "ready", broken["id"]: "failed"}
    _set_status(server_engine, good["id"], "processing")  # set back to ready below

    refused = http.patch(f"/api/courses/{course_id}", json={"status": "published"})

    message = assert_json_error(refused, 409)
    assert "2 videos are not ready: 'Intro' (processing), 'Broken' (failed)" in message
    body = refused.json()
    assert body["code"] == "videos_not_ready"
    assert [(v["id"], v["title"], v["status"]) for v in body["not_ready"]] == [
        (good["id"], "Intro", "processing"), (broken["id"], "Broken", "failed")]
    assert http.get(f"/api/courses/{course_id}").json()["status"] == "draft"

    _set_status(server_engine, good["id"], "ready")
    assert "1 video is not ready: 'Broken' (failed)" in assert_json_error(
        http.patch(f"/api/courses/{course_id}", json={"status": "published"}), 409)
    assert http.delete(f"/api/videos/{broken['id']}").status_code == 204  # to the trash: no longer counted

    published = http.patch(f"/api/courses/{course_id}", json={"status": "published"})

    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published"


# Signed links ----------------------------------------------------------------------------------------


def test_a_signed_link_plays_without_a_cookie_with_ranges_validators_and_cache_headers(
        owner, ready, new_client):
    _, http = owner
    video_id, data = ready["ids"][0], ready["data"][0]
    links = _links(http, video_id)
    assert links["url"].startswith(f"/api/media/{video_id}/video/")
    expires_at = time.mktime(time.strptime(links["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 0 < expires_at - time.time() <= get_settings().playback_link_seconds + playback.WINDOW
    player = new_client()  # no cookie, no token: a <video> tag or a CDN

    ranged = player.get(links["url"], headers={"Range": "bytes=100-1099"})
    whole = player.get(links["url"])

    etag = f'"{hashlib.sha1(data).hexdigest()}"'
    assert ranged.status_code == 206 and ranged.content == data[100:1100]
    assert ranged.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert ranged.headers["content-length"] == "1000"
    assert whole.status_code == 200 and whole.content == data
    for answer in (ranged, whole):
        assert answer.headers["etag"] == etag
        assert answer.headers["accept-ranges"] == "bytes"
        assert answer.headers["content-type"] == "video/mp4"
        cache = answer.headers["cache-control"]
        assert cache.startswith("public, max-age=") and cache.endswith(", immutable")
        assert 0 < int(cache.split("max-age=")[1].split(",")[0]) <= expires_at - time.time() + 2
        assert answer.headers["x-content-type-options"] == "nosniff"  # the app's security headers
        assert "content-security-policy" in answer.headers
        assert "set-cookie" not in answer.headers

    not_modified = player.get(links["url"], headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag and "immutable" in not_modified.headers["cache-control"]
    assert player.get(links["url"], headers={"If-None-Match": '"0000"'}).status_code == 200
    stale_copy = player.get(links["url"], headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert stale_copy.status_code == 200 and stale_copy.content == data
    head = player.head(links["url"])
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(data))

    poster = player.get(links["poster_url"])
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content.startswith(b"\xff\xd8") and poster.headers["etag"].strip('"') == \
        hashlib.sha1(poster.content).hexdigest()
    assert set(links["thumbnail_urls"]) == {"small", "large"}


def test_an_expired_link_is_refused_with_403(owner, ready, new_client, server_engine):
    _, http = owner
    video_id = ready["ids"][0]
    key = video_row(server_engine, video_id)["storage_key"]
    # Signed by this process with the app's own secret (the tests share it), an hour ago.
    expired = playback.sign(video_id=video_id, kind="video", key=key, expires=int(time.time()) - 1,
                            audience=playback.OWNER)
    fresh = playback.sign(video_id=video_id, kind="video", key=key, expires=int(time.time()) + 300,
                          audience=playback.OWNER)

    response = new_client().get(expired, headers={"Range": "bytes=0-99"})

    assert "expired" in assert_json_error(response, 403)
    assert response.json()["code"] == "link_expired"
    assert new_client().get(fresh, headers={"Range": "bytes=0-99"}).status_code == 206


def test_a_tampered_link_is_refused_with_403(owner, ready, new_client):
    _, http = owner
    first, second = ready["ids"]
    url = _links(http, first)["url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    signature = query["signature"]
    player = new_client()
    forged = [
        _with_query(url, expires=str(int(query["expires"]) + 86400)),  # a longer life
        _with_query(url, signature=signature[:-1] + ("A" if signature[-1] != "A" else "B")),
        _with_query(url, signature=""),
        url.split("?")[0],  # no signature at all
        url.replace(first, second),  # the same signature for another video
        url.replace("/video/", "/large/"),
        url.replace(urlsplit(url).path.rsplit("/", 1)[1], "0" * 16),  # another version
    ]

    for link in forged:
        response = player.get(link, headers={"Range": "bytes=0-99"})
        assert "not valid" in assert_json_error(response, 403), link
        assert response.json()["code"] == "link_invalid"
    assert player.get(url, headers={"Range": "bytes=0-99"}).status_code == 206


def test_only_the_owner_gets_a_link_to_a_draft_and_anyone_signed_in_once_published(
        owner, ready, stranger, new_client):  # noqa: F811
    _, http = owner
    video_id = ready["ids"][0]

    assert_json_error(stranger.get(f"/api/videos/{video_id}/playback"), 403)
    assert_json_error(stranger.get(f"/api/videos/{video_id}/stream", headers={"Range": "bytes=0-9"}), 403)
    assert_json_error(new_client().get(f"/api/videos/{video_id}/playback"), 401)
    assert http.patch(f"/api/courses/{ready['course']}", json={"status": "published"}).status_code == 200

    links = _links(stranger, video_id)

    assert new_client().get(links["url"], headers={"Range": "bytes=0-9"}).content == ready["data"][0][:10]
    assert stranger.get(f"/api/videos/{video_id}/stream", headers={"Range": "bytes=0-9"}).status_code == 206
    assert_json_error(new_client().get(f"/api/videos/{video_id}/playback"), 401)


def test_unpublishing_stops_the_links_students_hold_and_not_the_owners_preview(owner, ready, stranger, new_client):  # noqa: F811
    _, http = owner
    video_id, data = ready["ids"][0], ready["data"][0]
    assert http.patch(f"/api/courses/{ready['course']}", json={"status": "published"}).status_code == 200
    students, owners = _links(stranger, video_id), _links(http, video_id)
    player = new_client()  # the links need no cookie: whoever holds one plays it
    for link in (students["url"], owners["url"]):
        assert player.get(link, headers={"Range": "bytes=0-9"}).content == data[:10]

    assert http.patch(f"/api/courses/{ready['course']}", json={"status": "draft"}).status_code == 200

    for link in (students["url"], students["poster_url"]):
        refused = player.get(link, headers={"Range": "bytes=0-9"})
        assert "no longer published" in assert_json_error(refused, 403), link
        assert refused.json()["code"] == "link_withdrawn"
        assert "public" not in refused.headers.get("cache-control", "")
    assert_json_error(stranger.get(f"/api/videos/{video_id}/playback"), 403)  # and no new one
    assert player.get(owners["url"], headers={"Range": "bytes=0-9"}).content == data[:10]
    assert player.get(owners["poster_url"]).status_code == 200


def test_a_link_to_a_video_moved_to_the_trash_or_not_ready_names_nothing(owner, ready, new_client, server_engine):
    _, http = owner
    first, second = ready["ids"]
    trashed, unready = _links(http, first)["url"], _links(http, second)["url"]
    assert http.delete(f"/api/videos/{first}").status_code == 204
    _set_status(server_engine, second, "processing")
    try:
        assert_json_error(new_client().get(trashed), 404)
        assert_json_error(new_client().get(unready), 404)
        assert "not ready" in assert_json_error(http.get(f"/api/videos/{second}/playback"), 409)
    finally:  # no worker will finish it: later tests wait for every video to be processed
        _set_status(server_engine, second, "ready")


def test_the_stream_route_still_plays_for_api_clients_with_validators(owner, ready):
    _, http = owner
    video_id, data = ready["ids"][0], ready["data"][0]

    response = http.get(f"/api/videos/{video_id}/stream", headers={"Range": "bytes=0-99"})

    etag = f'"{hashlib.sha1(data).hexdigest()}"'
    assert (response.status_code, response.content) == (206, data[:100])
    assert response.headers["etag"] == etag and response.headers["cache-control"] == "private, no-store"
    assert http.get(f"/api/videos/{video_id}/stream", headers={"If-None-Match": etag}).status_code == 304


def test_the_api_description_lists_the_playback_routes(client):
    paths = client.get("/api/openapi.json").json()["paths"]

    assert "get" in paths["/api/videos/{video_id}/playback"]
    assert "get" in paths["/api/media/{video_id}/{kind}/{version}"]
