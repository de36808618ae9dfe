"""The course trash in a real browser: a deleted video waits in the Trash page with
its size, dates and the quota note; Restore brings it back and it plays again;
what outlives the trash's time is purged by the sweep (files and all)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.e2e.conftest import chapter, eventually, open_editor, seed_course, sign_up, video_titles, wait_live


def _row(engine, video_id: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT storage_key, deleted_at FROM videos WHERE id = :id"),
                                 {"id": video_id.replace("-", "")}).mappings().one())


def _trash_video(page: Page, title: str) -> None:
    page.get_by_role("button", name=f"Delete video {title}").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text(f"“{title}” will leave the course. It can be restored from the course's Trash "
                                    "for 30 days.")
    confirm.get_by_role("button", name="Move to trash").click()


def _course(page: Page, base_url, clip, server_engine, titles: list[str]) -> tuple[dict, dict[str, str]]:
    """A new instructor's course with one chapter of these videos, open in the editor;
    (what seed_course made, {title: storage key})."""
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Trash course", {"Basics": titles}, clip)
    open_editor(page, base_url, made["course"])
    return made, {t: _row(server_engine, made["videos"][t])["storage_key"] for t in titles}


def _open_trash(page: Page) -> None:
    page.get_by_role("link", name="Trash of this course").click()
    wait_live(page)
    expect(page.get_by_role("heading", name="Trash · Trash course")).to_be_visible()


def test_a_deleted_video_waits_in_the_trash_and_plays_again_once_restored(
        page: Page, base_url, clip, server_engine, app_server):
    made, keys = _course(page, base_url, clip, server_engine, ["welcome", "setup", "next"])
    key = keys["welcome"]

    _trash_video(page, "welcome")
    expect(chapter(page, "Basics").get_by_test_id("video-row")).to_have_count(2)
    eventually(page, lambda: _row(server_engine, made["videos"]["welcome"])["deleted_at"] is not None,
                "the database to hold the video in the trash")
    assert (app_server.data_dir / "storage" / key).stat().st_size == len(clip)

    _open_trash(page)
    item = page.get_by_test_id("trash-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("welcome")
    expect(item).to_contain_text("in “Basics”")
    size = f"{len(clip) / 1024:.1f} KiB"
    expect(item).to_contain_text(size)
    today = datetime.now(timezone.utc)
    expect(item).to_contain_text(f"Deleted {today:%Y-%m-%d}")
    expect(item).to_contain_text(f"deleted for good on {today + timedelta(days=30):%Y-%m-%d}")
    note = page.get_by_test_id("trash-quota-note")
    expect(note).to_contain_text("stay here for 30 days")
    expect(note).to_contain_text(f"still count toward your storage quota: {size} in this course's trash")

    item.get_by_role("button", name="Restore welcome").click()
    expect(page.get_by_role("status").filter(has_text="“welcome” is back in the course.")).to_be_visible()
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
    assert _row(server_engine, made["videos"]["welcome"])["deleted_at"] is None

    page.get_by_role("link", name="Back to the course").click()
    wait_live(page)
    expect(chapter(page, "Basics").get_by_test_id("video-row")).to_have_count(3)
    assert video_titles(page, "Basics") == ["setup", "next", "welcome"]  # back at the end of its chapter
    page.get_by_role("button", name="Play welcome").click()
    expect(page.get_by_role("heading", name="Now playing: welcome")).to_be_visible()
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 1 && v.duration > 0; }")


def test_delete_forever_asks_first_then_the_file_is_gone(page: Page, base_url, clip, server_engine, app_server):
    made, keys = _course(page, base_url, clip, server_engine, ["doomed", "kept"])
    storage = app_server.data_dir / "storage"
    doomed, kept = keys["doomed"], keys["kept"]
    _trash_video(page, "doomed")
    expect(chapter(page, "Basics").get_by_test_id("video-row")).to_have_count(1)
    _open_trash(page)

    page.get_by_role("button", name="Delete forever doomed").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("“doomed” will be deleted for good, with its stored file. This cannot be undone.")
    confirm.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("trash-item")).to_have_count(1)
    assert (storage / doomed).exists()

    page.get_by_role("button", name="Delete forever doomed").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Delete forever").click()
    expect(page.get_by_role("status").filter(has_text="“doomed” was deleted for good.")).to_be_visible()
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
    assert not (storage / doomed).exists()  # storage was told before the page said so
    assert (storage / kept).exists()
    with server_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM videos WHERE id = :id"),
                            {"id": made["videos"]["doomed"].replace("-", "")}).scalar_one() == 0


def test_the_sweep_empties_what_outlived_the_trash(page: Page, base_url, clip, server_engine, app_server):
    made, keys = _course(page, base_url, clip, server_engine, ["old", "recent"])
    storage = app_server.data_dir / "storage"
    old, recent = keys["old"], keys["recent"]
    _trash_video(page, "old")
    expect(chapter(page, "Basics").get_by_test_id("video-row")).to_have_count(1)
    _trash_video(page, "recent")
    expect(chapter(page, "Basics").get_by_test_id("video-row")).to_have_count(0)
    eventually(page, lambda: _row(server_engine, made["videos"]["recent"])["deleted_at"] is not None,
                "the database to hold both videos in the trash")
    with server_engine.begin() as conn:  # "old" went to the trash 31 days ago
        conn.execute(sa.text("UPDATE videos SET deleted_at = :when WHERE id = :id"),
                     {"when": datetime.now(timezone.utc) - timedelta(days=31),
                      "id": made["videos"]["old"].replace("-", "")})
    _open_trash(page)
    expect(page.get_by_test_id("trash-item")).to_have_count(2)

    result = subprocess.run([str(Path(sys.executable).parent / "course-app"), "sweep-trash"], env=app_server.env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "Purged 1 video(s) and 0 chapter(s)" in result.stdout
    assert not (storage / old).exists() and (storage / recent).exists()
    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("trash-item")).to_have_count(1)
    expect(page.get_by_test_id("trash-item")).to_contain_text("recent")
