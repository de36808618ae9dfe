"""A tab left open through the end of its log-in (log-out in another tab, log-out
everywhere from another device, expiry) is emptied and sent to the log-in page
within a second, and its next hydrate carries none of the user's data.

The socket is a real socket.io client that stays connected with the cookie it
connected with (the browser's socket keeps its handshake cookie too)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import sqlalchemy as sa

from course_app.models import utcnow
from tests.api.support import assert_json_error
from tests.security.support import HYDRATE, Tab, find_leaks, redirects, run

RESET_WITHIN = 1.0  # seconds


def _course_with_chapter(http, label: str) -> tuple[str, dict[str, str]]:
    texts = {"course title": f"{label} course", "chapter title": f"{label} chapter"}
    response = http.post("/api/courses", json={"title": texts["course title"]})
    assert response.status_code == 201, response.text
    course = response.json()["id"]
    response = http.post(f"/api/courses/{course}/chapters", json={"title": texts["chapter title"]})
    assert response.status_code == 201, response.text
    return course, texts


async def _open_editor(base_url: str, cookie: str, course: str, texts: dict[str, str]) -> Tab:
    tab = Tab(base_url, cookie=cookie)
    await tab.connect(f"/courses/{course}", {"course_id": course})
    loaded = json.dumps(tab.frames)
    assert all(text in loaded for text in texts.values()), "the control: the open tab holds the user's data"
    return tab


def _is_reset(frame: dict) -> bool:
    return any(path.startswith("/login") for path in redirects([frame]))


async def _reset_after(tab: Tab, end_session) -> float:
    """End the session (a blocking call), then the seconds until the tab was sent to log in."""
    start = len(tab.frames)
    began = time.monotonic()
    await asyncio.to_thread(end_session)
    await tab.wait_for(_is_reset, start=start, what="the reset of the open tab", timeout=5)
    return time.monotonic() - began


async def _rehydrate(tab: Tab) -> list:
    """The open socket hydrates again (as a reload over the same connection would)."""
    start = len(tab.frames)
    await tab.emit(HYDRATE)
    await tab.settle()
    return tab.frames[start:]


def _what_leaks(frames: list, account, texts: dict[str, str]) -> list[str]:
    return find_leaks(json.dumps(frames), {**texts, "e-mail": account.email})


def test_log_out_resets_the_open_tab_within_a_second(make_account, login_as, app_server):
    account = make_account()
    http = login_as(account)
    course, texts = _course_with_chapter(http, f"Logout {account.id}")

    async def scenario():
        tab = await _open_editor(app_server.base_url, http.cookies["cs_session"], course, texts)
        start = len(tab.frames)
        took = await _reset_after(tab, lambda: http.post("/api/auth/logout", headers={"accept": "application/json"}))
        reset_frames = tab.frames[start:]
        after = await _rehydrate(tab)
        connected = tab.sio.connected
        await tab.close()
        return took, reset_frames, after, connected

    took, reset_frames, after, connected = run(scenario())

    assert took < RESET_WITHIN, f"the open tab was reset after {took:.2f}s"
    emptied = [values for frame in reset_frames for values in (frame.get("delta") or {}).values()]
    assert any(values.get("user_email_rx_state_") == "" for values in emptied), "the header's e-mail was not cleared"
    assert any(values.get("title_rx_state_") == "" for values in emptied), "the course title was not cleared"
    assert connected, "the socket stayed open (the test's premise)"
    assert _what_leaks(after, account, texts) == []


def test_hydrate_right_after_log_out_gets_nothing(make_account, login_as, app_server):
    """Whether the watcher or the hydrate comes first, the hydrate carries no data:
    the tab's identity is the session as the database holds it, not the cookie."""
    account = make_account()
    http = login_as(account)
    course, texts = _course_with_chapter(http, f"Hydrate {account.id}")

    async def scenario():
        tab = await _open_editor(app_server.base_url, http.cookies["cs_session"], course, texts)
        assert http.post("/api/auth/logout", headers={"accept": "application/json"}).status_code == 204
        after = await _rehydrate(tab)
        await tab.close()
        return after

    after = run(scenario())

    assert _what_leaks(after, account, texts) == []
    assert any(path.startswith("/login") for path in redirects(after))


def test_session_expiry_resets_the_open_tab_within_a_second(make_account, login_as, app_server, server_engine):
    account = make_account()
    http = login_as(account)
    course, texts = _course_with_chapter(http, f"Expiry {account.id}")

    def expire() -> None:
        with server_engine.begin() as conn:
            conn.execute(sa.text("UPDATE auth_sessions SET expires_at = :t WHERE user_id = :u"),
                         {"t": utcnow() - timedelta(seconds=1), "u": account.id})

    async def scenario():
        tab = await _open_editor(app_server.base_url, http.cookies["cs_session"], course, texts)
        took = await _reset_after(tab, expire)
        after = await _rehydrate(tab)
        await tab.close()
        return took, after

    took, after = run(scenario())

    assert took < RESET_WITHIN + 0.5, f"the open tab was reset {took:.2f}s after its session expired"
    assert _what_leaks(after, account, texts) == []


def test_log_out_everywhere_from_another_device_resets_every_open_tab(make_account, login_as, app_server,
                                                                     server_engine):
    account, bystander = make_account(), make_account()
    laptop, phone, other = login_as(account), login_as(account), login_as(bystander)
    course, texts = _course_with_chapter(laptop, f"Everywhere {account.id}")

    async def scenario():
        tabs = [await _open_editor(app_server.base_url, laptop.cookies["cs_session"], course, texts),
                await _open_editor(app_server.base_url, laptop.cookies["cs_session"], course, texts)]
        starts = [len(tab.frames) for tab in tabs]
        began = time.monotonic()
        response = await asyncio.to_thread(phone.post, "/api/auth/logout-everywhere",
                                           headers={"accept": "application/json"})
        assert response.status_code == 204, response.text
        took = []
        for tab, start in zip(tabs, starts):
            await tab.wait_for(_is_reset, start=start, what="the reset of the open tab", timeout=5)
            took.append(time.monotonic() - began)
        after = await _rehydrate(tabs[0])
        for tab in tabs:
            await tab.close()
        return took, after

    took, after = run(scenario())

    assert max(took) < RESET_WITHIN, f"open tabs were reset after {took}"
    assert _what_leaks(after, account, texts) == []
    with server_engine.connect() as conn:
        left = conn.execute(sa.text("SELECT user_id FROM auth_sessions WHERE user_id IN (:a, :b)"),
                            {"a": account.id, "b": bystander.id}).scalars().all()
    assert left == [bystander.id], "every session of the account ended, nobody else's"
    assert_json_error(laptop.get("/api/auth/me"), 401)
    assert other.get("/api/auth/me").status_code == 200


def test_log_out_everywhere_needs_a_log_in(new_client):
    assert_json_error(new_client().post("/api/auth/logout-everywhere"), 401)


def test_log_out_everywhere_as_a_form_goes_to_the_log_in_page(make_account, login_as, app_server):
    """The settings page's button: a plain form post, answered with the log-in page."""
    account = make_account()
    http = login_as(account)

    response = http.post("/api/auth/logout-everywhere", data={}, headers={"origin": app_server.base_url})

    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert not http.cookies.get("cs_session")
    assert_json_error(http.get("/api/auth/me"), 401)
