"""Videos in the editor, in a real browser: upload, play, move, delete, refuse."""

from __future__ import annotations

import os

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.cli import check_videos
from tests.e2e.conftest import add_chapter, create_course, sign_up, wait_live
from tests.media import make_video


def _storage_keys(engine, course_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT title, storage_key FROM videos WHERE course_id = :c"),
                                 {"c": course_id.replace("-", "")}).all())


def _video_rows(engine, course_id: str) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.text("SELECT v.title, v.status, c.title FROM videos v JOIN chapters c ON c.id = v.chapter_id "
                    "WHERE v.course_id = :c AND v.deleted_at IS NULL ORDER BY c.position, v.position"),
            {"c": course_id.replace("-", "")},
        )]


def test_upload_play_move_delete(page: Page, base_url, app_server, server_engine, tmp_path):
    sign_up(page, base_url)
    course_id = create_course(page, "Video course")
    add_chapter(page, "Intro")
    add_chapter(page, "Deep dive")
    first = make_video(tmp_path / "welcome.mp4", seconds=2, seed=1)
    second = make_video(tmp_path / "tour.webm", seconds=2, seed=2, codec="libvpx")

    page.get_by_label("Upload videos to chapter 1: Intro").set_input_files([str(first), str(second)])
    for name in ("welcome.mp4", "tour.webm"):
        expect(page.get_by_role("progressbar", name=f"Upload progress of {name}")).to_have_attribute("aria-valuenow", "100")
    intro = page.get_by_role("list", name="Videos of Intro")
    expect(intro.get_by_test_id("video-row")).to_have_count(2)
    expect(intro.get_by_label("Status: Ready")).to_have_count(2)
    assert _video_rows(server_engine, course_id) == [("welcome", "ready", "Intro"), ("tour", "ready", "Intro")]

    # Play one in the page's player.
    page.get_by_role("button", name="Play welcome").click()
    expect(page.get_by_role("heading", name="Now playing: welcome")).to_be_visible()
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 1 && v.duration > 1; }")

    # Move "tour" to the second chapter.
    page.get_by_role("button", name="Move video tour to another chapter").click()
    page.get_by_role("dialog", name="Move to chapter").get_by_role("button", name="Move to chapter 2: Deep dive").click()
    deep = page.get_by_role("list", name="Videos of Deep dive")
    expect(deep.get_by_test_id("video-row")).to_have_count(1)
    expect(intro.get_by_test_id("video-row")).to_have_count(1)

    keys = _storage_keys(server_engine, course_id)

    # Delete "welcome" after confirming: it goes to the trash.
    page.get_by_role("button", name="Delete video welcome").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Move to trash").click()
    expect(page.get_by_role("list", name="Videos of Intro")).to_have_count(0)
    expect(page.get_by_text("No videos yet").first).to_be_visible()

    page.reload()
    wait_live(page)
    expect(page.get_by_role("list", name="Videos of Deep dive").get_by_test_id("video-row")).to_have_count(1)
    expect(page.get_by_role("list", name="Videos of Intro")).to_have_count(0)
    assert _video_rows(server_engine, course_id) == [("tour", "ready", "Deep dive")]

    report = check_videos(app_server.env)
    assert report["ok"], report
    root = app_server.data_dir / "storage"
    assert (root / keys["welcome"]).stat().st_size == first.stat().st_size  # kept while in the trash

    # Deleted forever from the course's trash: then the file goes.
    page.get_by_role("link", name="Trash of this course").click()
    expect(page.get_by_role("heading", name="Trash · Video course")).to_be_visible()
    wait_live(page)
    page.get_by_role("button", name="Delete forever welcome").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Delete forever").click()
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
    # The page says so once storage has been told (the row leaves the list at once).
    expect(page.get_by_text("“welcome” was deleted for good.")).to_be_visible()
    assert not (root / keys["welcome"]).exists()  # the deleted video's file is gone
    assert (root / keys["tour"]).stat().st_size == second.stat().st_size  # the other one is kept
    assert check_videos(app_server.env)["ok"]


def test_not_a_video_is_refused_and_nothing_is_stored(page: Page, base_url, app_server, server_engine, tmp_path):
    sign_up(page, base_url)
    course_id = create_course(page, "Refusals")
    add_chapter(page, "Only chapter")
    fake = tmp_path / "lecture.mp4"
    fake.write_bytes(b"MZ\x90\x00" + os.urandom(20_000))  # an executable wearing a video's name

    page.get_by_label("Upload videos to chapter 1: Only chapter").set_input_files(str(fake))
    alert = page.get_by_role("alert").filter(has_text="not a video")
    expect(alert).to_be_visible()
    expect(page.get_by_role("button", name="Retry upload of lecture.mp4")).to_be_visible()
    assert _video_rows(server_engine, course_id) == []
    report = check_videos(app_server.env)
    assert report["ok"], report
