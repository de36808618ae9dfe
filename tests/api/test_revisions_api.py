"""Edits through the JSON API against the running app: ``If-Match`` with the course's
revision (412 when stale, and nothing changes), edits without it for scripts that
do not care, the ETag of every answer, and ``Idempotency-Key`` (a request sent again
is applied once and answered as the first time)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.support import assert_json_error
from tests.api.test_courses_api import chapter_rows, table_counts
from tests.api.test_videos_api import new_course, uploaded
from tests.media import make_video


@pytest.fixture
def http(make_account, login_as):
    return login_as(make_account())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("clip") / "c.mp4", seconds=1, seed=41).read_bytes()


def etag(response) -> int:
    value = response.headers["etag"]
    assert value.startswith('"') and value.endswith('"'), value
    return int(value.strip('"'))


def test_a_course_reads_with_its_revision_and_every_edit_answers_with_the_next(http):
    course_id, (first, second) = new_course(http, "One", "Two")
    read = http.get(f"/api/courses/{course_id}")
    revision = etag(read)
    assert read.json()["revision"] == revision

    renamed = http.patch(f"/api/chapters/{first}", json={"title": "First"}, headers={"If-Match": f'"{revision}"'})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "First" and etag(renamed) == revision + 1

    reordered = http.put(f"/api/courses/{course_id}/chapter-order", json={"chapter_ids": [second, first]},
                         headers={"If-Match": str(revision + 1)})
    assert reordered.status_code == 200, reordered.text
    assert [c["title"] for c in reordered.json()] == ["Two", "First"] and etag(reordered) == revision + 2

    published = http.patch(f"/api/courses/{course_id}", json={"title": "Renamed", "status": "published"},
                           headers={"If-Match": f'W/"{revision + 2}"'})
    assert published.status_code == 200, published.text
    body = published.json()
    # the details and the status: two edits in one transaction
    assert (body["title"], body["status"], body["revision"]) == ("Renamed", "published", revision + 4)
    assert etag(http.get(f"/api/courses/{course_id}")) == revision + 4


def test_an_edit_with_a_stale_if_match_is_412_and_changes_nothing(http, server_engine):
    course_id, (first, second) = new_course(http, "C0", "C1")
    seen = etag(http.get(f"/api/courses/{course_id}"))
    assert http.put(f"/api/courses/{course_id}/chapter-order", json={"chapter_ids": [second, first]}).status_code == 200

    stale = http.put(f"/api/courses/{course_id}/chapter-order", json={"chapter_ids": [first, second]},
                     headers={"If-Match": f'"{seen}"'})
    message = assert_json_error(stale, 412)
    assert stale.json()["code"] == "stale_revision"
    assert "changed" in message
    assert etag(stale) == seen + 1  # the current revision, to fetch and retry
    assert chapter_rows(server_engine, course_id) == [("C1", 0), ("C0", 1)]
    for method, path, body in [
        ("PATCH", f"/api/chapters/{first}", {"title": "x"}),
        ("DELETE", f"/api/chapters/{first}", None),
        ("PATCH", f"/api/courses/{course_id}", {"title": "x"}),
        ("POST", f"/api/courses/{course_id}/chapters", {"title": "x"}),
    ]:
        before = table_counts(server_engine)
        answer = http.request(method, path, json=body, headers={"If-Match": f'"{seen}"'})
        assert answer.status_code == 412, (method, path, answer.text)
        assert table_counts(server_engine) == before
    assert chapter_rows(server_engine, course_id) == [("C1", 0), ("C0", 1)]


def test_without_if_match_edits_apply_and_a_malformed_one_is_400(http):
    course_id, (chapter,) = new_course(http, "One")
    assert http.patch(f"/api/chapters/{chapter}", json={"title": "A"}).status_code == 200
    assert http.patch(f"/api/chapters/{chapter}", json={"title": "B"}, headers={"If-Match": "*"}).status_code == 200
    bad = http.patch(f"/api/chapters/{chapter}", json={"title": "C"}, headers={"If-Match": "yesterday"})
    assert "If-Match" in assert_json_error(bad, 400)
    assert http.get(f"/api/courses/{course_id}").json()["chapters"][0]["title"] == "B"


def test_videos_are_renamed_moved_and_reordered_through_the_api(http, clip):
    course_id, (one, two) = new_course(http, "One", "Two")
    a, b = (uploaded(http, course_id, one, clip, title=t)["id"] for t in ("a", "b"))
    revision = etag(http.get(f"/api/courses/{course_id}"))
    order = http.put(f"/api/chapters/{one}/video-order", json={"video_ids": [b, a]},
                     headers={"If-Match": str(revision)})
    assert order.status_code == 200, order.text
    assert [v["title"] for v in order.json()] == ["b", "a"]
    moved = http.patch(f"/api/videos/{a}", json={"title": "A", "chapter_id": two},
                       headers={"If-Match": str(revision + 1)})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["title"], moved.json()["chapter_id"]) == ("A", two)
    assert etag(moved) == revision + 3  # a rename and a move: two edits in one transaction
    tree = http.get(f"/api/courses/{course_id}").json()
    assert [[v["title"] for v in c["videos"]] for c in tree["chapters"]] == [["b"], ["A"]]
    assert_json_error(http.patch(f"/api/videos/{a}", json={}), 400)


def test_a_request_sent_again_with_its_idempotency_key_is_applied_once(http, server_engine):
    course_id, _ = new_course(http)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = http.post(f"/api/courses/{course_id}/chapters", json={"title": "Once"}, headers=key)
    again = http.post(f"/api/courses/{course_id}/chapters", json={"title": "Once"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert chapter_rows(server_engine, course_id) == [("Once", 0)]

    other = http.post(f"/api/courses/{course_id}/chapters", json={"title": "Something else"}, headers=key)
    assert "Idempotency-Key" in assert_json_error(other, 409)
    assert chapter_rows(server_engine, course_id) == [("Once", 0)]


def test_a_delete_sent_twice_with_its_key_answers_204_twice(http, clip):
    course_id, (chapter,) = new_course(http, "One")
    video = uploaded(http, course_id, chapter, clip)["id"]
    key = {"Idempotency-Key": "delete-" + video}
    assert http.delete(f"/api/videos/{video}", headers=key).status_code == 204
    assert http.delete(f"/api/videos/{video}", headers=key).status_code == 204
    assert http.delete(f"/api/videos/{video}").status_code == 404  # without the key it is a new request


def test_simultaneous_retries_of_one_request_create_one_chapter(http, server_engine):
    course_id, _ = new_course(http)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda _: http.post(f"/api/courses/{course_id}/chapters", json={"title": "Once"}, headers=key), range(8)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert chapter_rows(server_engine, course_id) == [("Once", 0)]


def test_keys_are_per_user(http, make_account, login_as):
    course_id, _ = new_course(http)
    other = login_as(make_account())
    theirs, _ = new_course(other)
    key = {"Idempotency-Key": "same-key"}
    mine = http.post(f"/api/courses/{course_id}/chapters", json={"title": "Mine"}, headers=key)
    their = other.post(f"/api/courses/{theirs}/chapters", json={"title": "Mine"}, headers=key)
    assert mine.status_code == their.status_code == 201
    assert mine.json()["id"] != their.json()["id"]
