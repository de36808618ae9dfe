"""course_app/api/courses.py through HTTP against the running production build:
list, create, read a course tree, add chapters; every refusal stores nothing."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime

import pytest
import sqlalchemy as sa

from tests.api.support import assert_json_error
from tests.api.test_videos_api import EVIL, new_course, uploaded
from tests.media import make_video


def course_rows(engine, owner_id: int) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.text("SELECT * FROM courses WHERE owner_id = :o ORDER BY created_at"), {"o": owner_id}).mappings()]


def chapter_rows(engine, course_id: str) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.text("SELECT title, position FROM chapters WHERE course_id = :c ORDER BY position"),
            {"c": uuid.UUID(course_id).hex})]


def table_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("courses", "chapters", "videos")}


@contextmanager
def nothing_created(engine):
    before = table_counts(engine)
    yield
    assert table_counts(engine) == before


def is_utc_timestamp(value: str) -> bool:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("clips")
    return [make_video(folder / f"{n}.mp4", seconds=1, seed=20 + n).read_bytes() for n in range(3)]


# Create and list ---------------------------------------------------------------------------------


def test_create_course_is_201_and_stored_for_the_user(owner, server_engine):
    account, http = owner

    response = http.post("/api/courses", json={"title": "  Pottery 101 ", "description": "Clay\nand wheels"})

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["title"], body["description"], body["status"], body["chapters"]) == (
        "Pottery 101", "Clay\nand wheels", "draft", [])
    assert is_utc_timestamp(body["created_at"]) and is_utc_timestamp(body["updated_at"])
    [row] = course_rows(server_engine, account.id)
    assert uuid.UUID(str(row["id"])) == uuid.UUID(body["id"]) and row["title"] == "Pottery 101"  # hex or uuid


def test_list_courses_shows_only_mine_with_counts(owner, stranger, clips):
    _, http = owner
    empty_id, _ = new_course(http, title="Empty")
    full_id, (intro, deep) = new_course(http, "Intro", "Deep dive", title="Full")
    for clip in clips[:2]:
        uploaded(http, full_id, intro, clip)
    uploaded(http, full_id, deep, clips[2])
    new_course(stranger, "Theirs", title="Not mine")

    response = http.get("/api/courses")

    assert response.status_code == 200
    summary = {c["id"]: (c["title"], c["chapter_count"], c["video_count"]) for c in response.json()}
    assert summary == {empty_id: ("Empty", 0, 0), full_id: ("Full", 2, 3)}
    assert all(is_utc_timestamp(c["updated_at"]) for c in response.json())


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("{not json", "application/json"),
        ('{"description": "no title"}', "application/json"),
        ('{"title": 5}', "application/json"),
        ('["Pottery"]', "application/json"),
        ('{"title": "' + "x" * 201 + '"}', "application/json"),
        ('{"title": "ok", "description": "' + "d" * 5001 + '"}', "application/json"),
        ("title=Pottery", "application/x-www-form-urlencoded"),
        ("", "application/json"),
    ],
    ids=["not-json", "no-title", "title-not-text", "array", "title-too-long", "description-too-long", "form", "empty"],
)
def test_a_malformed_course_body_is_422_and_creates_nothing(owner, server_engine, content, content_type):
    _, http = owner

    with nothing_created(server_engine):
        response = http.post("/api/courses", content=content, headers={"content-type": content_type})

    assert_json_error(response, 422)
    assert response.json()["code"] == "invalid_input"


@pytest.mark.parametrize("title", ["", "   ", "bell\x07", "line\nbreak"])
def test_an_unusable_course_title_is_400_and_creates_nothing(owner, server_engine, title):
    _, http = owner

    with nothing_created(server_engine):
        response = http.post("/api/courses", json={"title": title})

    assert "Course title" in assert_json_error(response, 400)


def test_create_course_from_another_site_with_the_cookie_is_403(owner, server_engine):
    _, http = owner

    with nothing_created(server_engine):
        response = http.post("/api/courses", json={"title": "Planted"}, headers={"Origin": EVIL})

    assert "Cross-site" in assert_json_error(response, 403)


# Read one course -------------------------------------------------------------------------------------


def test_get_course_returns_chapters_and_videos_in_order(owner, clips):
    _, http = owner
    course_id, (intro, deep, outro) = new_course(http, "Intro", "Deep dive", "Outro", title="Ordered")
    a = uploaded(http, course_id, deep, clips[0], title="a")
    b = uploaded(http, course_id, intro, clips[1], title="b")
    c = uploaded(http, course_id, deep, clips[2], title="c")

    response = http.get(f"/api/courses/{course_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == course_id and body["title"] == "Ordered"
    assert [(ch["id"], ch["title"], ch["position"]) for ch in body["chapters"]] == [
        (intro, "Intro", 0), (deep, "Deep dive", 1), (outro, "Outro", 2)]
    assert [[(v["id"], v["position"]) for v in ch["videos"]] for ch in body["chapters"]] == [
        [(b["id"], 0)], [(a["id"], 0), (c["id"], 1)], []]
    # Processing moves on meanwhile (stage, status, updated_at): compare what it leaves alone.
    steady = ("id", "course_id", "chapter_id", "title", "filename", "size_bytes", "sha1", "position", "video_url")
    assert {k: body["chapters"][1]["videos"][1][k] for k in steady} == {k: c[k] for k in steady}


def test_someone_elses_course_is_403_and_unchanged(owner, stranger, server_engine):
    _, http = owner
    course_id, _ = new_course(http, "Intro")

    with nothing_created(server_engine):
        read = stranger.get(f"/api/courses/{course_id}")
        added = stranger.post(f"/api/courses/{course_id}/chapters", json={"title": "Sneaky"})

    assert_json_error(read, 403)
    assert_json_error(added, 403)
    assert chapter_rows(server_engine, course_id) == [("Intro", 0)]


@pytest.mark.parametrize(("course_id", "status"), [(str(uuid.uuid4()), 404), ("not-a-uuid", 400)])
def test_an_unknown_or_malformed_course_id_is_refused(owner, server_engine, course_id, status):
    _, http = owner

    with nothing_created(server_engine):
        assert_json_error(http.get(f"/api/courses/{course_id}"), status)
        assert_json_error(http.post(f"/api/courses/{course_id}/chapters", json={"title": "Lost"}), status)


# Chapters -------------------------------------------------------------------------------------------------


def test_add_chapter_appends_at_the_end(owner, server_engine):
    _, http = owner
    course_id, _ = new_course(http, "Intro")

    response = http.post(f"/api/courses/{course_id}/chapters", json={"title": "  Wrap-up "})

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["title"], body["position"], body["videos"]) == ("Wrap-up", 1, [])
    assert chapter_rows(server_engine, course_id) == [("Intro", 0), ("Wrap-up", 1)]
    assert [ch["id"] for ch in http.get(f"/api/courses/{course_id}").json()["chapters"]][-1] == body["id"]


@pytest.mark.parametrize(
    ("content", "status"),
    [("{not json", 422), ("{}", 422), ('{"title": null}', 422), ('{"title": "' + "t" * 201 + '"}', 422),
     ('{"title": ""}', 400), ('{"title": "tab\\u0000"}', 400)],
    ids=["not-json", "no-title", "null-title", "title-too-long", "empty-title", "nul-in-title"],
)
def test_a_bad_chapter_body_is_refused_and_creates_nothing(owner, server_engine, content, status):
    _, http = owner
    course_id, _ = new_course(http, "Intro")

    with nothing_created(server_engine):
        response = http.post(f"/api/courses/{course_id}/chapters", content=content,
                             headers={"content-type": "application/json"})

    assert_json_error(response, status)
    assert chapter_rows(server_engine, course_id) == [("Intro", 0)]


# Who may call ----------------------------------------------------------------------------------------------


def test_every_course_route_without_credentials_is_401(owner, new_client, server_engine):
    _, http = owner
    course_id, _ = new_course(http, "Intro")
    calls = [("GET", "/api/courses", None), ("POST", "/api/courses", {"title": "Anon"}),
             ("GET", f"/api/courses/{course_id}", None),
             ("POST", f"/api/courses/{course_id}/chapters", {"title": "Anon"})]

    with nothing_created(server_engine):
        for method, path, body in calls:
            assert_json_error(new_client().request(method, path, json=body), 401)
            bad_token = new_client(Authorization="Bearer cs_made_up_token")
            assert_json_error(bad_token.request(method, path, json=body), 401)
            bad_cookie = new_client(Cookie="cs_session=made-up")
            assert_json_error(bad_cookie.request(method, path, json=body), 401)


def test_every_course_route_works_with_an_api_token(owner, new_client, server_engine):
    account, http = owner
    created = http.post("/api/tokens", json={"name": "course script"})
    assert created.status_code == 201, created.text
    script = new_client(Authorization=f"Bearer {created.json()['token']}")

    course = script.post("/api/courses", json={"title": "Scripted"}, headers={"Origin": EVIL})
    assert course.status_code == 201, course.text
    course_id = course.json()["id"]
    chapter = script.post(f"/api/courses/{course_id}/chapters", json={"title": "One"})
    assert chapter.status_code == 201, chapter.text
    listed = script.get("/api/courses")
    tree = script.get(f"/api/courses/{course_id}")

    assert [c["id"] for c in listed.json()] == [course_id]
    assert [ch["id"] for ch in tree.json()["chapters"]] == [chapter.json()["id"]]
    assert [r["title"] for r in course_rows(server_engine, account.id)] == ["Scripted"]
