"""Log-in and sign-up in a real browser when they fail: a wrong password, an
e-mail that already has an account, a password that is too short (refused by the
browser, and by the server when the browser's check is bypassed); and the
``?next=`` redirect: a course page visited logged out opens after log-in, while a
``next`` that leaves the site goes to the dashboard."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.accounts import PASSWORD
from tests.e2e.conftest import create_course, sign_up, wait_live


def _users_named(engine, email: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM users WHERE email = :e"), {"e": email}).scalar_one()


def _log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    wait_live(page)


def _submit(page: Page, base_url: str, form: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/{form}")
    wait_live(page)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in" if form == "login" else "Sign up").click()


def test_a_wrong_password_is_refused_with_a_message_and_the_email_kept(page: Page, base_url):
    email = sign_up(page, base_url)
    _log_out(page)

    _submit(page, base_url, "login", email, "not the password")

    expect(page).to_have_url(re.compile(r"/login/?\?"))
    wait_live(page)
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")
    expect(page.get_by_label("E-mail")).to_have_value(email)
    expect(page.get_by_label("Password")).to_have_value("")
    # still logged out: a private page sends you back to log in
    page.goto(f"{base_url}/dashboard")
    expect(page).to_have_url(re.compile(r"/login/?\?next=/dashboard"))

    # An unknown e-mail gets the very same message (nothing tells which accounts exist).
    _submit(page, base_url, "login", f"nobody-{uuid.uuid4().hex[:8]}@example.com", PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")

    # The right e-mail and password work from the same page.
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My courses")).to_be_visible()


def test_a_sign_up_with_an_email_that_has_an_account_is_refused(page: Page, base_url, server_engine):
    email = sign_up(page, base_url)
    _log_out(page)

    _submit(page, base_url, "signup", email.upper(), "another good password")

    expect(page).to_have_url(re.compile(r"/signup/?\?"))
    wait_live(page)
    expect(page.get_by_role("alert")).to_have_text("An account with that e-mail already exists. Log in instead.")
    expect(page.get_by_label("E-mail")).to_have_value(email.upper())
    assert _users_named(server_engine, email) == 1
    # the existing account keeps its password
    _submit(page, base_url, "login", email, "another good password")
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")


def test_a_short_password_is_refused_by_the_browser_and_by_the_server(page: Page, base_url, server_engine):
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    _submit(page, base_url, "signup", email, "short")

    # The browser's own check stops the form: no request, no account.
    password = page.get_by_label("Password")
    assert password.evaluate("input => input.validity.tooShort") is True
    expect(page).to_have_url(re.compile(r"/signup/?$"))
    assert posts == []
    assert _users_named(server_engine, email) == 0

    # Without that check (an old browser, a script posting the form) the server says why.
    password.evaluate("input => input.removeAttribute('minlength')")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/signup/?\?"))
    wait_live(page)
    expect(page.get_by_role("alert")).to_have_text("Choose a password of at least 8 characters.")
    expect(page.get_by_label("E-mail")).to_have_value(email)
    assert _users_named(server_engine, email) == 0


def test_log_in_returns_to_the_course_page_visited_logged_out(page: Page, base_url):
    email = sign_up(page, base_url)
    course_id = create_course(page, "Course behind the log-in")
    _log_out(page)

    page.goto(f"{base_url}/courses/{course_id}")
    expect(page).to_have_url(re.compile(r"/login/?\?next="))
    wait_live(page)
    expect(page.get_by_role("alert")).to_have_text("Log in to continue.")
    expect(page.get_by_text("Course behind the log-in")).to_have_count(0)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(f"{base_url}/courses/{course_id}")
    wait_live(page)
    expect(page.get_by_role("heading", name="Course behind the log-in", level=1)).to_be_visible()

    # A failed attempt on the way keeps the destination.
    _log_out(page)
    page.goto(f"{base_url}/courses/{course_id}")
    expect(page).to_have_url(re.compile(r"/login/?\?next="))
    wait_live(page)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/courses/{course_id}")
    expect(page.get_by_role("heading", name="Course behind the log-in", level=1)).to_be_visible()


def test_a_next_that_leaves_the_site_goes_to_the_dashboard(page: Page, base_url):
    email = sign_up(page, base_url)
    _log_out(page)

    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        page.goto(f"{base_url}/login?next={target}")
        wait_live(page)
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(rf"^{re.escape(base_url)}/dashboard/?$"))
        expect(page.get_by_role("heading", name="My courses")).to_be_visible()
        _log_out(page)
