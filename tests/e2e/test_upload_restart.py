"""A resumable upload in a real browser survives a restart of the server: parts
confirmed before it stay confirmed (ledger and storage persist), the page lists the
unfinished upload after a reload, and choosing the same file again sends only the
missing parts and completes the same session with the right bytes.

The restart runs against an app of its own (tests.server.separate_app), so the
session's shared app is not disturbed."""

from __future__ import annotations

import hashlib
import math

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import add_chapter, create_course, eventually, sign_up, wait_live
from tests.e2e.test_resumable_uploads import (PART_SIZE, PARTS_URL, HoldBack, _big_video, _confirmed_parts, _sessions,
                                              _unfinished_in_storage, _videos)
from tests.server import engine_of, separate_app


@pytest.fixture(scope="module")
def restartable_app(tmp_path_factory):
    env = {"COURSE_UPLOAD_CHUNK_BYTES": str(PART_SIZE), "COURSE_SIGNUP_RATE_LIMIT": "1000/hour"}
    with separate_app(tmp_path_factory, "upload-restart", env) as server:
        yield server


def test_an_upload_resumes_in_the_page_after_the_server_restarts(page: Page, restartable_app, tmp_path):
    server = restartable_app
    base_url = server.base_url
    sign_up(page, base_url)
    course_id = create_course(page, "Restart course")
    add_chapter(page, "Long takes")
    video = _big_video(tmp_path / "lecture.mp4", seed=11)
    data = video.read_bytes()
    part_count = math.ceil(len(data) / PART_SIZE)
    held = HoldBack(allow=4)
    page.route(PARTS_URL, held)

    page.get_by_label("Upload videos to chapter 1: Long takes").set_input_files(str(video))
    with engine_of(server) as engine:
        session = eventually(
            page, lambda: next((s for s in _sessions(engine, course_id)
                                if len(_confirmed_parts(engine, s["id"])) == 4), None),
            "four confirmed parts",
        )
        confirmed = _confirmed_parts(engine, session["id"])
    assert confirmed == held.allowed
    assert session["status"] == "active" and session["part_count"] == part_count

    server.restart()

    # The page reconnects to the new process; a reload (the page asks first: parts are
    # still being retried) lists the unfinished upload from the server's ledger.
    page.on("dialog", lambda dialog: dialog.accept())
    page.reload()
    wait_live(page)
    percent = len(confirmed) * PART_SIZE * 100 // len(data)
    expect(page.get_by_text(f"lecture.mp4 — {percent}% uploaded, paused")).to_be_visible()
    expect(page.get_by_role("button", name="Resume lecture.mp4")).to_be_visible()

    page.unroute(PARTS_URL, held)
    sent: list[int] = []
    page.on("request", lambda r: sent.append(int(r.url.rsplit("/", 1)[1]))
            if r.method == "PUT" and "/parts/" in r.url else None)
    page.get_by_label("Choose lecture.mp4 to resume").set_input_files(str(video))
    expect(page.get_by_role("progressbar", name="Upload progress of lecture.mp4")).to_have_attribute(
        "aria-valuenow", "100")
    videos = page.get_by_role("list", name="Videos of Long takes")
    expect(videos.get_by_label("Status: Ready")).to_have_count(1)
    expect(page.get_by_role("button", name="Resume lecture.mp4")).to_have_count(0)
    assert set(sent) == set(range(1, part_count + 1)) - confirmed  # only the missing parts went again

    digest = hashlib.sha1(data).hexdigest()
    with engine_of(server) as engine:
        sessions = _sessions(engine, course_id)
        [row] = _videos(engine, course_id)
    assert [(s["id"], s["status"]) for s in sessions] == [(session["id"], "completed")]
    assert (row["filename"], row["status"], row["size_bytes"]) == ("lecture.mp4", "ready", len(data))
    assert row["sha1"] == digest
    stored = server.data_dir / "storage" / row["storage_key"]
    assert stored.stat().st_size == len(data)
    assert hashlib.sha1(stored.read_bytes()).hexdigest() == digest
    assert _unfinished_in_storage(server, {row["storage_key"]}) == []

    page.reload()
    wait_live(page)
    expect(videos.get_by_label("Status: Ready")).to_have_count(1)
    expect(page.get_by_text("uploaded, paused")).to_have_count(0)
