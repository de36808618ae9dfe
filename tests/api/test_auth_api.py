"""course_app/api/auth.py (and deps.py's cookie, rate-limit and cross-site
checks) through HTTP against the running production build."""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import Session, func, select

from course_app.auth.tokens import notice_is_authentic, token_hash
from course_app.models import ApiToken, AuthSession, User
from course_app.services.users import BAD_CREDENTIALS
from tests.accounts import PASSWORD
from tests.api.support import assert_json_error, assert_no_internals, has_set_cookie, set_cookie

EVIL = "https://evil.example"


def unique_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def users_with_email(server_engine, email: str) -> int:
    with Session(server_engine) as db:
        return db.exec(select(func.count(User.id)).where(User.email == email)).one()


def session_count(server_engine, user_id: int) -> int:
    with Session(server_engine) as db:
        return db.exec(select(func.count(AuthSession.id)).where(AuthSession.user_id == user_id)).one()


def session_row_exists(server_engine, token: str) -> bool:
    with Session(server_engine) as db:
        return db.exec(select(AuthSession.id).where(AuthSession.token_hash == token_hash(token))).first() is not None


def user_id(server_engine, email: str) -> int:
    with Session(server_engine) as db:
        return db.exec(select(User.id).where(User.email == email)).one()


# Sign-up ------------------------------------------------------------------------------


def test_signup_creates_the_account_and_sets_a_safe_session_cookie(client, server_engine):
    email = unique_email()

    response = client.post("/api/auth/signup", json={"email": "  " + email.upper(), "password": PASSWORD})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {"id": body["id"], "email": email, "role": "instructor"}
    token, attributes = set_cookie(response, "cs_session")
    assert len(token) >= 32
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert "secure" not in attributes  # development build served over plain http
    assert int(attributes["max-age"]) == 14 * 24 * 3600
    assert users_with_email(server_engine, email) == 1
    assert session_row_exists(server_engine, token)
    with Session(server_engine) as db:
        stored = db.exec(select(User).where(User.email == email)).one()
        assert stored.password_hash.startswith("$argon2") and PASSWORD not in stored.password_hash
        assert token not in " ".join(db.exec(select(AuthSession.token_hash)).all())
    assert client.get("/api/auth/me").json()["email"] == email


def test_duplicate_signup_is_409_and_creates_nothing(client, signed_up, server_engine, new_client):
    email, _ = signed_up
    owner_id = user_id(server_engine, email)
    sessions_before = session_count(server_engine, owner_id)

    response = new_client().post("/api/auth/signup", json={"email": email.upper(), "password": "another password"})

    message = assert_json_error(response, 409)
    assert "already exists" in message
    assert not has_set_cookie(response)
    assert users_with_email(server_engine, email) == 1
    assert session_count(server_engine, owner_id) == sessions_before


def test_signup_with_a_short_password_is_400_and_creates_nothing(new_client, server_engine):
    email = unique_email()

    response = new_client().post("/api/auth/signup", json={"email": email, "password": "short"})

    assert "at least 8 characters" in assert_json_error(response, 400)
    assert not has_set_cookie(response)
    assert users_with_email(server_engine, email) == 0


# Log-in (JSON) ----------------------------------------------------------------------------


def test_wrong_password_and_unknown_email_get_the_same_401(make_account, new_client, server_engine):
    account = make_account()
    http = new_client()

    wrong_password = http.post("/api/auth/login", json={"email": account.email, "password": "not the password"})
    unknown_email = http.post("/api/auth/login", json={"email": unique_email(), "password": PASSWORD})

    assert assert_json_error(wrong_password, 401) == BAD_CREDENTIALS
    assert assert_json_error(unknown_email, 401) == BAD_CREDENTIALS
    assert wrong_password.content == unknown_email.content
    assert not has_set_cookie(wrong_password) and not has_set_cookie(unknown_email)
    assert session_count(server_engine, account.id) == 0


def test_login_sets_the_session_cookie(make_account, new_client, server_engine):
    account = make_account()
    http = new_client()

    response = http.post("/api/auth/login", json={"email": account.email.upper(), "password": PASSWORD})

    assert response.status_code == 200, response.text
    assert response.json() == {"id": account.id, "email": account.email, "role": "instructor"}
    token, attributes = set_cookie(response, "cs_session")
    assert "httponly" in attributes and attributes["samesite"].lower() == "lax" and attributes["path"] == "/"
    assert "secure" not in attributes
    assert session_row_exists(server_engine, token)
    assert http.get("/api/auth/me").json()["id"] == account.id


@pytest.mark.parametrize(
    ("content", "content_type"),
    [("{not json", "application/json"), ('{"email": "a@example.com"}', "application/json"),
     ('["a@example.com", "pw"]', "application/json"), ('{"email": 5, "password": 6}', "application/json")],
)
def test_malformed_login_body_is_400_json(new_client, content, content_type):
    response = new_client().post("/api/auth/login", content=content, headers={"content-type": content_type})

    assert "email" in assert_json_error(response, 400)
    assert not has_set_cookie(response)


# Current user and log-out ----------------------------------------------------------------------


def test_me_with_the_cookie_returns_the_user(login_as, make_account):
    account = make_account()

    response = login_as(account).get("/api/auth/me")

    assert response.status_code == 200
    assert response.json() == {"id": account.id, "email": account.email, "role": "instructor"}


def test_me_without_a_session_is_401_json(new_client):
    assert_json_error(new_client().get("/api/auth/me"), 401)
    assert_json_error(new_client().get("/api/auth/me", headers={"Cookie": "cs_session=made-up-token"}), 401)


def test_supabase_sign_in_is_404_when_not_configured(new_client):
    """No COURSE_SUPABASE_URL: the route answers that it is off (tests/security/test_supabase_sign_in.py: on)."""
    response = new_client().post("/api/auth/supabase", json={"access_token": "a.b.c"})
    assert "not configured" in assert_json_error(response, 404)
    assert not has_set_cookie(response)


def test_logout_clears_the_cookie_and_ends_the_session_on_the_server(login_as, make_account, new_client, server_engine):
    account = make_account()
    http = login_as(account)
    token = http.cookies.get("cs_session")
    assert session_row_exists(server_engine, token)

    response = http.post("/api/auth/logout", headers={"Accept": "application/json"})

    assert response.status_code == 204
    value, attributes = set_cookie(response, "cs_session")
    assert value in ("", '""')
    assert attributes["max-age"] == "0"
    assert http.cookies.get("cs_session") is None
    assert_json_error(http.get("/api/auth/me"), 401)
    replayed = new_client().get("/api/auth/me", headers={"Cookie": f"cs_session={token}"})
    assert_json_error(replayed, 401)
    assert not session_row_exists(server_engine, token)


def test_logout_from_a_form_redirects_to_login(login_as, make_account, new_client):
    account = make_account()
    http = login_as(account)
    token = http.cookies.get("cs_session")

    response = http.post("/api/auth/logout", data={})

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert_json_error(new_client().get("/api/auth/me", headers={"Cookie": f"cs_session={token}"}), 401)


def test_logging_out_one_browser_keeps_the_other_logged_in(login_as, make_account):
    account = make_account()
    laptop, phone = login_as(account), login_as(account)

    laptop.post("/api/auth/logout", headers={"Accept": "application/json"})

    assert phone.get("/api/auth/me").status_code == 200


# Log-in from an HTML form -------------------------------------------------------------------------


def test_form_login_redirects_to_the_dashboard_with_the_cookie(make_account, new_client, server_engine):
    account = make_account()

    response = new_client().post("/api/auth/login", data={"email": account.email, "password": PASSWORD})

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    token, attributes = set_cookie(response, "cs_session")
    assert "httponly" in attributes
    assert session_row_exists(server_engine, token)


def test_failed_form_login_redirects_back_with_a_signed_message(make_account, new_client, server_engine):
    account = make_account()

    response = new_client().post("/api/auth/login", data={"email": account.email, "password": "wrong password"})

    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    query = parse_qs(location.query)
    assert query["message"] == [BAD_CREDENTIALS]
    assert notice_is_authentic(query["message"][0], query["sig"][0])
    assert query["email"] == [account.email]
    assert not has_set_cookie(response)
    assert session_count(server_engine, account.id) == 0


@pytest.mark.parametrize(
    ("next_path", "expected"),
    [("/courses/123?tab=videos", "/courses/123?tab=videos"), ("/settings", "/settings"),
     ("//evil.com", "/dashboard"), ("https://evil.example/phish", "/dashboard"), ("/\\evil.com", "/dashboard"),
     ("javascript:alert(1)", "/dashboard")],
)
def test_form_login_follows_next_only_to_local_paths(make_account, new_client, next_path, expected):
    account = make_account()

    response = new_client().post(
        "/api/auth/login", data={"email": account.email, "password": PASSWORD, "next": next_path}
    )

    assert response.status_code == 303
    assert response.headers["location"] == expected


def test_failed_form_login_drops_a_foreign_next(make_account, new_client):
    account = make_account()

    response = new_client().post(
        "/api/auth/login", data={"email": account.email, "password": "wrong password", "next": "//evil.com"}
    )

    query = parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)
    assert query["next"] == [""]
    assert "evil" not in response.headers["location"]


# Rate limit -----------------------------------------------------------------------------------------


def test_login_is_rate_limited_per_email(make_account, new_client, server_engine):
    account = make_account()
    bystander = make_account()
    http = new_client()

    for _ in range(10):
        assert_json_error(http.post("/api/auth/login", json={"email": account.email, "password": "guess"}), 401)
    limited = http.post("/api/auth/login", json={"email": account.email, "password": "guess"})

    message = assert_json_error(limited, 429)
    assert "Too many log-in attempts" in message
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # The right password does not get through while the limit lasts, and no session is made.
    with_right_password = http.post("/api/auth/login", json={"email": account.email.upper(), "password": PASSWORD})
    assert_json_error(with_right_password, 429)
    assert not has_set_cookie(with_right_password)
    assert session_count(server_engine, account.id) == 0
    # Another account from the same address is not locked out.
    assert http.post("/api/auth/login", json={"email": bystander.email, "password": PASSWORD}).status_code == 200


# Cross-site requests ------------------------------------------------------------------------------------


def api_tokens_of(server_engine, owner_id: int) -> int:
    with Session(server_engine) as db:
        return db.exec(select(func.count(ApiToken.id)).where(ApiToken.user_id == owner_id)).one()


@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Referer": f"{EVIL}/page"}, {"Origin": "null"}])
def test_cross_site_post_with_a_valid_cookie_is_refused(login_as, make_account, server_engine, headers):
    account = make_account()
    http = login_as(account)

    response = http.post("/api/tokens", json={"name": "planted"}, headers=headers)

    assert "Cross-site" in assert_json_error(response, 403)
    assert api_tokens_of(server_engine, account.id) == 0


def test_same_origin_post_with_the_cookie_is_allowed(login_as, make_account, server_engine, app_server):
    account = make_account()
    http = login_as(account)

    response = http.post("/api/tokens", json={"name": "mine"}, headers={"Origin": app_server.base_url})

    assert response.status_code == 201, response.text
    assert api_tokens_of(server_engine, account.id) == 1


def test_cross_site_logout_is_refused_and_the_session_survives(login_as, make_account, server_engine):
    account = make_account()
    http = login_as(account)
    token = http.cookies.get("cs_session")

    response = http.post("/api/auth/logout", headers={"Origin": EVIL, "Accept": "application/json"})

    assert_json_error(response, 403)
    assert session_row_exists(server_engine, token)
    assert http.get("/api/auth/me").status_code == 200


def test_cross_site_login_is_refused(make_account, new_client, server_engine):
    account = make_account()

    response = new_client().post(
        "/api/auth/login", json={"email": account.email, "password": PASSWORD}, headers={"Origin": EVIL}
    )

    assert_json_error(response, 403)
    assert not has_set_cookie(response)
    assert session_count(server_engine, account.id) == 0


def test_cross_site_get_with_the_cookie_still_reads(login_as, make_account):
    account = make_account()

    response = login_as(account).get("/api/auth/me", headers={"Origin": EVIL})

    assert response.status_code == 200
    assert_no_internals(response)


# The event loop stays free ------------------------------------------------------------------------------


LOGINS_AT_ONCE = 12
PING_EVERY = 0.1  # seconds


def test_other_requests_are_answered_while_log_ins_hash_their_passwords(make_account, new_client):
    """A password hash is slow on purpose. On the event loop it held up every other
    request of the process, one hash after another, for as long as log-ins came in
    (a ping then waited several log-ins' time); in worker threads a cheap request is
    answered at once while the log-ins run. Pings go out at a steady pace whatever
    the answers do, and their typical wait is measured against the log-ins' own pace
    in the same seconds, so a busy machine slows both sides alike."""
    accounts = [make_account() for _ in range(LOGINS_AT_ONCE)]
    probe = new_client()

    def log_in(account) -> int:
        return new_client().post("/api/auth/login", json={"email": account.email, "password": PASSWORD}).status_code

    def ping_wait(sent: float) -> float:
        assert probe.get("/ping").status_code == 200
        return time.perf_counter() - sent

    ping_wait(time.perf_counter())  # the probe's first connection is open before anything is timed
    with ThreadPoolExecutor(LOGINS_AT_ONCE) as logins_pool, ThreadPoolExecutor(16) as pings_pool:
        started = time.perf_counter()
        logins = [logins_pool.submit(log_in, account) for account in accounts]
        pings = []
        while not all(login.done() for login in logins):
            pings.append(pings_pool.submit(ping_wait, time.perf_counter()))
            time.sleep(PING_EVERY)
        per_login = (time.perf_counter() - started) / LOGINS_AT_ONCE
        assert [login.result() for login in logins] == [200] * LOGINS_AT_ONCE
        typical = statistics.median(ping.result() for ping in pings)

    assert typical < per_login / 2, (
        f"while {LOGINS_AT_ONCE} log-ins ran, a ping waited {typical * 1000:.0f} ms (median of {len(pings)}); "
        f"the log-ins took {per_login * 1000:.0f} ms each")
