"""Many uploads into one chapter at the same moment, against the running app:
every request succeeds and the chapter's order in the app's database is 0..n-1
(each upload takes its course's write lock before it picks a position)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid

import httpx
import pytest
import sqlalchemy as sa

from tests.api.support import assert_no_internals
from tests.api.test_upload_sessions_api import video_bytes
from tests.api.test_videos_api import MULTIPART, multipart, new_course
from tests.media import make_video
from tests.server import wait_processed

N = 50  # within the per-user upload limit (60 a minute) of the session's app


def chapter_order(engine, chapter_id: str) -> list[tuple[str, int, str]]:
    """(id, position, status) of the chapter's videos in the app's database, in order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, position, status FROM videos WHERE chapter_id = :chapter ORDER BY position"),
            {"chapter": uuid.UUID(chapter_id).hex},
        )
        return [(uuid.UUID(str(r[0])).hex, r[1], r[2]) for r in rows]


async def fire(client: httpx.Client, requests: list[dict]) -> list[httpx.Response]:
    """Send every request at once over its own connection, with ``client``'s log-in."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=client.base_url, cookies=client.cookies, timeout=120, limits=limits) as http:
        return await asyncio.gather(*(http.request(**request) for request in requests))


def assert_all_created(responses: list[httpx.Response]) -> None:
    statuses = [r.status_code for r in responses]
    failed = [r for r in responses if r.status_code != 201]
    assert not failed, f"{len(failed)} of {len(responses)} failed ({statuses}); first: {failed[0].text[:300]}"
    for response in responses:
        assert_no_internals(response)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1, seed=31).read_bytes()


def test_simultaneous_single_request_uploads_into_one_chapter(client, signed_up, server_engine, clip):
    course_id, (chapter_id,) = new_course(client, "Busy")
    requests = [
        {"method": "POST", "url": "/api/upload", "headers": {"content-type": MULTIPART},
         "content": multipart([("course_id", course_id), ("chapter_id", chapter_id)], clip, filename=f"clip-{i}.mp4")}
        for i in range(N)
    ]

    responses = asyncio.run(fire(client, requests))

    assert_all_created(responses)
    created = {uuid.UUID(r.json()["id"]).hex for r in responses}
    order = chapter_order(server_engine, chapter_id)
    assert [position for _, position, _ in order] == list(range(N))
    assert {video_id for video_id, _, _ in order} == created
    assert set(wait_processed(server_engine, created).values()) == {"ready"}


def test_simultaneous_resumable_starts_into_one_chapter(client, signed_up, server_engine):
    course_id, (chapter_id,) = new_course(client, "Busy")
    files = [video_bytes(70_000, seed=100 + i) for i in range(N)]  # distinct files, so none resumes another
    requests = [
        {"method": "POST", "url": "/api/uploads", "json": {
            "course_id": course_id, "chapter_id": chapter_id, "filename": f"lecture-{i}.mp4", "size": len(data),
            "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(), "head": base64.b64encode(data[:8192]).decode(),
        }}
        for i, data in enumerate(files)
    ]

    responses = asyncio.run(fire(client, requests))

    assert_all_created(responses)
    assert len({r.json()["id"] for r in responses}) == N
    order = chapter_order(server_engine, chapter_id)
    assert [position for _, position, _ in order] == list(range(N))
    assert {video_id for video_id, _, _ in order} == {uuid.UUID(r.json()["video_id"]).hex for r in responses}
    assert {status for _, _, status in order} == {"uploading"}
