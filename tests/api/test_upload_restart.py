"""A resumable upload survives a server restart: parts confirmed before the
restart stay confirmed (the ledger and storage persist), the rest are sent
after it, and the upload completes with the right bytes."""

from __future__ import annotations

import hashlib

from tests.api.test_upload_sessions_api import create_body, send, video_bytes
from tests.api.test_videos_api import new_course
from tests.cli import check_videos
from tests.server import engine_of, wait_processed


def test_upload_resumes_after_the_server_restarts(app_server, make_account, login_as):
    owner = login_as(make_account())
    course_id, (chapter_id,) = new_course(owner, "Restart")
    data = video_bytes(65536 * 4 + 77, seed=7)
    upload = owner.post("/api/uploads", json=create_body(course_id, chapter_id, data)).json()
    for number in (1, 3):
        assert send(owner, upload, data, number).status_code == 200

    app_server.restart()

    # The same client: its log-in session lives in the database, so it survives too.
    resumed = owner.post("/api/uploads", json=create_body(course_id, chapter_id, data))
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["id"] == upload["id"] and resumed.json()["missing_parts"] == [2, 4, 5]
    for number in resumed.json()["missing_parts"]:
        assert send(owner, upload, data, number).status_code == 200
    video = owner.post(f"/api/uploads/{upload['id']}/complete").json()
    assert video["status"] == "processing" and video["size_bytes"] == len(data)
    with engine_of(app_server) as engine:  # the worker the app restarted with processes it
        assert wait_processed(engine, [video["id"]]) == {video["id"]: "ready"}
    assert video["sha1"] == hashlib.sha1(data).hexdigest()
    assert owner.get(video["video_url"]).content == data
    assert check_videos(app_server.env)["ok"]
