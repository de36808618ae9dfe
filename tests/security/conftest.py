"""The security suite's world: two instructors on the session's running app.

A (the victim) owns a course with two chapters, three ready videos, an open
resumable upload with one confirmed part, an API token, and in the course's
trash a video and a chapter with its video. B (the stranger)
owns the same kinds of things. Every attack is made by B or by an anonymous
visitor against A's ids, and must change nothing and show nothing of A's."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from course_app.db import make_engine, session_scope
from course_app.services import trash, users
from tests.accounts import create_account, logged_in_client
from tests.api.conftest import login_as, make_account, new_client  # noqa: F401  (fixtures)
from tests.media import make_video
from tests.security.support import Snapshot, diff, take_snapshot
from tests.server import wait_processed


@dataclass
class Person:
    id: int
    email: str
    http: httpx.Client
    session_token: str
    tag: str
    course: str = ""
    chapters: list[str] = field(default_factory=list)
    videos: dict[str, list[str]] = field(default_factory=dict)  # chapter id -> video ids in order
    trashed_video: str = ""
    trashed_chapter: str = ""
    upload: str = ""
    token_id: int = 0
    token_value: str = ""
    texts: dict[str, str] = field(default_factory=dict)  # name -> a distinctive text of this person's data

    @property
    def all_videos(self) -> list[str]:
        return [v for ids in self.videos.values() for v in ids]


@dataclass
class World:
    a: Person
    b: Person
    base_url: str
    storage_root: object
    engine: object
    server_env: dict

    def snapshot(self) -> Snapshot:
        return take_snapshot(self.engine, self.storage_root)

    def unchanged(self, before: Snapshot, *, may_create_for: int | None = None) -> list[str]:
        return diff(before, self.snapshot(), may_create_for=may_create_for, protected_users=[self.a.id, self.b.id])

    def secrets_of_a(self) -> dict[str, str]:
        """What B or an anonymous visitor must never receive."""
        return {**self.a.texts, "A's e-mail": self.a.email, "A's API token": self.a.token_value,
                "A's session token": self.a.session_token, **self.server_secrets()}

    def server_secrets(self) -> dict[str, str]:
        """What no browser may ever receive, whoever it belongs to."""
        env = self.server_env
        return {
            "password hash": "$argon2",
            "secret key": env["COURSE_SECRET_KEY"],
            "B2 key id": env.get("COURSE_B2_KEY_ID", ""),
            "B2 application key": env.get("COURSE_B2_APPLICATION_KEY", ""),
            "database URL": env["COURSE_DATABASE_URL"],
            "metrics token": env.get("COURSE_METRICS_TOKEN", ""),
            "B's session token": self.b.session_token,
        }


@pytest.fixture(scope="session")
def security_engine(app_server):
    engine = make_engine(app_server.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("security-clip") / "clip.mp4", seconds=1, seed=21).read_bytes()


def _person(app_server, engine, label: str) -> Person:
    tag = uuid.uuid4().hex[:10]
    account = create_account(engine, f"{label}-{tag}@example.com")
    http = logged_in_client(app_server.base_url, account)
    return Person(id=account.id, email=account.email, http=http, session_token=http.cookies["cs_session"], tag=tag)


def _upload(person: Person, chapter: str, data: bytes, filename: str, title: str) -> str:
    from tests.api.test_videos_api import MULTIPART, multipart

    fields = [("course_id", person.course), ("chapter_id", chapter), ("title", title)]
    response = person.http.post("/api/upload", content=multipart(fields, data, filename=filename),
                                headers={"content-type": MULTIPART})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _furnish(person: Person, engine, label: str, clip: bytes, *, chapters: int) -> None:
    """A course, chapters, ready videos, an open resumable upload and an API token,
    each with a text nobody else has."""
    t = person.tag
    person.texts = {"course title": f"{label} course {t}", "course description": f"{label} description {t}"}
    response = person.http.post("/api/courses", json={"title": person.texts["course title"],
                                                      "description": person.texts["course description"]})
    assert response.status_code == 201, response.text
    person.course = response.json()["id"]
    for number in range(1, chapters + 1):
        title = f"{label} chapter {number} {t}"
        response = person.http.post(f"/api/courses/{person.course}/chapters", json={"title": title})
        assert response.status_code == 201, response.text
        person.chapters.append(response.json()["id"])
        person.texts[f"chapter {number} title"] = title
    plan = [(person.chapters[0], 1), (person.chapters[0], 2)] + ([(person.chapters[1], 3)] if chapters > 1 else [])
    for chapter, number in plan:
        filename, title = f"{label.lower()}-file-{number}-{t}.mp4", f"{label} video {number} {t}"
        person.videos.setdefault(chapter, []).append(_upload(person, chapter, clip, filename, title))
        person.texts[f"video {number} file name"] = filename
        person.texts[f"video {number} title"] = title
    # An open resumable upload (three 64 KiB parts at the test server's part size), part 1 confirmed.
    data = clip + os.urandom(65536 * 2 + 100)
    filename = f"{label.lower()}-resumable-{t}.mp4"
    response = person.http.post("/api/uploads", json={
        "course_id": person.course, "chapter_id": person.chapters[0], "filename": filename, "size": len(data),
        "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(), "head": base64.b64encode(data[:8192]).decode(),
    })
    assert response.status_code == 201, response.text
    upload = response.json()
    person.upload = upload["id"]
    person.texts["resumable file name"] = filename
    part = data[:upload["chunk_size"]]
    response = person.http.put(f"/api/uploads/{person.upload}/parts/1", content=part,
                               headers={"X-Part-SHA1": hashlib.sha1(part).hexdigest()})
    assert response.status_code == 200, response.text
    # The trash: a video on its own (through the API), and a chapter with its video.
    person.trashed_video = _upload(person, person.chapters[0], clip, f"{label.lower()}-trashed-{t}.mp4",
                                   f"{label} trashed video {t}")
    assert person.http.delete(f"/api/videos/{person.trashed_video}").status_code == 204
    response = person.http.post(f"/api/courses/{person.course}/chapters", json={"title": f"{label} trashed chapter {t}"})
    person.trashed_chapter = response.json()["id"]
    _upload(person, person.trashed_chapter, clip, f"{label.lower()}-in-trashed-{t}.mp4", f"{label} in trash {t}")
    with session_scope(engine) as session:
        trash.trash_chapter(session=session, user=users.get_user_by_email(session=session, email=person.email),
                            chapter_id=person.trashed_chapter)
    person.texts.update({"trashed video title": f"{label} trashed video {t}",
                         "trashed chapter title": f"{label} trashed chapter {t}"})
    person.texts["token name"] = f"{label} token {t}"
    response = person.http.post("/api/tokens", json={"name": person.texts["token name"]})
    assert response.status_code == 201, response.text
    person.token_id, person.token_value = response.json()["id"], response.json()["token"]


@pytest.fixture(scope="session")
def world(app_server, security_engine, clip) -> World:
    a = _person(app_server, security_engine, "victim")
    b = _person(app_server, security_engine, "stranger")
    _furnish(a, security_engine, "Victim", clip, chapters=2)
    _furnish(b, security_engine, "Stranger", clip, chapters=1)
    # Nothing changes under the snapshots by itself: every video is processed first.
    wait_processed(security_engine)
    yield World(a=a, b=b, base_url=app_server.base_url, storage_root=app_server.data_dir / "storage",
                engine=security_engine, server_env=app_server.env)
    a.http.close()
    b.http.close()


@pytest.fixture
def anonymous(app_server):
    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        yield http
