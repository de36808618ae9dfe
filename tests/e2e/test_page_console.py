"""Pages load without a browser console error (the favicon and logo exist)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import create_course, sign_up, wait_live


def test_pages_load_without_console_errors(page: Page, base_url):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    page.goto(f"{base_url}/login")
    wait_live(page)
    expect(page.get_by_role("img", name="")).to_have_count(0)  # the logo is decorative (empty alt)
    sign_up(page, base_url)
    create_course(page, "Quiet course")
    page.reload()
    wait_live(page)
    assert errors == []
