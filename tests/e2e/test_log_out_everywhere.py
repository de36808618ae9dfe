"""Log out everywhere from the settings page, in a real browser: the page that
clicked goes to the log-in page, and a page left open on a course in another tab
is emptied and sent to the log-in page too, without a reload."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import create_course, sign_up, wait_live


def test_log_out_everywhere_ends_the_other_open_tab(page: Page, base_url):
    email = sign_up(page, base_url)
    create_course(page, "Left open")
    expect(page.get_by_label("Signed in as")).to_have_text(email)

    settings = page.context.new_page()
    settings.goto(f"{base_url}/settings")
    wait_live(settings)
    settings.get_by_role("button", name="Log out everywhere").click()
    expect(settings).to_have_url(re.compile(r"/login"))

    # The first tab never reloaded: the server reset it and sent it to log in.
    expect(page).to_have_url(re.compile(r"/login"), timeout=3_000)
    expect(page.get_by_role("heading", name="Left open")).to_have_count(0)
    expect(page.get_by_text(email)).to_have_count(0)
