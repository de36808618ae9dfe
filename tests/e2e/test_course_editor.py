"""The course editor in a real browser: accounts, chapters, order, refusals."""

from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.db_faults import failing
from tests.e2e.conftest import add_chapter, create_course, eventually, expect_chapters, log_in, sign_up, wait_live


def _db_chapters(engine, course_id: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT title FROM chapters WHERE course_id = :c AND deleted_at IS NULL ORDER BY position"),
            {"c": course_id.replace("-", "")},
        )
        return [row[0] for row in rows]


def test_instructor_builds_a_course_and_the_database_keeps_it(page: Page, base_url, server_engine):
    email = sign_up(page, base_url)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    log_in(page, base_url, email)

    expect(page.get_by_text("You have no courses yet")).to_be_visible()
    course_id = create_course(page, "Intro to Python")
    expect(page.get_by_text("No chapters yet")).to_be_visible()

    for title in ("Setup", "Variables", "Loops"):
        add_chapter(page, title)
    expect_chapters(page, ["Setup", "Variables", "Loops"])

    # Rename: type a new title and press Enter.
    page.get_by_label("Chapter 2 title").fill("Variables and types")
    page.get_by_label("Chapter 2 title").press("Enter")
    expect_chapters(page, ["Setup", "Variables and types", "Loops"])

    # Reorder by keyboard: focus "move down" and press Enter.
    page.get_by_role("button", name="Move Setup down").focus()
    page.keyboard.press("Enter")
    expect_chapters(page, ["Variables and types", "Setup", "Loops"])

    # Reorder by drag and drop: drag "Loops" by its handle onto the first row.
    rows = page.get_by_test_id("chapter-row")
    rows.nth(2).locator("[data-drag-chapter]").drag_to(rows.nth(0))
    expect_chapters(page, ["Loops", "Variables and types", "Setup"])

    # Course details save on leaving the field.
    page.get_by_label("Description").fill("Learn Python from zero.")
    page.get_by_label("Course title").click()
    expect(page.get_by_label("Description")).to_have_value("Learn Python from zero.")

    # Delete asks first; Cancel keeps the chapter.
    page.get_by_role("button", name="Delete Setup").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Setup")
    dialog.get_by_role("button", name="Cancel").click()
    expect_chapters(page, ["Loops", "Variables and types", "Setup"])
    page.get_by_role("button", name="Delete Setup").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Move to trash").click()
    expect_chapters(page, ["Loops", "Variables and types"])

    # The database comes to hold exactly what the page shows (the page shows it
    # first), and a reload shows the database.
    eventually(page, lambda: _db_chapters(server_engine, course_id) == ["Loops", "Variables and types"],
                "the database to hold the two chapters")
    page.reload()
    wait_live(page)
    expect_chapters(page, ["Loops", "Variables and types"])
    expect(page.get_by_label("Description")).to_have_value("Learn Python from zero.")

    # The dashboard counts the chapters.
    page.get_by_role("link", name="My courses").first.click()
    expect(page.get_by_test_id("course-card")).to_contain_text("2 chapters")

    # After logging out, the editor refuses and sends you to log in.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(f"{base_url}/courses/{course_id}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_text("Log in to continue.")).to_be_visible()
    expect(page.get_by_text("Variables and types")).to_have_count(0)


def test_failed_save_is_undone_and_explained(page: Page, base_url, server_engine):
    sign_up(page, base_url)
    create_course(page, "Fault course")
    add_chapter(page, "Alpha")
    add_chapter(page, "Beta")

    # The database refuses these writes, as a broken disk or a lost connection would.
    with failing(server_engine, "fail_rename", "UPDATE OF title", "chapters", when="NEW.title LIKE '%(refused)%'"), \
            failing(server_engine, "fail_reorder", "UPDATE OF position", "chapters",
                    when="NEW.title = 'Beta' AND NEW.position < 0"):
        page.get_by_label("Chapter 1 title").fill("Alpha (refused)")
        page.get_by_label("Chapter 1 title").press("Enter")
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Your last change was undone")
        expect_chapters(page, ["Alpha", "Beta"])

        alert.get_by_role("button", name="Dismiss").click()
        expect(page.get_by_role("alert")).to_have_count(0)

        page.get_by_role("button", name="Move Beta up").click()
        expect(page.get_by_role("alert")).to_contain_text("Your last change was undone")
        expect_chapters(page, ["Alpha", "Beta"])

    page.reload()
    wait_live(page)
    expect_chapters(page, ["Alpha", "Beta"])


def test_another_instructor_cannot_open_the_course(browser, base_url):
    owner = browser.new_context()
    stranger = browser.new_context()
    try:
        owner_page = owner.new_page()
        sign_up(owner_page, base_url)
        course_id = create_course(owner_page, "Private course")
        add_chapter(owner_page, "Secret chapter")

        page = stranger.new_page()
        sign_up(page, base_url)
        expect(page.get_by_text("Private course")).to_have_count(0)
        page.goto(f"{base_url}/courses/{course_id}")
        wait_live(page)
        expect(page.get_by_role("alert")).to_contain_text("does not exist or you do not have access")
        expect(page.get_by_text("Private course")).to_have_count(0)
        expect(page.get_by_test_id("chapter-row")).to_have_count(0)
    finally:
        owner.close()
        stranger.close()
