"""Resumable uploads in a real browser: parts held back by the network, a reload
in the middle, resume from the server's ledger, pause and resume across pages,
cancel everything. The session's app server uses 64 KiB parts
(COURSE_UPLOAD_CHUNK_BYTES in tests/conftest.py), so a 1-2 MB video has many."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import Page, Route, expect

from course_app.storage.local import LocalStorage
from tests.e2e.conftest import add_chapter, create_course, eventually, sign_up, wait_live
from tests.media import make_video

PART_SIZE = 65536
PARTS_URL = "**/api/uploads/*/parts/*"


def _big_video(path: Path, seed: int) -> Path:
    video = make_video(path, seconds=3, size=(320, 240), seed=seed)  # about 1.2 MB, 20 parts
    assert video.stat().st_size > 1_000_000
    return video


def _part_number(route_or_request) -> int:
    return int(route_or_request.url.rsplit("/", 1)[1])


class HoldBack:
    """Lets the first ``allow`` distinct parts through; every other part fails as
    if the network had dropped (the uploader retries it with backoff)."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.allowed: set[int] = set()

    def __call__(self, route: Route) -> None:
        number = _part_number(route.request)
        if number in self.allowed or len(self.allowed) < self.allow:
            self.allowed.add(number)
            route.continue_()
        else:
            route.abort()


def _sessions(engine, course_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, filename, status, size_bytes, part_count, fingerprint, storage_key, storage_upload_id "
                    "FROM upload_sessions WHERE course_id = :c ORDER BY created_at"),
            {"c": course_id.replace("-", "")},
        ).mappings()
        return [dict(r) for r in rows]


def _confirmed_parts(engine, session_id) -> set[int]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(
            sa.text("SELECT number FROM upload_parts WHERE session_id = :s"), {"s": session_id})}


def _videos(engine, course_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, filename, status, size_bytes, sha1, storage_key FROM videos WHERE course_id = :c"),
            {"c": course_id.replace("-", "")},
        ).mappings()
        return [dict(r) for r in rows]


def _unfinished_in_storage(app_server, keys: set[str]) -> list:
    storage = LocalStorage(app_server.data_dir / "storage")
    return [u for u in storage.list_unfinished("videos/") if u.key in keys]


def test_upload_resumes_after_reload_from_confirmed_parts(page: Page, base_url, app_server, server_engine, tmp_path):
    sign_up(page, base_url)
    course_id = create_course(page, "Resumable course")
    add_chapter(page, "Long takes")
    video = _big_video(tmp_path / "lecture.mp4", seed=3)
    size = video.stat().st_size
    part_count = math.ceil(size / PART_SIZE)
    held = HoldBack(allow=5)
    page.route(PARTS_URL, held)

    page.get_by_label("Upload videos to chapter 1: Long takes").set_input_files(str(video))
    expect(page.get_by_role("button", name="Pause upload of lecture.mp4")).to_be_visible()
    session = eventually(
        page, lambda: next((s for s in _sessions(server_engine, course_id)
                            if len(_confirmed_parts(server_engine, s["id"])) == 5), None),
        "five confirmed parts",
    )
    assert session["status"] == "active" and session["part_count"] == part_count and session["size_bytes"] == size
    data = video.read_bytes()
    mib = 1024 * 1024
    assert session["fingerprint"] == f"v1:{size}:{hashlib.sha1(data[:mib] + data[-mib:]).hexdigest()}"
    confirmed = _confirmed_parts(server_engine, session["id"])
    assert confirmed == held.allowed

    # Reload in the middle: the page asks first (parts are still being retried).
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.type)
        dialog.accept()

    page.on("dialog", accept)
    page.reload()
    wait_live(page)
    assert dialogs == ["beforeunload"]

    # The ledger lists the unfinished upload with its confirmed share.
    percent = 5 * PART_SIZE * 100 // size
    expect(page.get_by_text(f"lecture.mp4 — {percent}% uploaded, paused")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Upload progress of lecture.mp4")).to_have_attribute(
        "aria-valuenow", str(percent))
    expect(page.get_by_role("button", name="Resume lecture.mp4")).to_be_visible()
    chapter_list = page.get_by_role("list", name="Videos of Long takes")
    expect(chapter_list.get_by_label("Status: Uploading…")).to_have_count(1)

    # A different file of the same name and size (its last bytes differ) is refused.
    impostor = tmp_path / "other" / "lecture.mp4"
    impostor.parent.mkdir()
    changed = bytearray(data)
    changed[-64:] = bytes(255 - b for b in changed[-64:])
    impostor.write_bytes(bytes(changed))
    page.get_by_label("Choose lecture.mp4 to resume").set_input_files(str(impostor))
    expect(page.get_by_role("alert").filter(has_text="That is not the same file: choose lecture.mp4")).to_be_visible()
    assert [s["id"] for s in _sessions(server_engine, course_id)] == [session["id"]]

    # The right file resumes the same session and sends only the missing parts.
    page.unroute(PARTS_URL, held)
    sent: list[int] = []
    page.on("request", lambda r: sent.append(_part_number(r)) if r.method == "PUT" and "/parts/" in r.url else None)
    page.get_by_label("Choose lecture.mp4 to resume").set_input_files(str(video))
    expect(page.get_by_role("progressbar", name="Upload progress of lecture.mp4")).to_have_attribute(
        "aria-valuenow", "100")
    expect(chapter_list.get_by_label("Status: Ready")).to_have_count(1)
    expect(page.get_by_role("button", name="Resume lecture.mp4")).to_have_count(0)
    assert set(sent) == set(range(1, part_count + 1)) - confirmed

    sessions = _sessions(server_engine, course_id)
    assert [(s["id"], s["status"]) for s in sessions] == [(session["id"], "completed")]
    [row] = _videos(server_engine, course_id)
    digest = hashlib.sha1(data).hexdigest()
    assert (row["filename"], row["status"], row["size_bytes"], row["sha1"]) == ("lecture.mp4", "ready", size, digest)
    stored = app_server.data_dir / "storage" / row["storage_key"]
    assert stored.stat().st_size == size
    assert hashlib.sha1(stored.read_bytes()).hexdigest() == digest
    assert _unfinished_in_storage(app_server, {row["storage_key"]}) == []


def test_paused_upload_survives_page_changes_and_resumes(page: Page, base_url, server_engine, tmp_path):
    sign_up(page, base_url)
    course_id = create_course(page, "Paused course")
    add_chapter(page, "Only chapter")
    video = _big_video(tmp_path / "talk.mp4", seed=7)
    held = HoldBack(allow=3)
    page.route(PARTS_URL, held)

    page.get_by_label("Upload videos to chapter 1: Only chapter").set_input_files(str(video))
    eventually(page, lambda: any(len(_confirmed_parts(server_engine, s["id"])) == 3
                                  for s in _sessions(server_engine, course_id)), "three confirmed parts")
    page.get_by_role("button", name="Pause upload of talk.mp4").click()
    expect(page.get_by_text("Paused at")).to_be_visible()

    # Away to the dashboard and back, inside the single-page app (no reload): the
    # uploader unmounts and mounts again and still shows the paused upload.
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("link", name="← My courses").click()
    expect(page.get_by_role("heading", name="My courses")).to_be_visible()
    page.get_by_role("heading", name="Paused course").click()
    expect(page.get_by_role("heading", name="Paused course", level=1)).to_be_visible()
    wait_live(page)
    assert page.evaluate("window.__sameDocument") is True
    expect(page.get_by_role("button", name="Resume upload of talk.mp4")).to_be_visible()
    expect(page.get_by_role("button", name="Resume talk.mp4")).to_have_count(0)  # not listed twice

    # Resume on a slow line: the row shows percentage, speed and time left, and
    # redraws at least twice a second.
    page.unroute(PARTS_URL, held)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 300 * 1024})
    page.get_by_role("button", name="Resume upload of talk.mp4").click()
    progress_text = page.get_by_text(re.compile(r"^\d+% · [\d.]+ (B|KB|MB)/s · \d+ (s|min) left$"))
    expect(progress_text).to_be_visible()
    changes = page.evaluate("""(node) => new Promise((resolve) => {
        const seen = new Set([node.textContent]);
        const observer = new MutationObserver(() => seen.add(node.textContent));
        observer.observe(node, {characterData: true, childList: true, subtree: true});
        setTimeout(() => { observer.disconnect(); resolve(seen.size); }, 1500);
    })""", progress_text.element_handle())
    assert changes >= 3
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    expect(page.get_by_role("progressbar", name="Upload progress of talk.mp4")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_role("list", name="Videos of Only chapter").get_by_label("Status: Ready")).to_have_count(1)
    [row] = _videos(server_engine, course_id)
    assert (row["status"], row["size_bytes"]) == ("ready", video.stat().st_size)


def test_cancel_all_leaves_nothing_behind(page: Page, base_url, app_server, server_engine, tmp_path):
    sign_up(page, base_url)
    course_id = create_course(page, "Cancelled course")
    add_chapter(page, "Drafts")
    files = [_big_video(tmp_path / "one.mp4", seed=5), _big_video(tmp_path / "two.mp4", seed=6)]
    page.route(PARTS_URL, HoldBack(allow=2))

    page.get_by_label("Upload videos to chapter 1: Drafts").set_input_files([str(f) for f in files])
    sessions = eventually(
        page, lambda: (lambda found: found if len(found) == 2 and all(_confirmed_parts(server_engine, s["id"])
                                                                        for s in found) else None)(
            _sessions(server_engine, course_id)),
        "two sessions with parts stored",
    )
    keys = {s["storage_key"] for s in sessions}
    assert len(_unfinished_in_storage(app_server, keys)) == 2  # the check below can see them
    assert len(_videos(server_engine, course_id)) == 2

    page.get_by_role("button", name="Pause all").click()
    expect(page.get_by_role("button", name=re.compile("^Resume upload of"))).to_have_count(2)
    page.get_by_role("button", name="Resume all").click()
    expect(page.get_by_role("button", name=re.compile("^Pause upload of"))).to_have_count(2)
    page.get_by_role("button", name="Cancel all").click()
    for name in ("one.mp4", "two.mp4"):
        expect(page.get_by_role("progressbar", name=f"Upload progress of {name}")).to_have_count(0)
    eventually(page, lambda: all(s["status"] == "aborted" for s in _sessions(server_engine, course_id)),
                "both sessions aborted")
    assert _videos(server_engine, course_id) == []
    eventually(page, lambda: _unfinished_in_storage(app_server, keys) == [], "storage to drop the parts")
    multipart = app_server.data_dir / "storage" / ".multipart"
    for s in sessions:
        assert not (multipart / s["storage_upload_id"]).exists()

    page.reload()
    wait_live(page)
    expect(page.get_by_text("No videos yet")).to_be_visible()
    expect(page.get_by_text("uploaded, paused")).to_have_count(0)


def test_expired_session_fails_with_its_code_and_retry_starts_again(page: Page, base_url, server_engine, tmp_path):
    sign_up(page, base_url)
    course_id = create_course(page, "Expiring course")
    add_chapter(page, "Only chapter")
    video = _big_video(tmp_path / "intro.mp4", seed=8)
    held = HoldBack(allow=2)
    page.route(PARTS_URL, held)

    page.get_by_label("Upload videos to chapter 1: Only chapter").set_input_files(str(video))
    [session] = eventually(page, lambda: [s for s in _sessions(server_engine, course_id)
                                           if len(_confirmed_parts(server_engine, s["id"])) == 2], "two parts")
    # The upload vanishes on the server (cancelled elsewhere); the parts still being
    # retried then meet a closed session.
    upload_id = uuid.UUID(str(session["id"]))  # SQLite hands back its 32 hex digits, PostgreSQL a UUID
    assert page.request.delete(f"{base_url}/api/uploads/{upload_id}").status == 204
    page.unroute(PARTS_URL, held)
    alert = page.get_by_role("alert").filter(has_text="session_expired")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("cancelled or has expired")

    page.get_by_role("button", name="Retry upload of intro.mp4").click()
    expect(page.get_by_role("progressbar", name="Upload progress of intro.mp4")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_role("list", name="Videos of Only chapter").get_by_label("Status: Ready")).to_have_count(1)
    sessions = _sessions(server_engine, course_id)
    assert [s["status"] for s in sessions] == ["aborted", "completed"]
    [row] = _videos(server_engine, course_id)
    assert (row["status"], row["size_bytes"]) == ("ready", video.stat().st_size)


def test_after_a_reload_one_upload_is_discarded_and_the_other_resumes_by_choosing_it_again(
        page: Page, base_url, app_server, server_engine, tmp_path):
    sign_up(page, base_url)
    course_id = create_course(page, "Two drafts")
    add_chapter(page, "Only chapter")
    keep, drop = _big_video(tmp_path / "keep.mp4", seed=9), _big_video(tmp_path / "drop.mp4", seed=10)
    held = HoldBack(allow=2)  # parts 1 and 2 of each file get through
    page.route(PARTS_URL, held)
    page.get_by_label("Upload videos to chapter 1: Only chapter").set_input_files([str(keep), str(drop)])
    eventually(
        page, lambda: (lambda found: len(found) == 2 and all(len(_confirmed_parts(server_engine, s["id"])) == 2
                                                             for s in found))(_sessions(server_engine, course_id)),
        "two sessions with two parts each",
    )
    page.on("dialog", lambda dialog: dialog.accept())
    page.reload()
    wait_live(page)
    page.unroute(PARTS_URL, held)
    expect(page.get_by_text(re.compile(r"^(keep|drop)\.mp4 — \d+% uploaded, paused$"))).to_have_count(2)

    page.get_by_role("button", name="Discard drop.mp4").click()
    expect(page.get_by_role("button", name="Discard drop.mp4")).to_have_count(0)
    dropped = eventually(page, lambda: [s for s in _sessions(server_engine, course_id) if s["status"] == "aborted"],
                          "the discarded session")
    assert [s["filename"] for s in dropped] == ["drop.mp4"]
    assert [v["filename"] for v in _videos(server_engine, course_id)] == ["keep.mp4"]
    eventually(page, lambda: _unfinished_in_storage(app_server, {dropped[0]["storage_key"]}) == [],
                "storage to drop the discarded parts")

    # The other one, chosen again through the ordinary input, resumes its session.
    page.get_by_label("Upload videos to chapter 1: Only chapter").set_input_files(str(keep))
    expect(page.get_by_role("progressbar", name="Upload progress of keep.mp4")).to_have_attribute("aria-valuenow", "100")
    videos = page.get_by_role("list", name="Videos of Only chapter")
    expect(videos.get_by_label("Status: Ready")).to_have_count(1)
    expect(videos.get_by_test_id("video-row")).to_have_count(1)
    expect(page.get_by_text("uploaded, paused")).to_have_count(0)
    assert sorted(s["status"] for s in _sessions(server_engine, course_id)) == ["aborted", "completed"]
    assert len(_sessions(server_engine, course_id)) == 2  # no third session: the open one was resumed
    [row] = _videos(server_engine, course_id)
    assert (row["filename"], row["status"], row["size_bytes"]) == ("keep.mp4", "ready", keep.stat().st_size)
