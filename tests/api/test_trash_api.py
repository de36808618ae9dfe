"""The trash routes against the running app (course_app/api/trash.py): list,
restore (the video plays again), delete for good (the stored file goes), and the
refusals every route gives."""

from __future__ import annotations

import uuid

import pytest

from course_app.db import session_scope
from course_app.services import trash, users
from tests.api.support import assert_json_error
from tests.api.test_videos_api import course, media, uploaded, video_row  # noqa: F401  (fixtures)
from tests.server import wait_processed
from tests.stored import stored_files


def trash_chapter(engine, email: str, chapter_id: str) -> None:
    """The editor's chapter delete (there is no chapter delete route), in the app's database."""
    with session_scope(engine) as session:
        trash.trash_chapter(session=session, user=users.get_user_by_email(session=session, email=email),
                            chapter_id=chapter_id)


def test_the_trash_lists_items_with_size_dates_and_the_quota_note(owner, course, media, server_engine):
    account, http = owner
    course_id, (intro, deep) = course
    lone = uploaded(http, course_id, intro, media["small"], title="Lone")
    with_chapter = uploaded(http, course_id, deep, media["mp4"], title="With its chapter")
    assert http.get(f"/api/courses/{course_id}/trash").json()["items"] == []

    assert http.delete(f"/api/videos/{lone['id']}").status_code == 204
    trash_chapter(server_engine, account.email, deep)
    listing = http.get(f"/api/courses/{course_id}/trash")

    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["keep_days"] == 30 and body["counts_toward_quota"] is True
    assert body["trashed_bytes"] == len(media["small"]) + len(media["mp4"])
    assert [(i["kind"], i["id"], i["title"], i["video_count"], i["size_bytes"]) for i in body["items"]] == [
        ("chapter", deep, "Deep dive", 1, len(media["mp4"])),
        ("video", lone["id"], "Lone", 1, len(media["small"])),
    ]
    assert all(i["expires_at"] > i["deleted_at"] for i in body["items"])
    assert [c["id"] for c in http.get(f"/api/courses/{course_id}").json()["chapters"]] == [intro]
    assert with_chapter["id"] not in str(http.get(f"/api/courses/{course_id}").json())
    assert [c["chapter_count"] for c in http.get("/api/courses").json() if c["id"] == course_id] == [1]


def test_a_restored_video_is_back_at_the_end_and_plays_again(owner, course, media, server_engine):
    _, http = owner
    course_id, (intro, _) = course
    doomed, kept = (uploaded(http, course_id, intro, media["small"], title=t) for t in ("Doomed", "Kept"))
    wait_processed(server_engine, [doomed["id"], kept["id"]])  # it played before it went to the trash
    assert http.delete(f"/api/videos/{doomed['id']}").status_code == 204
    assert_json_error(http.get(doomed["video_url"]), 404)

    response = http.post(f"/api/trash/videos/{doomed['id']}/restore")

    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["position"]) == (doomed["id"], 1)
    chapter = http.get(f"/api/courses/{course_id}").json()["chapters"][0]
    assert [v["id"] for v in chapter["videos"]] == [kept["id"], doomed["id"]]
    played = http.get(doomed["video_url"], headers={"Range": "bytes=0-99"})
    assert (played.status_code, played.content) == (206, media["small"][:100])
    assert_json_error(http.post(f"/api/trash/videos/{doomed['id']}/restore"), 404)


def test_a_restored_chapter_comes_back_last_with_its_videos(owner, course, media, server_engine):
    account, http = owner
    course_id, (intro, deep) = course
    inside = uploaded(http, course_id, intro, media["small"], title="Inside")
    trash_chapter(server_engine, account.email, intro)

    response = http.post(f"/api/trash/chapters/{intro}/restore")

    assert response.status_code == 200, response.text
    assert [v["id"] for v in response.json()["videos"]] == [inside["id"]]
    assert [c["id"] for c in http.get(f"/api/courses/{course_id}").json()["chapters"]] == [deep, intro]


def test_deleting_from_the_trash_removes_the_stored_files_for_good(owner, course, media, server_engine, app_server):
    account, http = owner
    course_id, (intro, deep) = course
    videos = [uploaded(http, course_id, deep, media["small"], title=t) for t in ("One", "Two")]
    keys = [video_row(server_engine, v["id"])["storage_key"] for v in videos]
    trash_chapter(server_engine, account.email, deep)
    assert set(keys) <= stored_files(app_server)

    assert_json_error(http.delete(f"/api/trash/chapters/{intro}"), 404)  # a live chapter: not in the trash
    response = http.delete(f"/api/trash/chapters/{deep}")

    assert response.status_code == 204 and response.content == b""
    assert not set(keys) & stored_files(app_server)
    assert all(video_row(server_engine, v["id"]) is None for v in videos)
    assert http.get(f"/api/courses/{course_id}/trash").json()["items"] == []


def test_trash_routes_refuse_anonymous_strangers_and_bad_ids(owner, course, media, stranger, new_client):
    _, http = owner
    course_id, (intro, _) = course
    doomed = uploaded(http, course_id, intro, media["small"])
    assert http.delete(f"/api/videos/{doomed['id']}").status_code == 204
    routes = [("GET", f"/api/courses/{course_id}/trash"), ("POST", f"/api/trash/videos/{doomed['id']}/restore"),
              ("DELETE", f"/api/trash/videos/{doomed['id']}")]

    for method, path in routes:
        assert_json_error(new_client().request(method, path), 401)
        assert_json_error(stranger.request(method, path), 403)
    for method, path, status in [
        ("POST", f"/api/trash/videos/{uuid.uuid4()}/restore", 404),
        ("DELETE", f"/api/trash/chapters/{uuid.uuid4()}", 404),
        ("POST", "/api/trash/videos/not-an-id/restore", 400),
        ("GET", "/api/courses/not-an-id/trash", 400),
        ("DELETE", f"/api/trash/courses/{course_id}", 422),  # only videos and chapters
        ("POST", f"/api/trash/videos/{intro}/restore", 404),  # a chapter's id as a video's
    ]:
        assert_json_error(http.request(method, path), status)
    # Nothing of it changed: it is still in the trash, restorable.
    assert http.post(f"/api/trash/videos/{doomed['id']}/restore").status_code == 200


@pytest.mark.parametrize("kind", ["videos", "chapters"])
def test_trash_routes_work_with_an_api_token(owner, course, media, new_client, server_engine, kind):
    account, http = owner
    course_id, (intro, _) = course
    video = uploaded(http, course_id, intro, media["small"])
    script = new_client(Authorization=f"Bearer {http.post('/api/tokens', json={'name': 'trash'}).json()['token']}")
    if kind == "videos":
        assert script.delete(f"/api/videos/{video['id']}").status_code == 204
        item = video["id"]
    else:
        trash_chapter(server_engine, account.email, intro)
        item = intro

    assert [i["id"] for i in script.get(f"/api/courses/{course_id}/trash").json()["items"]] == [item]
    assert script.post(f"/api/trash/{kind}/{item}/restore").status_code == 200
    assert script.get(f"/api/videos/{video['id']}").status_code == 200
