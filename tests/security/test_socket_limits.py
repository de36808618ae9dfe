"""Rate limits on the socket: State handlers spend the user's API budget (one
budget for both doors, the API's 429 message shown in the tab), and a connection
sending events faster than the per-connection limit has the surplus refused.
Sent over a real socket.io connection, like utils/state.js does, to an app of its
own with small limits."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import sqlalchemy as sa

from course_app.db import session_scope
from course_app.services import users
from tests.api.support import PASSWORD, assert_json_error
from tests.security.support import Tab, redirects, run
from tests.security.test_state_handlers import full_name
from tests.server import engine_of, separate_app

USER_LIMIT = 6  # requests a minute, API routes and State handlers together
EVENTS_PER_SECOND = 25
MESSAGE = "Too many API attempts"
LIMIT_VAR = "message_rx_state_"


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    with separate_app(tmp_path_factory, "socket-limits", {
        "COURSE_API_RATE_LIMIT": f"{USER_LIMIT}/minute",
        "COURSE_SOCKET_EVENT_RATE_LIMIT": f"{EVENTS_PER_SECOND}/second",
    }) as server:
        with engine_of(server) as engine:
            yield server, engine


@pytest.fixture
def instructor(limited):
    """A new instructor (a fresh budget), logged in over HTTP."""
    server, engine = limited
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    with session_scope(engine) as session:
        user_id = users.create_user(session=session, email=email, password=PASSWORD).id
    http = httpx.Client(base_url=server.base_url, timeout=30)
    assert http.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
    yield user_id, http
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
