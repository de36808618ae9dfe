"""Sessions: log-out and expiry end them on the server (for the API and the
socket), forged cookies get nowhere, CORS answers only configured origins, and
the session cookie is HttpOnly, SameSite=Lax (and Secure in production)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from course_app.models import utcnow
from course_app.settings import Settings
from tests.api.support import assert_json_error, set_cookie
from tests.security.support import EVIL, ROOT_STATE, Tab, redirects, run
from tests.security.test_state_handlers import full_name


def _sessions(engine, user_id: int) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM auth_sessions WHERE user_id = :u"),
                                              {"u": user_id}).mappings()]


def _replay(app_server, token: str) -> httpx.Client:
    return httpx.Client(base_url=app_server.base_url, timeout=30, headers={"cookie": f"cs_session={token}"})


async def _socket_user(app_server, token: str) -> tuple[Tab, str]:
    """Open the dashboard with this cookie: (tab, the e-mail the header shows)."""
    tab = Tab(app_server.base_url, cookie=token)
    await tab.connect("/dashboard")
    await tab.close()
    shown = [s.get("user_email_rx_state_") for f in tab.frames for s in (f.get("delta") or {}).values()
             if s.get("user_email_rx_state_")]
    return tab, shown[-1] if shown else ""


def test_the_socket_sees_the_logged_in_user(make_account, login_as, app_server):
    """The control for the socket checks below."""
    account = make_account()
    http = login_as(account)

    tab, email = run(_socket_user(app_server, http.cookies["cs_session"]))

    assert email == account.email
    assert not any(path.startswith("/login") for path in redirects(tab.frames))


def test_log_out_ends_the_session_on_the_server(make_account, login_as, app_server, server_engine):
    account = make_account()
    http = login_as(account)
    old = http.cookies["cs_session"]
    assert len(_sessions(server_engine, account.id)) == 1

    response = http.post("/api/auth/logout", headers={"accept": "application/json"})

    assert response.status_code == 204
    assert _sessions(server_engine, account.id) == []
    with _replay(app_server, old) as replay:
        assert_json_error(replay.get("/api/auth/me"), 401)
        assert_json_error(replay.get("/api/courses"), 401)
        assert_json_error(replay.post("/api/courses", json={"title": "after log-out"}), 401)
    tab, email = run(_socket_user(app_server, old))
    assert email == ""
    assert any(path.startswith("/login") for path in redirects(tab.frames))


def test_a_socket_opened_before_log_out_loses_the_user_at_once(make_account, login_as, app_server, server_engine):
    """The cookie is fixed when the socket connects, so every event must look the
    session up again: after log-out the open tab can do nothing more."""
    account = make_account()
    http = login_as(account)

    async def scenario():
        tab = Tab(app_server.base_url, cookie=http.cookies["cs_session"])
        await tab.connect("/dashboard")
        before = await tab.send(full_name("DashboardState.create_course"), {"form_data": {"title": "Before"}})
        assert http.post("/api/auth/logout", headers={"accept": "application/json"}).status_code == 204
        after = await tab.send(full_name("DashboardState.create_course"), {"form_data": {"title": "After"}})
        await tab.close()
        return before, after

    before, after = run(scenario())

    assert any(path.startswith("/courses/") for path in redirects(before))
    assert any(path.startswith("/login") for path in redirects(after))
    with server_engine.connect() as conn:
        titles = [r[0] for r in conn.execute(sa.text("SELECT title FROM courses WHERE owner_id = :u"), {"u": account.id})]
    assert titles == ["Before"]


def test_log_out_ends_only_the_callers_session(make_account, login_as, server_engine):
    account = make_account()
    laptop, phone = login_as(account), login_as(account)

    assert laptop.post("/api/auth/logout", headers={"accept": "application/json"}).status_code == 204

    assert phone.get("/api/auth/me").json()["email"] == account.email
    assert len(_sessions(server_engine, account.id)) == 1


def test_an_expired_session_is_refused_and_removed(make_account, login_as, app_server, server_engine):
    account = make_account()
    token = login_as(account).cookies["cs_session"]
    with server_engine.begin() as conn:
        conn.execute(sa.text("UPDATE auth_sessions SET expires_at = :t WHERE user_id = :u"),
                     {"t": utcnow() - timedelta(seconds=1), "u": account.id})

    with _replay(app_server, token) as replay:
        assert_json_error(replay.get("/api/auth/me"), 401)
        assert_json_error(replay.get("/api/courses"), 401)
    tab, email = run(_socket_user(app_server, token))

    assert email == ""
    assert any(path.startswith("/login") for path in redirects(tab.frames))
    assert _sessions(server_engine, account.id) == []


@pytest.mark.parametrize("cookie", ["made-up", "", "x" * 5000, "{hash}", "{token}x", "{token_upper}"],
                         ids=["made-up", "empty", "5000-chars", "the-stored-hash", "token-plus-a-char", "token-upper-case"])
def test_a_forged_cookie_gets_nowhere(make_account, login_as, app_server, server_engine, cookie):
    """Not even the hash the database keeps (a stolen copy of the database logs nobody in)."""
    account = make_account()
    token = login_as(account).cookies["cs_session"]
    stored_hash = _sessions(server_engine, account.id)[0]["token_hash"]
    forged = cookie.format(hash=stored_hash, token=token, token_upper=token.upper())

    with _replay(app_server, forged) as replay:
        assert_json_error(replay.get("/api/auth/me"), 401)
    tab, email = run(_socket_user(app_server, forged))
    assert email == ""


# CORS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/courses", "/api/upload", "/api/auth/login", "/api/uploads/x/parts/1"])
def test_a_preflight_from_another_origin_gets_no_cors_headers(app_server, anonymous, path):
    response = anonymous.options(path, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "content-type"})

    # Without Access-Control-Allow-Origin the browser never sends the real request.
    assert response.status_code == 400 and "Disallowed CORS origin" in response.text
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path", ["/api/courses", "/api/upload", "/api/auth/login"])
def test_a_preflight_from_the_apps_origin_is_allowed_with_credentials(app_server, anonymous, path):
    response = anonymous.options(path, headers={"Origin": app_server.base_url, "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "content-type"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == app_server.base_url
    assert response.headers["access-control-allow-credentials"] == "true"


def test_a_cross_origin_read_with_the_cookie_is_not_shared_with_the_other_site(world):
    response = world.a.http.get("/api/courses", headers={"Origin": EVIL})

    assert "access-control-allow-origin" not in response.headers  # the browser hides the answer from evil.example
    allowed = world.a.http.get("/api/courses", headers={"Origin": world.base_url})
    assert allowed.headers["access-control-allow-origin"] == world.base_url


# The cookie ---------------------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_samesite_lax_and_scoped_to_the_site(make_account, app_server):
    account = make_account()
    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        response = http.post("/api/auth/login", json={"email": account.email, "password": account.password})
        _, login = set_cookie(response, "cs_session")
        out = http.post("/api/auth/logout", headers={"accept": "application/json"})
        value, logout = set_cookie(out, "cs_session")

    assert "httponly" in login and login["samesite"].lower() == "lax" and login["path"] == "/"
    assert int(login["max-age"]) == 14 * 24 * 3600
    assert "domain" not in login
    assert "secure" not in login  # the test server runs in development over http
    assert value in ("", '""') and int(logout["max-age"]) == 0
    assert "httponly" in logout and logout["samesite"].lower() == "lax"


def test_a_form_log_in_sets_the_same_cookie(make_account, app_server):
    account = make_account()
    with httpx.Client(base_url=app_server.base_url, timeout=30) as http:
        response = http.post("/api/auth/login", data={"email": account.email, "password": account.password})
    assert response.status_code == 303
    _, attributes = set_cookie(response, "cs_session")
    assert "httponly" in attributes and attributes["samesite"].lower() == "lax"


@pytest.fixture
def production(monkeypatch, tmp_path):
    settings = Settings(environment="production", secret_key="p" * 48,
                        database_url=f"sqlite:///{tmp_path / 'unused.db'}", data_dir=tmp_path)
    monkeypatch.setattr("course_app.api.auth.get_settings", lambda: settings)
    return settings


def test_in_production_the_session_cookie_is_also_secure(production):
    from starlette.responses import Response

    from course_app.api.auth import _set_session_cookie

    response = Response()
    _set_session_cookie(response, "token-value")

    header = response.headers["set-cookie"].lower()
    assert "secure" in header and "httponly" in header and "samesite=lax" in header


def test_in_production_log_out_clears_the_cookie_with_the_same_flags(production):
    from course_app.api import build_api

    with TestClient(build_api()) as http:
        response = http.post("/api/auth/logout", headers={"accept": "application/json"})

    assert response.status_code == 204
    header = response.headers["set-cookie"].lower()
    assert "secure" in header and "httponly" in header and "max-age=0" in header


def test_the_socket_state_never_carries_the_cookie(world):
    """Reflex strips Cookie (and Authorization) from the router headers it sends."""
    async def scenario():
        tab = Tab(world.base_url, cookie=world.a.session_token)
        await tab.connect("/dashboard")
        await tab.close()
        return tab

    tab = run(scenario())
    headers = [s["rx_router_headers_rx_state_"] for f in tab.frames for n, s in (f.get("delta") or {}).items()
               if n == ROOT_STATE and "rx_router_headers_rx_state_" in s]
    assert headers and "cookie" not in {k.lower() for k in headers[0]["raw_headers"]}
    assert world.a.session_token not in str(tab.frames)
