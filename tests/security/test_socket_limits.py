"""Limits on the socket: State handlers spend the user's API budget (one budget for
both doors, the API's 429 message shown in the tab); a connection sending events
faster than the per-connection limit has the surplus refused; one IP holds at most
so many open sockets, and only over WebSocket; a tab that never logged in leaves no
States behind soon after its socket closed. Sent over a real socket.io connection,
like utils/state.js does, to an app of its own with small limits. What 1,000
anonymous connections cost is benchmarks/anonymous_sockets.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import httpx
import pytest
import sqlalchemy as sa

from course_app.state.forget_states import all_state_classes
from tests.accounts import create_account, logged_in_client
from tests.api.support import assert_json_error
from tests.polling import wait_for
from tests.security.support import SocketRefused, Tab, redirects, run, socket_handshake
from tests.security.test_state_handlers import full_name
from tests.server import engine_of, separate_app

USER_LIMIT = 6  # requests a minute, API routes and State handlers together
EVENTS_PER_SECOND = 25
SOCKETS_PER_IP = 3
ANONYMOUS_STATE_SECONDS = 1
MESSAGE = "Too many API attempts"
LIMIT_VAR = "message_rx_state_"


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    with separate_app(tmp_path_factory, "socket-limits", {
        "COURSE_API_RATE_LIMIT": f"{USER_LIMIT}/minute",
        "COURSE_SOCKET_EVENT_RATE_LIMIT": f"{EVENTS_PER_SECOND}/second",
        "COURSE_SOCKET_CONNECTIONS_PER_IP": str(SOCKETS_PER_IP),
        "COURSE_ANONYMOUS_STATE_SECONDS": str(ANONYMOUS_STATE_SECONDS),
    }) as server:
        with engine_of(server) as engine:
            yield server, engine


@pytest.fixture
def instructor(limited):
    """A new instructor (a fresh budget), logged in over HTTP."""
    server, engine = limited
    account = create_account(engine)
    http = logged_in_client(server.base_url, account)
    yield account.id, http
    http.close()


def _limit_messages(frames: list) -> list[str]:
    return [values[LIMIT_VAR] for frame in frames for values in (frame.get("delta") or {}).values()
            if values.get(LIMIT_VAR)]


def _course_titles(engine, user_id: int) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT title FROM courses WHERE owner_id = :u"), {"u": user_id}).scalars().all()


def test_a_burst_of_handler_calls_stops_at_the_users_limit(limited, instructor):
    server, engine = limited
    user_id, http = instructor
    burst = 10

    async def scenario():
        tab = Tab(server.base_url, cookie=http.cookies["cs_session"])
        await tab.connect("/dashboard")  # DashboardState.load spends one request
        start = len(tab.frames)
        for number in range(burst):
            await tab.emit(full_name("DashboardState.create_course"), {"form_data": {"title": f"Burst {number}"}})
        await tab.settle()
        await tab.close()
        return tab.frames[start:]

    frames = run(scenario())

    assert len(_course_titles(engine, user_id)) == USER_LIMIT - 1, "nothing past the limit is written"
    shown = _limit_messages(frames)
    assert shown and all(MESSAGE in message for message in shown), shown
    # One budget: the API door is closed too, with the same message.
    assert MESSAGE in assert_json_error(http.get("/api/courses"), 429)


def test_api_requests_spend_the_budget_handlers_use(limited, instructor):
    server, engine = limited
    user_id, http = instructor
    for _ in range(USER_LIMIT):
        assert http.get("/api/courses").status_code == 200

    async def scenario():
        tab = Tab(server.base_url, cookie=http.cookies["cs_session"])
        await tab.connect("/dashboard")
        frames = await tab.send(full_name("DashboardState.create_course"), {"form_data": {"title": "One more"}})
        await tab.close()
        return tab.frames, frames

    everything, _ = run(scenario())

    assert _course_titles(engine, user_id) == []
    assert any(MESSAGE in message for message in _limit_messages(everything))  # shown from the page load on
    assert "One more" not in json.dumps(everything)


def test_a_background_handler_past_the_limit_says_so_too(limited, instructor):
    """LiveState.follow runs in the background (its State is changed under a lock of
    its own): refused past the limit with the same message, nothing else happens."""
    server, _ = limited
    _, http = instructor
    for _ in range(USER_LIMIT):
        assert http.get("/api/courses").status_code == 200

    async def scenario():
        tab = Tab(server.base_url, cookie=http.cookies["cs_session"])
        await tab.connect("/login")  # its page load spends nothing
        frames = await tab.send(full_name("LiveState.follow"))
        await tab.close()
        return frames

    frames = run(scenario())

    assert any(MESSAGE in message for message in _limit_messages(frames)), frames


def test_a_connection_flooding_events_has_the_surplus_refused(limited):
    """An anonymous tab floods a handler that answers every call it runs with a
    log-in redirect: only as many run as the per-connection limit lets through."""
    server, _ = limited
    flood = 100

    async def scenario():
        tab = Tab(server.base_url)
        await tab.connect("/login")
        start = len(tab.frames)
        for _ in range(flood):
            await tab.emit(full_name("DashboardState.load"))
        await tab.wait_for(lambda f: bool(_limit_messages([f])), start=start, what="the limit message")
        await asyncio.sleep(1.2)  # the window passes; the tab works again
        flooded = tab.frames[start:]
        await tab.settle()
        after = await tab.send(full_name("DashboardState.load"))
        await tab.close()
        return flooded, after

    frames, after = run(scenario())

    answered = len([path for path in redirects(frames) if path.startswith("/login")])
    assert 0 < answered <= EVENTS_PER_SECOND, f"{answered} of {flood} events were processed"
    assert all(MESSAGE in message for message in _limit_messages(frames))
    assert any(path.startswith("/login") for path in redirects(after)), "the connection works again after the window"


# What anonymous sockets cost -------------------------------------------------------------------


def test_one_ip_holds_at_most_so_many_open_sockets(limited):
    """One cap per address for the whole deployment (counted in Redis when it is
    configured, as under --production-app with two workers; else in the process)."""
    server, _ = limited

    async def scenario():
        tabs = [Tab(server.base_url) for _ in range(SOCKETS_PER_IP)]
        for tab in tabs:
            await tab.connect("/login")
        refused = Tab(server.base_url)
        try:
            await refused.connect("/login")
            one_more = "connected"
        except SocketRefused:
            one_more = "refused"
        answer = await asyncio.to_thread(socket_handshake, server.base_url)
        await tabs[0].close()
        again = Tab(server.base_url)
        for _ in range(40):  # the server notices the closed socket
            try:
                await again.connect("/login")
                break
            except SocketRefused:
                await asyncio.sleep(0.1)
                again = Tab(server.base_url)
        reconnected = again.sio.connected
        for tab in [*tabs[1:], again]:
            await tab.close()
        return one_more, reconnected, answer

    one_more, reconnected, (status, headers, body) = run(scenario())

    assert one_more == "refused"
    assert status == 429 and json.loads(body)["code"] == "rate_limited", (status, body)
    assert "Too many open connections" in json.loads(body)["error"]
    assert headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in headers["content-security-policy"]
    assert reconnected, "a socket that closes frees its place"


def test_the_socket_speaks_websocket_only(limited):
    server, _ = limited
    response = httpx.get(f"{server.base_url}/_event/", params={"EIO": "4", "transport": "polling"})

    assert "WebSocket only" in assert_json_error(response, 400)


def _state_files(server, token: str) -> list[str]:
    """The tab's stored States: the disk manager's files, or with Redis (--production-app) its keys."""
    if server.env.get("COURSE_REDIS_URL"):
        import redis

        client = redis.Redis.from_url(server.env["COURSE_REDIS_URL"])
        try:
            return [key for key in (f"{token}_{cls.get_full_name()}" for cls in all_state_classes())
                    if client.exists(key)]
        finally:
            client.close()
    folder = server.data_dir.parent / "states"
    names = (hashlib.md5(f"{token}_{cls.get_full_name()}".encode()).hexdigest() + ".pkl" for cls in all_state_classes())
    return [name for name in names if (folder / name).exists()]


def test_a_tab_that_never_logged_in_leaves_no_states_soon_after_it_closes(limited, instructor):
    """Reflex writes a tab's States to files a moment after its events and keeps them
    an hour; an anonymous tab's go (or are never written) once its socket closed."""
    server, _ = limited
    _, http = instructor

    async def visit(cookie: str | None) -> str:
        tab = Tab(server.base_url, cookie=cookie)
        await tab.connect("/login" if cookie is None else "/dashboard")
        await tab.close()
        return tab.token

    anonymous = run(visit(None))
    logged_in = run(visit(http.cookies["cs_session"]))
    wait_for(lambda: _state_files(server, logged_in), "the control: a logged-in tab's States to be written",
             timeout=15, interval=0.1)
    time.sleep(ANONYMOUS_STATE_SECONDS + 3)  # the disk manager's write delay (2 s) and the grace, passed

    assert _state_files(server, anonymous) == []
    assert _state_files(server, logged_in), "the control: a logged-in tab's States are kept (Reflex's lifetime)"
