"""Every public event handler of every State in course_app, called over a real
socket.io connection to the running app (as utils/state.js does) by a stranger
(another instructor) and by an anonymous visitor, with arguments aimed at A's
course, chapters, videos and token. Each call must change nothing in the
database or storage, and no frame sent back may carry A's data or a secret.

The handlers are found by walking the State classes, so one added later
without a case below fails the suite until it gets one (or a reasoned place in
ALLOW_LIST)."""

from __future__ import annotations

import asyncio
import json

import pytest
import reflex as rx

import course_app.course_app  # noqa: F401  (registers every page and State, as the server does)
from tests.security.support import ROOT_STATE, Tab, TokenTaken, errors_shown, find_leaks, redirects, run


def app_states() -> list[type[rx.State]]:
    found, pending = [], list(rx.State.get_substates())
    while pending:
        cls = pending.pop()
        pending.extend(cls.get_substates())
        if cls.__module__.startswith("course_app"):
            found.append(cls)
    return sorted(found, key=lambda cls: cls.__name__)


STATES = {cls.__name__: cls for cls in app_states()}
HANDLERS = sorted(f"{name}.{handler}" for name, cls in STATES.items() for handler in cls.event_handlers)


def full_name(handler: str) -> str:
    state, name = handler.split(".")
    return f"{STATES[state].get_full_name()}.{name}"


# What each handler is sent: steps of (handler, payload), aimed at A's things --------------------

SETVAR = [{"var_name": "course_id", "value": "{course}"}, {"var_name": "_drag_id", "value": "{chapter1}"},
          {"var_name": "tokens", "value": []}, {"var_name": "is_hydrated", "value": True}]


def steps(a) -> dict[str, list[tuple[str, dict]]]:
    v1 = a.videos[a.chapters[0]][0]
    cases = {
        "AuthFormState.load": [("AuthFormState.load", {})],
        "DashboardState.load": [("DashboardState.load", {})],
        "DashboardState.create_course": [("DashboardState.create_course",
                                          {"form_data": {"title": "hacked", "owner_id": a.id, "id": a.course}})],
        "DashboardState.delete_course": [("DashboardState.delete_course", {"course_id": a.course})],
        "DashboardState.dismiss_error": [("DashboardState.dismiss_error", {})],
        "EditorState.load": [("EditorState.load", {})],
        "EditorState.save_title": [("EditorState.save_title", {"value": "hacked"})],
        "EditorState.save_description": [("EditorState.save_description", {"value": "hacked"})],
        "EditorState.toggle_published": [("EditorState.toggle_published", {})],
        "EditorState.add_chapter": [("EditorState.add_chapter", {"form_data": {"title": "hacked"}})],
        "EditorState.rename_chapter": [("EditorState.rename_chapter", {"chapter_id": a.chapters[0], "title": "hacked"})],
        "EditorState.delete_chapter": [("EditorState.delete_chapter", {"chapter_id": a.chapters[1]})],
        "EditorState.move_chapter": [("EditorState.move_chapter", {"chapter_id": a.chapters[0], "offset": 1}),
                                     ("EditorState.move_chapter", {"chapter_id": a.chapters[1], "offset": -1})],
        "EditorState.drag_start": [("EditorState.drag_start", {"chapter_id": a.chapters[1]})],
        "EditorState.drop_on": [("EditorState.drag_start", {"chapter_id": a.chapters[1]}),
                                ("EditorState.drop_on", {"target_id": a.chapters[0]})],
        "EditorState.dismiss_error": [("EditorState.dismiss_error", {})],
        "VideosState.load": [("VideosState.load", {})],
        "VideosState.refresh": [("VideosState.refresh", {"payload": {"id": v1, "course_id": a.course}})],
        "VideosState.rename": [("VideosState.rename", {"video_id": v1, "title": "hacked"})],
        "VideosState.move": [("VideosState.move", {"video_id": v1, "offset": 1})],
        "VideosState.move_to_chapter": [("VideosState.move_to_chapter", {"video_id": v1, "chapter_id": a.chapters[1]})],
        "VideosState.delete": [("VideosState.delete", {"video_id": v1})],
        "VideosState.play": [("VideosState.play", {"video_id": v1})],
        "VideosState.stop_playing": [("VideosState.stop_playing", {})],
        "VideosState.dismiss_error": [("VideosState.dismiss_error", {})],
        "SessionState.require_login": [("SessionState.require_login", {})],
        "SessionState.redirect_if_logged_in": [("SessionState.redirect_if_logged_in", {})],
        "TokensState.load": [("TokensState.load", {})],
        "TokensState.create_token": [("TokensState.create_token", {"form_data": {"name": "hacked", "user_id": a.id}})],
        "TokensState.clear_new_token": [("TokensState.clear_new_token", {})],
        "TokensState.revoke_token": [("TokensState.revoke_token", {"token_id": a.token_id})],
    }
    for state in STATES:
        cases[f"{state}.setvar"] = [
            (f"{state}.setvar", {k: (v.format(course=a.course, chapter1=a.chapters[0]) if isinstance(v, str) else v)
                                 for k, v in payload.items()})
            for payload in SETVAR
        ]
    return cases


# Handlers that touch no data of anyone's: still sent (above), but they owe no
# refusal (no log-in redirect for the anonymous visitor, no error for the stranger).
ALLOW_LIST = {
    "AuthFormState.load": "reads only the page's own URL (a signed message, the e-mail and next path typed there)",
    "DashboardState.dismiss_error": "clears the tab's own error message",
    "EditorState.dismiss_error": "clears the tab's own error message",
    "VideosState.dismiss_error": "clears the tab's own error message",
    "EditorState.drag_start": "remembers a dragged chapter id in a backend-only var; drop_on checks it against the tab's own list",
    "VideosState.stop_playing": "closes the tab's own player",
    "TokensState.clear_new_token": "forgets the token value shown once to the tab's own user",
    "SessionState.redirect_if_logged_in": "on_load of the log-in page: sends a logged-in user to the dashboard, nobody elsewhere",
    **{f"{state}.setvar": "Reflex's generic setter: with state_auto_setters off no State has a set_<var> method, "
                          "so every var name fails (shown below: nothing changes)" for state in STATES},
}

# Handlers that, called by the stranger on A's things, must say why they refused.
STRANGER_SEES_AN_ERROR = {
    "DashboardState.delete_course", "EditorState.load", "EditorState.save_title", "EditorState.save_description",
    "EditorState.toggle_published", "EditorState.add_chapter", "EditorState.rename_chapter",
    "EditorState.delete_chapter", "EditorState.move_chapter", "VideosState.refresh", "VideosState.rename",
    "VideosState.move", "VideosState.move_to_chapter", "VideosState.delete", "TokensState.revoke_token",
}
# Handlers that create things of the caller's own: the stranger's new rows are no attack.
OWN_THINGS = {"DashboardState.create_course", "TokensState.create_token"}


def test_every_handler_has_a_case_and_every_allowance_a_reason(world):
    cases = steps(world.a)
    assert HANDLERS, "no State handlers found"
    missing = [h for h in HANDLERS if h not in cases]
    assert not missing, f"handlers without a security case (add one to steps()): {missing}"
    unknown = sorted((set(cases) | set(ALLOW_LIST) | STRANGER_SEES_AN_ERROR | OWN_THINGS) - set(HANDLERS))
    assert not unknown, f"cases for handlers that no longer exist: {unknown}"
    assert all(len(reason) > 20 for reason in ALLOW_LIST.values())


async def _open(world, who: str, scenario: str) -> Tab:
    """The attacker's tab on A's course page. "fresh": a tab of their own.
    "stale": the same tab A just used (same client token, A's course already
    loaded into the server's State), now with the attacker's cookie or none, and
    reconnected without a page load, so the stored State is used as it is."""
    a = world.a
    cookie = world.b.session_token if who == "stranger" else None
    page = (f"/courses/{a.course}", {"course_id": a.course})
    if scenario == "fresh":
        tab = Tab(world.base_url, cookie=cookie)
        await tab.connect(*page)
        return tab
    owner = Tab(world.base_url, cookie=a.session_token)
    await owner.connect(*page)
    loaded = json.dumps(owner.frames)
    assert a.texts["chapter 1 title"] in loaded and a.texts["video 1 title"] in loaded  # A's mirror is in the State
    await owner.close()
    for _ in range(20):
        tab = Tab(world.base_url, cookie=cookie, token=owner.token)
        try:
            await tab.connect(*page, hydrate=False)
            return tab
        except TokenTaken:
            await asyncio.sleep(0.25)  # the server has not yet unlinked A's socket
    raise AssertionError("could not reconnect with A's client token")


async def _exercise(world, who: str, scenario: str, handler: str) -> tuple[Tab, list, list[str]]:
    tab = await _open(world, who, scenario)
    try:
        before = world.snapshot()
        frames = []
        for name, payload in steps(world.a)[handler]:
            frames += await tab.send(full_name(name), payload)
        may_create_for = world.b.id if who == "stranger" and handler in OWN_THINGS else None
        changes = world.unchanged(before, may_create_for=may_create_for)
    finally:
        await tab.close()
    return tab, frames, changes


@pytest.mark.parametrize("scenario", ["fresh", "stale"])
@pytest.mark.parametrize("who", ["stranger", "anonymous"])
@pytest.mark.parametrize("handler", HANDLERS)
def test_a_handler_aimed_at_someone_elses_data_is_refused_and_changes_nothing(world, handler, who, scenario):
    if handler not in steps(world.a):
        pytest.fail(f"{handler} has no security case: add one to steps() in {__name__}")

    tab, frames, changes = run(_exercise(world, who, scenario, handler))

    assert changes == [], f"{handler} as {who} ({scenario}) changed: {changes}"
    everything = json.dumps(tab.frames)
    assert find_leaks(everything, world.secrets_of_a()) == [], f"{handler} as {who} ({scenario}) leaked"
    if handler in ALLOW_LIST:
        return
    if who == "anonymous":
        assert any(path.startswith("/login") for path in redirects(frames)), \
            f"{handler} did not send the anonymous visitor to log in: {frames}"
    elif handler in STRANGER_SEES_AN_ERROR:
        assert errors_shown(frames), f"{handler} refused the stranger without a word: {frames}"


def test_a_stranger_creating_things_of_their_own_cannot_make_them_someone_elses(world):
    """create_course and create_token ignore ids and owners smuggled into the form."""
    async def scenario():
        tab = Tab(world.base_url, cookie=world.b.session_token)
        await tab.connect("/dashboard")
        course_frames = await tab.send(full_name("DashboardState.create_course"),
                                       {"form_data": {"title": "Smuggled", "owner_id": world.a.id, "id": world.a.course}})
        await tab.close()
        return course_frames

    before = world.snapshot()
    frames = run(scenario())

    new_course = [path for path in redirects(frames) if path.startswith("/courses/")]
    assert len(new_course) == 1 and world.a.course not in new_course[0], frames
    created = [row for key, row in world.snapshot().rows["courses"].items() if key not in before.rows["courses"]]
    assert [(row["title"], row["owner_id"]) for row in created] == [("Smuggled", world.b.id)]


# IDOR: ids mixed from both users, the stranger on their own course page --------------------------


def _first(person) -> str:
    return person.videos[person.chapters[0]][0]


MIXED = {
    "move B's video into A's chapter":
        lambda a, b: [("VideosState.move_to_chapter", {"video_id": _first(b), "chapter_id": a.chapters[0]})],
    "move A's video into B's chapter":
        lambda a, b: [("VideosState.move_to_chapter", {"video_id": _first(a), "chapter_id": b.chapters[0]})],
    "rename A's video": lambda a, b: [("VideosState.rename", {"video_id": _first(a), "title": "hacked"})],
    "reorder A's video": lambda a, b: [("VideosState.move", {"video_id": _first(a), "offset": 1})],
    "delete A's video": lambda a, b: [("VideosState.delete", {"video_id": _first(a)})],
    "play A's video": lambda a, b: [("VideosState.play", {"video_id": _first(a)})],
    "rename A's chapter": lambda a, b: [("EditorState.rename_chapter", {"chapter_id": a.chapters[0], "title": "hacked"})],
    "delete A's chapter": lambda a, b: [("EditorState.delete_chapter", {"chapter_id": a.chapters[0]})],
    "move A's chapter": lambda a, b: [("EditorState.move_chapter", {"chapter_id": a.chapters[1], "offset": -1})],
    "drag A's chapter onto B's": lambda a, b: [("EditorState.drag_start", {"chapter_id": a.chapters[0]}),
                                              ("EditorState.drop_on", {"target_id": b.chapters[0]})],
    "drag B's chapter onto A's": lambda a, b: [("EditorState.drag_start", {"chapter_id": b.chapters[0]}),
                                              ("EditorState.drop_on", {"target_id": a.chapters[0]})],
    "delete A's course from B's page": lambda a, b: [("DashboardState.delete_course", {"course_id": a.course})],
    "revoke A's token": lambda a, b: [("TokensState.revoke_token", {"token_id": a.token_id})],
    "refresh naming A's course": lambda a, b: [("VideosState.refresh", {"payload": {"course_id": a.course}})],
}


@pytest.mark.parametrize("case", list(MIXED))
def test_ids_mixed_from_two_users_are_refused_on_the_strangers_own_page(world, case):
    a, b = world.a, world.b

    async def scenario():
        tab = Tab(world.base_url, cookie=b.session_token)
        await tab.connect(f"/courses/{b.course}", {"course_id": b.course})
        loaded = json.dumps(tab.frames)
        assert b.texts["video 1 title"] in loaded  # B's own course is loaded: B's ids are in the mirror
        before = world.snapshot()
        frames = []
        for name, payload in MIXED[case](a, b):
            frames += await tab.send(full_name(name), payload)
        changes = world.unchanged(before)
        await tab.close()
        return tab, frames, changes

    tab, frames, changes = run(scenario())

    assert changes == [], f"{case}: {changes}"
    assert find_leaks(json.dumps(tab.frames), world.secrets_of_a()) == []


# The same tab after log-out, or with someone else logged in -----------------------------------


@pytest.mark.parametrize("who", ["anonymous", "stranger"])
@pytest.mark.parametrize("next_page", ["/login", "/dashboard", "/settings", "/courses/{course}"])
def test_the_next_page_load_in_the_same_tab_shows_nothing_of_the_previous_user(world, who, next_page):
    """A tab keeps its client token across log-out and log-in; the State stored
    under it must not be sent to whoever uses the tab next (the hydration sends
    the whole stored tree before any on_load runs)."""
    a = world.a

    async def scenario():
        owner = Tab(world.base_url, cookie=a.session_token)
        await owner.connect("/settings")
        frames = await owner.send(full_name("TokensState.create_token"), {"form_data": {"name": "Shown once"}})
        shown = [v for f in frames for s in (f.get("delta") or {}).values() for k, v in s.items()
                 if k.startswith("new_token") and v]
        assert shown and shown[0].startswith("cst_")  # the owner sees the new value once
        await owner.send(full_name("DashboardState.load"))
        await owner.send(full_name("EditorState.load"))
        await owner.close()
        path = next_page.format(course=a.course)
        for _ in range(20):
            tab = Tab(world.base_url, cookie=world.b.session_token if who == "stranger" else None, token=owner.token)
            try:
                await tab.connect(path, {"course_id": a.course} if "{course}" in next_page else {})
            except TokenTaken:
                await asyncio.sleep(0.25)  # the server has not yet unlinked A's socket
                continue
            await tab.close()
            return shown[0], tab
        raise AssertionError("could not reconnect with A's client token")

    new_token, tab = run(scenario())

    secrets = {**world.secrets_of_a(), "the API token just created": new_token}
    assert find_leaks(json.dumps(tab.frames), secrets) == []
    # the token was really created (and stays A's, usable by A only)
    response = world.a.http.get("/api/tokens")
    assert "Shown once" in [t["name"] for t in response.json()]


def test_the_owner_sees_their_own_data_and_no_secret(world):
    """The control: A's own tab does receive A's data (so the leak checks above
    look for the right strings), and never a password hash, session token, the
    secret key, storage credentials or the database URL."""
    a = world.a

    async def scenario():
        tab = Tab(world.base_url, cookie=a.session_token)
        await tab.connect(f"/courses/{a.course}", {"course_id": a.course})
        await tab.send(full_name("DashboardState.load"))
        await tab.send(full_name("TokensState.load"))
        await tab.send(full_name("SessionState.require_login"))
        await tab.close()
        return tab

    tab = run(scenario())

    text = json.dumps(tab.frames)
    for name in ("course title", "chapter 1 title", "chapter 2 title", "video 1 title", "video 3 file name", "token name"):
        assert a.texts[name] in text, name
    assert a.email in text
    secrets = {**world.server_secrets(), "A's session token": a.session_token, "A's API token": a.token_value,
               "B's e-mail": world.b.email, "B's course": world.b.texts["course title"]}
    assert find_leaks(text, secrets) == []
    assert ROOT_STATE in text
