"""A chapter's videos in a real browser: renaming a video in place (Enter saves),
and deleting a chapter that holds videos, which removes their rows and, through
the outbox, their stored files, while the other chapter's stay."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.e2e.conftest import chapter, expect_chapters, open_editor, seed_course, sign_up, video_titles, wait_live
from tests.e2e.test_resumable_uploads import _eventually


def _db_videos(engine, course_id: str) -> dict[str, tuple[str, str]]:
    """video id -> (title, chapter title)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT v.id, v.title, c.title FROM videos v JOIN chapters c ON c.id = v.chapter_id "
                    "WHERE v.course_id = :c"), {"c": course_id.replace("-", "")})
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
    _eventually(page, lambda: _db_videos(server_engine, made["course"])[_key(made["videos"]["setup"])]
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


def test_deleting_a_chapter_with_videos_removes_them_and_their_files(
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
    expect(confirm).to_contain_text("“Drop” and its 2 videos will be removed from the course, with the stored files.")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    expect_chapters(page, ["Keep", "Drop"])
    assert len(_db_videos(server_engine, made["course"])) == 3

    page.get_by_role("button", name="Delete Drop", exact=True).click()
    page.get_by_role("alertdialog").get_by_role("button", name="Delete").click()
    expect_chapters(page, ["Keep"])
    _eventually(page, lambda: list(_db_videos(server_engine, made["course"]).values()) == [("kept", "Keep")],
                "the database to hold only the kept video")
    with server_engine.connect() as conn:
        chapters = [row[0] for row in conn.execute(sa.text("SELECT title FROM chapters WHERE course_id = :c"),
                                                   {"c": made["course"].replace("-", "")})]
    assert chapters == ["Keep"]
    _eventually(page, lambda: not _stored(storage, keys["gone one"]) and not _stored(storage, keys["gone two"]),
                "storage to delete the chapter's files")
    assert _stored(storage, keys["kept"])
    with server_engine.connect() as conn:
        pending = conn.execute(sa.text("SELECT COUNT(*) FROM storage_deletions WHERE storage_key IN (:a, :b)"),
                               {"a": keys["gone one"], "b": keys["gone two"]}).scalar_one()
    assert pending == 0  # storage confirmed, the outbox is done with them

    page.reload()
    wait_live(page)
    expect_chapters(page, ["Keep"])
    assert video_titles(page, "Keep") == ["kept"]
