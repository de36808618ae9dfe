"""The course itself in a real browser: title and description edited in the
editor, publishing and unpublishing, and deleting the course from the dashboard
(with its chapters, videos and stored files). Each change is checked in the
page, after a reload and in the database (the page shows a change before the
database has it, so the database is polled)."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.e2e.conftest import add_chapter, create_course, eventually, open_editor, seed_course, sign_up, wait_live


def _db_course(engine, course_id: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT title, description, status FROM courses WHERE id = :c"),
                           {"c": course_id.replace("-", "")}).mappings().first()
        return dict(row) if row else None


def _count(engine, table: str, course_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE course_id = :c"),
                            {"c": course_id.replace("-", "")}).scalar_one()


def _card(page: Page, title: str):
    return page.get_by_test_id("course-card").filter(has=page.get_by_role("heading", name=title, exact=True))


def test_title_and_description_are_saved_and_survive_a_reload(page: Page, base_url, server_engine):
    sign_up(page, base_url)
    course_id = create_course(page, "Draft title")

    # The title saves on Enter; the page's heading follows it.
    title = page.get_by_label("Course title")
    title.fill("  Statistics for everyone  ")
    title.press("Enter")
    expect(page.get_by_role("heading", name="Statistics for everyone", level=1)).to_be_visible()
    eventually(page, lambda: _db_course(server_engine, course_id)["title"] == "Statistics for everyone",
                "the database to hold the new title")

    # The description saves on leaving the field, line breaks kept.
    description = page.get_by_label("Description")
    description.fill("Means, medians\nand a little probability.")
    description.press("Tab")
    eventually(page, lambda: _db_course(server_engine, course_id)["description"]
                == "Means, medians\nand a little probability.", "the database to hold the description")

    # An empty title is refused with a message, and the saved one comes back.
    title.fill("   ")
    title.press("Enter")
    alert = page.get_by_role("alert").filter(has_text="Course title cannot be empty.")
    expect(alert).to_be_visible()
    expect(title).to_have_value("Statistics for everyone")
    assert _db_course(server_engine, course_id)["title"] == "Statistics for everyone"

    page.reload()
    wait_live(page)
    expect(page.get_by_role("heading", name="Statistics for everyone", level=1)).to_be_visible()
    expect(page.get_by_label("Course title")).to_have_value("Statistics for everyone")
    expect(page.get_by_label("Description")).to_have_value("Means, medians\nand a little probability.")

    page.get_by_role("link", name="My courses").first.click()
    expect(_card(page, "Statistics for everyone")).to_be_visible()
    expect(page.get_by_role("heading", name="Draft title")).to_have_count(0)


def test_publish_needs_a_chapter_then_publish_and_unpublish(page: Page, base_url, server_engine):
    sign_up(page, base_url)
    course_id = create_course(page, "Publishing course")
    details = page.locator("main")
    expect(details.get_by_text("draft", exact=True)).to_be_visible()

    # Without a chapter the course cannot be published: the badge goes back to draft.
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_role("alert").filter(has_text="Add at least one chapter before publishing.")).to_be_visible()
    expect(details.get_by_text("draft", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Publish", exact=True)).to_be_visible()
    assert _db_course(server_engine, course_id)["status"] == "draft"

    add_chapter(page, "Welcome")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(details.get_by_text("published", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Unpublish")).to_be_visible()
    eventually(page, lambda: _db_course(server_engine, course_id)["status"] == "published", "the course published")
    expect(page.get_by_role("alert")).to_have_count(0)  # the earlier refusal is gone

    page.reload()
    wait_live(page)
    expect(details.get_by_text("published", exact=True)).to_be_visible()
    page.get_by_role("link", name="My courses").first.click()
    expect(_card(page, "Publishing course").get_by_text("published", exact=True)).to_be_visible()

    _card(page, "Publishing course").get_by_role("link", name="Open").click()
    wait_live(page)
    page.get_by_role("button", name="Unpublish").click()
    expect(details.get_by_text("draft", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Publish", exact=True)).to_be_visible()
    eventually(page, lambda: _db_course(server_engine, course_id)["status"] == "draft", "the course back to draft")
    page.reload()
    wait_live(page)
    expect(details.get_by_text("draft", exact=True)).to_be_visible()


def test_deleting_a_course_from_the_dashboard_asks_first_and_removes_everything(
        page: Page, base_url, clip, app_server, server_engine):
    sign_up(page, base_url)
    doomed = seed_course(page, base_url, "Course to delete", {"Only chapter": ["first", "second"]}, clip)
    kept = seed_course(page, base_url, "Course to keep", {"Kept chapter": ["kept"]}, clip)
    with server_engine.connect() as conn:
        keys = dict(conn.execute(sa.text("SELECT title, storage_key FROM videos WHERE course_id IN (:a, :b)"),
                                 {"a": doomed["course"].replace("-", ""), "b": kept["course"].replace("-", "")}).all())
    storage = app_server.data_dir / "storage"
    assert all((storage / key).exists() for key in keys.values())
    page.goto(f"{base_url}/dashboard")
    wait_live(page)
    card = _card(page, "Course to delete")
    expect(card).to_contain_text("1 chapters · 2 videos")

    # Cancel keeps it.
    card.get_by_role("button", name="Delete course Course to delete").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("“Course to delete” and its chapters will be removed for good.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("course-card")).to_have_count(2)
    assert _db_course(server_engine, doomed["course"]) is not None

    card.get_by_role("button", name="Delete course Course to delete").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Delete course").click()
    expect(page.get_by_test_id("course-card")).to_have_count(1)
    expect(_card(page, "Course to keep")).to_be_visible()
    eventually(page, lambda: _db_course(server_engine, doomed["course"]) is None, "the course row to go")
    assert _count(server_engine, "chapters", doomed["course"]) == 0
    assert _count(server_engine, "videos", doomed["course"]) == 0
    # The files go through the outbox (carried out by the app's upkeep task).
    eventually(page, lambda: not any((storage / keys[t]).exists() for t in ("first", "second")),
                "storage to delete the course's two files", timeout=60)
    assert (storage / keys["kept"]).exists()
    assert _db_course(server_engine, kept["course"]) is not None

    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("course-card")).to_have_count(1)
    page.goto(f"{base_url}/courses/{doomed['course']}")
    wait_live(page)
    expect(page.get_by_role("alert")).to_contain_text("does not exist or you do not have access")
    open_editor(page, base_url, kept["course"])
    expect(page.get_by_role("heading", name="Course to keep", level=1)).to_be_visible()
