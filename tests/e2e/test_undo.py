"""Undo in a real browser: after a rename, a reorder or a move, the toast's Undo
puts it back (on the page and in the database); once the course has changed
elsewhere, Undo is refused with a message instead of overwriting that change."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from course_app.state.undo import EXPIRED, GRACE_SECONDS, UNDO_SECONDS
from tests.e2e.conftest import chapter, expect_chapters, open_editor, seed_course, sign_up
from tests.e2e.test_outline import _expect_db_order


def _undo(page: Page, label: str) -> None:
    toast = page.get_by_role("status").filter(has_text=label)
    expect(toast).to_be_visible()
    toast.get_by_role("button", name="Undo").click()
    expect(toast).to_have_count(0)


def test_undo_reverts_a_rename_a_reorder_and_a_move(page: Page, base_url, clip, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Undo", {"One": ["a", "b"], "Two": ["c"]}, clip)
    open_editor(page, base_url, made["course"])
    page.get_by_role("button", name="Expand all").click()

    page.get_by_label("Chapter 1 title").fill("First")
    page.get_by_label("Chapter 1 title").press("Enter")
    _undo(page, "Chapter renamed")
    expect(page.get_by_label("Chapter 1 title")).to_have_value("One")

    page.get_by_role("button", name="Move One down").click()
    expect_chapters(page, ["Two", "One"])
    _undo(page, "Chapter moved")
    expect_chapters(page, ["One", "Two"])

    page.get_by_role("button", name="Move video a to another chapter").click()
    page.get_by_role("dialog").get_by_role("button", name="Move to chapter 2: Two").click()
    _expect_db_order(page, server_engine, made["course"], {"One": ["b"], "Two": ["c", "a"]})
    _undo(page, "Video moved")
    _expect_db_order(page, server_engine, made["course"], {"One": ["a", "b"], "Two": ["c"]})
    expect(chapter(page, "One").get_by_test_id("video-row")).to_have_count(2)

    page.get_by_label("Course title").fill("Renamed course")
    page.get_by_label("Description").click()
    _undo(page, "Course title changed")
    expect(page.get_by_role("heading", name="Undo", level=1)).to_be_visible()


def test_undo_is_refused_once_the_course_changed_elsewhere(page: Page, base_url, clip):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Refused", {"One": [], "Two": []}, clip)
    open_editor(page, base_url, made["course"])
    page.get_by_label("Chapter 1 title").fill("First")
    page.get_by_label("Chapter 1 title").press("Enter")
    expect(page.get_by_role("status").filter(has_text="Chapter renamed")).to_be_visible()

    response = page.request.patch(f"{base_url}/api/chapters/{made['chapters']['Two']}", data={"title": "Second"})
    assert response.status == 200, response.text()
    expect(page.get_by_label("Chapter 2 title")).to_have_value("Second")  # live sync brought it here

    page.get_by_role("status").get_by_role("button", name="Undo").click()
    expect(page.get_by_role("alert").filter(has_text="can no longer be undone")).to_be_visible()
    expect(page.get_by_label("Chapter 1 title")).to_have_value("First")


def test_the_toast_hides_itself_and_a_late_undo_is_refused(page: Page, base_url, clip):
    """The browser hides the toast after UNDO_SECONDS (no socket event for it); an
    Undo sent later anyway is refused, and the next edit's toast shows again."""
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Late", {"One": [], "Two": []}, clip)
    open_editor(page, base_url, made["course"])
    title = page.get_by_label("Chapter 1 title")
    title.fill("First")
    title.press("Enter")
    renamed = time.monotonic()
    toast = page.get_by_role("status").filter(has_text="Chapter renamed")
    expect(toast).to_be_visible()
    expect(toast).to_be_hidden(timeout=(UNDO_SECONDS + 3) * 1000)

    # Past the server's grace too (the time itself is what is tested), an Undo sent anyway:
    time.sleep(max(0.0, renamed + UNDO_SECONDS + GRACE_SECONDS + 0.5 - time.monotonic()))
    page.get_by_role("button", name="Undo", include_hidden=True).dispatch_event("click")
    expect(page.get_by_text(EXPIRED)).to_be_visible()
    expect(title).to_have_value("First")

    title.fill("Third")
    title.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Chapter renamed")).to_be_visible()
