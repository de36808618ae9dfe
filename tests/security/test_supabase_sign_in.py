"""Supabase sign-in on a running app: POST /api/auth/supabase trades a Supabase
access token for our own HttpOnly session, API routes take one as Bearer, and the
log-in page picks one up from Supabase's redirect. Tokens are minted by a stand-in
project (tests/supabase.py) whose JWKS a tiny local HTTP server serves; the app is
a production build of its own pointed at it."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlmodel import Session, select

from course_app.models import Course, User
from tests.api.support import assert_json_error
from tests.server import engine_of, separate_app
from tests.supabase import FakeSupabase

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def project():
    with FakeSupabase() as fake:
        yield fake


@pytest.fixture(scope="module")
def app(tmp_path_factory, project):
    with separate_app(tmp_path_factory, "supabase", {
        "COURSE_SUPABASE_URL": project.url,
        "COURSE_SUPABASE_PROVIDER": "github",
        "COURSE_SUPABASE_JWKS_COOLDOWN_SECONDS": "0",
    }) as server:
        yield server


@pytest.fixture(scope="module")
def engine(app):
    with engine_of(app) as engine:
        yield engine


def _user(engine, sub: str) -> User | None:
    with Session(engine) as session:
        return session.exec(select(User).where(User.supabase_sub == sub)).first()


def _sign_in(app, token: str) -> httpx.Response:
    return httpx.post(f"{app.base_url}/api/auth/supabase", json={"access_token": token}, timeout=30)


def test_a_valid_token_starts_our_own_session(app, engine, project):
    sub = str(uuid.uuid4())
    response = _sign_in(app, project.token("ec-1", sub=sub, email="Teacher@School.example"))

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "teacher@school.example" and response.json()["role"] == "instructor"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("cs_session=") and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    session_token = response.cookies["cs_session"]
    assert session_token not in response.text  # the body never carries the session
    me = httpx.get(f"{app.base_url}/api/auth/me", cookies={"cs_session": session_token}, timeout=30)
    assert me.json()["id"] == response.json()["id"] == _user(engine, sub).id

    again = _sign_in(app, project.token("rsa-1", sub=sub))
    assert again.json()["id"] == response.json()["id"]  # the same user, a new session
    assert again.cookies["cs_session"] != session_token


REFUSED = {
    "expired": lambda p, sub: p.token(sub=sub, expires_in=-120),
    "wrong audience": lambda p, sub: p.token(sub=sub, audience="anon"),
    "wrong issuer": lambda p, sub: p.token(sub=sub, issuer="https://attacker.supabase.co/auth/v1"),
    "alg none": lambda p, sub: p.raw_token({"alg": "none", "typ": "JWT"}, p.claims(sub=sub), None),
    "HS256 signed with the RSA public key": lambda p, sub: p.raw_token(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, p.claims(sub=sub), p.public_pem("rsa-1")),
    "unknown key id": lambda p, sub: (p.add_key(f"unpublished-{sub}", "RS256", publish=False),
                                      p.token(f"unpublished-{sub}", sub=sub))[1],
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_token_is_refused_and_creates_nothing(app, engine, project, case):
    sub = str(uuid.uuid4())
    token = REFUSED[case](project, sub)

    response = _sign_in(app, token)
    bearer = httpx.get(f"{app.base_url}/api/courses", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    assert "not valid" in assert_json_error(response, 401)
    assert "cs_session" not in str(response.headers.get_list("set-cookie"))
    assert_json_error(bearer, 401)
    assert _user(engine, sub) is None


def test_a_form_post_redirects_with_the_cookie_or_back_to_log_in(app, project):
    with httpx.Client(base_url=app.base_url, timeout=30) as http:
        good = http.post("/api/auth/supabase", data={"access_token": project.token(), "next": "/settings"})
        bad = http.post("/api/auth/supabase", data={"access_token": project.token(expires_in=-120)})

    assert good.status_code == 303 and good.headers["location"] == "/settings"
    assert "cs_session=" in good.headers["set-cookie"]
    assert bad.status_code == 303 and bad.headers["location"].startswith("/login?message=")
    assert "cs_session" not in str(bad.headers.get_list("set-cookie"))


def test_another_site_cannot_sign_a_browser_in(app, engine, project):
    """Log-in CSRF: a page elsewhere posting its own valid token must not put the
    visitor's browser into the attacker's account."""
    sub = str(uuid.uuid4())
    response = httpx.post(f"{app.base_url}/api/auth/supabase", data={"access_token": project.token(sub=sub)},
                          headers={"Origin": "https://evil.example"}, timeout=30)
    assert response.status_code == 303 and "Cross-site" in response.headers["location"].replace("+", " ")
    assert "cs_session" not in str(response.headers.get_list("set-cookie"))
    assert _user(engine, sub) is None


def test_an_existing_password_account_is_not_taken_over_by_e_mail(app, project):
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    signed_up = httpx.post(f"{app.base_url}/api/auth/signup", json={"email": email, "password": "correct horse 1"},
                           timeout=30)
    assert signed_up.status_code == 201

    response = _sign_in(app, project.token(email=email))

    assert "Log in with its password" in assert_json_error(response, 409)


def test_a_supabase_token_works_as_bearer_on_api_routes(app, engine, project):
    sub = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {project.token(sub=sub)}"}

    listed = httpx.get(f"{app.base_url}/api/courses", headers=headers, timeout=30)
    created = httpx.post(f"{app.base_url}/api/courses", json={"title": "Made with a Supabase token"},
                         headers=headers, timeout=30)

    assert listed.status_code == 200 and listed.json() == []
    assert created.status_code == 201, created.text
    with Session(engine) as session:
        course = session.exec(select(Course).where(Course.title == "Made with a Supabase token")).one()
    assert course.owner_id == _user(engine, sub).id  # made on first use, as a sign-in would


def test_the_log_in_page_signs_in_with_the_token_supabase_sends_back(app, project):
    """Supabase's hosted sign-in returns to /login#access_token=...: the page posts it
    and lands on the dashboard, logged in, the token gone from the address bar."""
    from playwright.sync_api import expect, sync_playwright

    token = project.token(email=f"{uuid.uuid4().hex[:8]}@school.example")
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"{app.base_url}/login")
            button = page.get_by_role("link", name="Continue with Github")
            expect(button).to_be_visible(timeout=30_000)
            href = button.get_attribute("href")
            assert href.startswith(f"{project.url}/auth/v1/authorize?provider=github&redirect_to=")
            assert "%2Flogin" in href

            page.goto(f"{app.base_url}/login?next=/settings#access_token={token}&token_type=bearer&expires_in=3600")

            expect(page).to_have_url(re.compile(re.escape(app.base_url) + r"/settings/?$"), timeout=30_000)
            assert token not in page.url
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert cookies["cs_session"]["httpOnly"] is True
        finally:
            browser.close()
    assert violations == []


def test_an_error_from_supabase_is_shown_on_the_log_in_page(app):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{app.base_url}/login#error=access_denied&error_description=Email+link+is+invalid")
            expect(page.get_by_role("status")).to_have_text("Supabase sign-in failed: Email link is invalid",
                                                            timeout=30_000)
            assert re.fullmatch(re.escape(app.base_url) + r"/login/?", page.url), page.url  # nothing posted; the fragment is gone
        finally:
            browser.close()
