"""A chapter's videos in a real browser: renaming a video in place (Enter saves),
and deleting a chapter that holds videos, which moves it and them to the course
trash (their stored files stay) until it is restored."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (chapter, eventually, expect_chapters, open_editor, seed_course, sign_up, video_titles,
                                wait_live)


def _db_videos(engine, course_id: str) -> dict[str, tuple[str, str]]:
    """video id -> (title, chapter title) of the live (not trashed) videos."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT v.id, v.title, c.title FROM videos v JOIN chapters c ON c.id = v.chapter_id "
                    "WHERE v.course_id = :c AND v.deleted_at IS NULL"), {"c": course_id.replace("-", "")})
        return {str(row[0]).replace("-", ""): (row[1], row[2]) for row in rows}


def _key(video_id: str) -> str:
    return video_id.replace("-", "")


def _stored(storage, key: str) -> list[str]:
    """The files storage keeps for one object (the data and anything beside it)."""
    folder = (storage / key).parent
    return sorted(p.name for p in folder.glob(f"{(storage / key).name}*")) if folder.exists() else []


def test_a_video_is_renamed_in_place_with_enter(page: Page, base_url, clip, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Rename course", {"Basics": ["intro", "setup"]}, clip)
    open_editor(page, base_url, made["course"])
    assert video_titles(page, "Basics") == ["intro", "setup"]

    field = page.get_by_label("Title of setup.mp4", exact=True)
    field.fill("  Installing the tools  ")
    field.press("Enter")
    expect(field).not_to_be_focused()
    expect(page.get_by_role("button", name="Play Installing the tools")).to_be_visible()
    eventually(page, lambda: _db_videos(server_engine, made["course"])[_key(made["videos"]["setup"])]
                == ("Installing the tools", "Basics"), "the database to hold the new title")
    assert _db_videos(server_engine, made["course"])[_key(made["videos"]["intro"])] == ("intro", "Basics")

    # An empty title is refused with a message next to the row, and undone.
    field.fill("")
    field.press("Enter")
    expect(chapter(page, "Basics").get_by_role("alert")).to_contain_text("Video title cannot be empty.")
    expect(page.get_by_label("Title of setup.mp4", exact=True)).to_have_value("Installing the tools")
    assert _db_videos(server_engine, made["course"])[_key(made["videos"]["setup"])][0] == "Installing the tools"

    page.reload()
    wait_live(page)
    assert video_titles(page, "Basics") == ["intro", "Installing the tools"]


def test_a_deleted_chapter_goes_to_the_trash_with_its_videos_and_comes_back(
        page: Page, base_url, clip, app_server, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Chapter course", {"Keep": ["kept"], "Drop": ["gone one", "gone two"]}, clip)
    with server_engine.connect() as conn:
        keys = dict(conn.execute(sa.text("SELECT title, storage_key FROM videos WHERE course_id = :c"),
                                 {"c": made["course"].replace("-", "")}).all())
    storage = app_server.data_dir / "storage"
    assert all(_stored(storage, key) for key in keys.values())
    open_editor(page, base_url, made["course"])
    expect_chapters(page, ["Keep", "Drop"])

    page.get_by_role("button", name="Delete Drop", exact=True).click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_have_accessible_name("Move this chapter to the trash?")
    expect(confirm).to_contain_text("“Drop” and its 2 videos will leave the course. It can be restored from the "
                                    "course's Trash for 30 days.")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    expect_chapters(page, ["Keep", "Drop"])
    assert len(_db_videos(server_engine, made["course"])) == 3

    page.get_by_role("button", name="Delete Drop", exact=True).click()
    page.get_by_role("alertdialog").get_by_role("button", name="Move to trash").click()
    expect_chapters(page, ["Keep"])
    eventually(page, lambda: list(_db_videos(server_engine, made["course"]).values()) == [("kept", "Keep")],
                "the database to show only the kept video")
    assert all(_stored(storage, key) for key in keys.values())  # the files stay while in the trash
    page.reload()
    wait_live(page)
    expect_chapters(page, ["Keep"])

    # The trash lists it with its videos; Restore brings all of it back, at the end.
    page.get_by_role("link", name="Trash of this course").click()
    item = page.get_by_test_id("trash-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Drop")
    expect(item).to_contain_text("chapter, 2 videos")
    item.get_by_role("button", name="Restore Drop").click()
    expect(page.get_by_role("status").filter(has_text="“Drop” is back in the course.")).to_be_visible()
    expect(page.get_by_text("The trash is empty.")).to_be_visible()
    page.get_by_role("link", name="Back to the course").click()
    wait_live(page)
    expect_chapters(page, ["Keep", "Drop"])
    page.get_by_role("button", name="Expand all").click()
    expect(chapter(page, "Drop").get_by_test_id("video-row")).to_have_count(2)
    assert video_titles(page, "Drop") == ["gone one", "gone two"]
