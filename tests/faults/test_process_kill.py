"""A real kill: the production app (``reflex run --env prod``) is SIGKILLed while a
slow upload streams in, started again, and ``course-app check-videos --repair``
(the real command, with the app's environment) brings database and storage back
into agreement. Videos finished before the kill play as before, and a resumable
upload in progress at the time is left for the browser to finish.

Its own app build (own REFLEX_WEB_WORKDIR): the first run builds the front end
(a minute or so)."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
import uuid

import httpx
import pytest
import sqlalchemy as sa

from course_app.services import reconcile
from tests.accounts import create_account, logged_in_client
from tests.api.test_upload_sessions_api import video_bytes
from tests.cli import check_videos
from tests.polling import wait_for
from tests.server import engine_of, separate_app, wait_processed
from tests.stored import stored_files

BOUNDARY = "fault-test-3f9c2b"
PART_BYTES = 65536


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with separate_app(tmp_path_factory, "killed-app", {"COURSE_UPLOAD_CHUNK_BYTES": str(PART_BYTES)}) as app:
        yield app


@pytest.fixture(scope="module")
def engine(server):
    with engine_of(server) as engine:
        yield engine


def form_head(course_id: str, chapter_id: str, filename: str) -> bytes:
    fields = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("course_id", course_id), ("chapter_id", chapter_id))
    )
    return fields + (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     "Content-Type: video/mp4\r\n\r\n").encode()


def form_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def test_sigkill_mid_upload_then_check_videos_repair(server, engine):
    http = logged_in_client(server.base_url, create_account(engine))
    course = http.post("/api/courses", json={"title": "Killed"}).json()["id"]
    chapter = http.post(f"/api/courses/{course}/chapters", json={"title": "One"}).json()["id"]

    # Finished before the kill: a single-request upload and a resumable one.
    finished = video_bytes(300_000, seed=1)
    response = http.post("/api/upload", content=form_head(course, chapter, "finished.mp4") + finished + form_tail(),
                         headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status_code == 201, response.text
    finished_video = response.json()
    assert wait_processed(engine, [finished_video["id"]]) == {finished_video["id"]: "ready"}
    resumable = video_bytes(3 * PART_BYTES + 5, seed=2)
    upload = http.post("/api/uploads", json={
        "course_id": course, "chapter_id": chapter, "filename": "resumable.mp4", "size": len(resumable),
        "fingerprint": "v1:" + hashlib.sha1(resumable).hexdigest(),
        "head": base64.b64encode(resumable[:8192]).decode(),
    }).json()
    first = resumable[:PART_BYTES]
    assert http.put(f"/api/uploads/{upload['id']}/parts/1", content=first,
                    headers={"X-Part-SHA1": hashlib.sha1(first).hexdigest()}).status_code == 200

    # A slow upload: 2 MiB arrive, then the client pauses (the server keeps waiting).
    sent_enough, release = threading.Event(), threading.Event()
    slow = video_bytes(8 * 1024 * 1024, seed=3)

    def body():
        yield form_head(course, chapter, "slow.mp4")
        for offset in range(0, len(slow), 256 * 1024):
            if offset == 2 * 1024 * 1024:
                sent_enough.set()
                release.wait(60)
                return
            yield slow[offset:offset + 256 * 1024]

    outcome: dict = {}

    def post_slowly():
        try:
            with httpx.Client(base_url=server.base_url, timeout=60, cookies=http.cookies) as client:
                outcome["response"] = client.post(
                    "/api/upload", content=body(),
                    headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    uploader = threading.Thread(target=post_slowly, daemon=True)
    uploader.start()
    assert sent_enough.wait(30)

    def slow_row():
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT id, status FROM videos WHERE filename = 'slow.mp4'")).first()

    wait_for(lambda: slow_row() is not None and any(".part-" in f for f in stored_files(server)),
             "the slow upload's row and temp file")

    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    release.set()
    uploader.join(30)
    assert "response" not in outcome, "the upload should not have finished"

    row_id, status = slow_row()
    assert status == "uploading"
    temp_files = {f for f in stored_files(server) if ".part-" in f and not f.startswith(".multipart/")}
    assert temp_files, "the kill should have left the half-written temp file"

    server.log.close()
    server.start()

    report = check_videos(server.env, "--grace-minutes", "0")
    assert not report["ok"]
    assert {p["kind"] for p in report["problems"]} == {"stuck_upload", "leftover_file"}

    repaired = check_videos(server.env, "--repair", "--grace-minutes", "0")

    assert repaired["ok"], repaired
    assert {r["kind"] for r in repaired["repairs"]} == {"stuck_upload", "leftover_file"}
    assert all(not r["outcome"].startswith(("failed", "skipped")) for r in repaired["repairs"])
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM videos WHERE id = :id"),
                                     {"id": row_id}).one()
    assert status == "failed" and error == reconcile.STUCK_REASON
    shown = http.get(f"/api/videos/{uuid.UUID(str(row_id))}")  # what the instructor sees
    assert shown.status_code == 200 and shown.json()["status"] == "failed"
    assert shown.json()["error"] == reconcile.STUCK_REASON
    # Storage holds the finished video (file and sidecar) and the open resumable upload's part, nothing else.
    files = stored_files(server)
    finished_keys = finished_video_keys(engine, finished_video["id"])  # the video and its two thumbnails
    assert {f for f in files if not f.startswith(".multipart/")} == {
        name for key in finished_keys for name in (key, key + ".meta.json")}
    assert not any(".part-" in f for f in files)

    # The finished video plays as before; the resumable upload goes on where it was.
    assert http.get(finished_video["video_url"]).content == finished
    resumed = http.post("/api/uploads", json={
        "course_id": course, "chapter_id": chapter, "filename": "resumable.mp4", "size": len(resumable),
        "fingerprint": "v1:" + hashlib.sha1(resumable).hexdigest(),
        "head": base64.b64encode(resumable[:8192]).decode(),
    })
    assert resumed.status_code == 200 and resumed.json()["missing_parts"] == [2, 3, 4]
    for number in (2, 3, 4):
        chunk = resumable[(number - 1) * PART_BYTES: number * PART_BYTES]
        assert http.put(f"/api/uploads/{upload['id']}/parts/{number}", content=chunk,
                        headers={"X-Part-SHA1": hashlib.sha1(chunk).hexdigest()}).status_code == 200
    video = http.post(f"/api/uploads/{upload['id']}/complete").json()
    assert video["status"] == "processing"
    assert wait_processed(engine, [video["id"]]) == {video["id"]: "ready"}
    assert http.get(video["video_url"]).content == resumable

    final = check_videos(server.env)
    assert final["ok"], final
    http.close()


def finished_video_keys(engine, video_id: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT storage_key, thumbnail_small_key, thumbnail_large_key FROM videos "
                                        "WHERE id = :id"), {"id": uuid.UUID(video_id).hex}).one())
