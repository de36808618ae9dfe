"""course_app/api/deps.py's StorageDep and course_app/api/errors.py: routes reach
storage only through the dependency (so a test can swap it), and every refusal,
wherever it is built, has the same JSON shape."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from course_app.api import build_api
from course_app.api.deps import current_storage, current_user
from course_app.models import User
from course_app.services import courses, videos
from course_app.storage.local import LocalStorage
from tests.processed import as_if_processed

ELSEWHERE = "https://cdn.example.test/signed"


class SignedLinks(LocalStorage):
    """A LocalStorage that plays videos through a link, like B2 does."""

    def download_url(self, key: str, file_id: str, *, valid_seconds: int = 300) -> str | None:
        return f"{ELSEWHERE}/{key}"


@pytest.fixture
def app(app_database):
    return build_api()


def call(app, method: str, url: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


def ready_video(session, storage, user):
    course = courses.create_course(session=session, user=user, title="Course")
    chapter = courses.add_chapter(session=session, user=user, course_id=course.id, title="Intro")
    video = videos.begin_upload(session=session, user=user, course_id=course.id, chapter_id=chapter.id,
                                filename="clip.mp4", title=None, content_type="video/mp4", declared_size=None,
                                max_bytes=10_000)
    session.commit()
    stored = storage.put_stream(video.storage_key, [b"\x00" * 100], content_type="video/mp4")
    videos.finish_upload(session=session, video_id=video.id, stored=stored)
    as_if_processed(session, video.id)
    session.commit()
    return video


def test_a_route_uses_the_storage_the_dependency_gives(app, session, make_user, tmp_path):
    user = make_user()
    storage = SignedLinks(tmp_path / "storage")
    video = ready_video(session, storage, user)
    app.dependency_overrides[current_user] = lambda: user
    app.dependency_overrides[current_storage] = lambda: storage

    response = call(app, "GET", f"/api/videos/{video.id}/stream")
    assert response.status_code == 307
    assert response.headers["location"] == f"{ELSEWHERE}/{video.storage_key}"


def test_refusals_from_every_door_share_one_shape(app):
    answers = {
        "domain error": call(app, "GET", "/api/courses"),
        "no route": call(app, "GET", "/api/nowhere"),
        "body cap (middleware)": call(app, "POST", "/api/courses", content=b"x", headers={"content-length": "x"}),
    }
    app.dependency_overrides[current_user] = lambda: User(id=1, email="a@example.com", password_hash="x")
    answers["validation"] = call(app, "POST", "/api/courses", json={})
    for door, response in answers.items():
        body = response.json()
        assert set(body) == {"error", "code", "retryable"}, door
        assert isinstance(body["error"], str) and body["error"] and isinstance(body["retryable"], bool), door
    assert [r.status_code for r in answers.values()] == [401, 404, 413, 422]
