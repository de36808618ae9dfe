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

SETVAR = [{"var_name": "course_id", "value": "{course}"}, {"var_name": "_move_ids", "value": ["{chapter1}"]},
          {"var_name": "tokens", "value": []}, {"var_name": "is_hydrated", "value": True}]


def steps(a) -> dict[str, list[tuple[str, dict]]]:
    v1 = a.videos[a.chapters[0]][0]
    c1, c2 = a.chapters[0], a.chapters[1]
    cases = {
        "AuthFormState.load": [("AuthFormState.load", {})],
        "DashboardState.load": [("DashboardState.load", {})],
        "DashboardState.create_course": [("DashboardState.create_course",
                                          {"form_data": {"title": "hacked", "owner_id": a.id, "id": a.course}})],
        "DashboardState.delete_course": [("DashboardState.delete_course", {"course_id": a.course})],
        "DashboardState.dismiss_error": [("DashboardState.dismiss_error", {})],
        "CourseState.load": [("CourseState.load", {})],
        "CourseState.save_title": [("CourseState.save_title", {"value": "hacked"})],
        "CourseState.save_description": [("CourseState.save_description", {"value": "hacked"})],
        "CourseState.toggle_published": [("CourseState.toggle_published", {})],
        "OutlineState.add_chapter": [("OutlineState.add_chapter", {"form_data": {"title": "hacked"}})],
        "OutlineState.rename_chapter": [("OutlineState.rename_chapter", {"chapter_id": c1, "title": "hacked"})],
        "OutlineState.move_chapter": [("OutlineState.move_chapter", {"chapter_id": c1, "offset": 1}),
                                      ("OutlineState.move_chapter", {"chapter_id": c2, "offset": -1})],
        "OutlineState.drop_chapter": [("OutlineState.drop_chapter", {"payload": {"chapter_id": c2, "target_id": c1}})],
        "OutlineState.toggle_open": [("OutlineState.toggle_open", {"chapter_id": c1})],
        "OutlineState.expand_all": [("OutlineState.expand_all", {})],
        "OutlineState.collapse_all": [("OutlineState.collapse_all", {})],
        "OutlineState.apply_filter": [("OutlineState.apply_filter", {"text": "video"})],
        "OutlineState.toggle_status_filter": [("OutlineState.toggle_status_filter", {"status": "failed"})],
        "OutlineState.clear_filter": [("OutlineState.clear_filter", {})],
        "VideosState.rename": [("VideosState.rename", {"video_id": v1, "title": "hacked"})],
        "VideosState.move": [("VideosState.move", {"video_id": v1, "offset": 1})],
        "VideosState.move_videos": [("VideosState.move_videos",
                                     {"payload": {"video_ids": [v1], "chapter_id": c2, "before_id": None}})],
        "VideosState.upload_changed": [("VideosState.upload_changed", {"payload": {"chapter_id": c1}})],
        "VideosState.upload_retried": [("VideosState.upload_retried", {"payload": {"retried": 0, "missing": [v1]}})],
        "VideosState.retry_processing": [("VideosState.retry_processing", {"video_id": v1})],
        "VideosState.retry_replacement": [("VideosState.retry_replacement", {"video_id": v1})],
        "VideosState.dismiss_replacement": [("VideosState.dismiss_replacement", {"video_id": v1})],
        "PlayerState.play": [("PlayerState.play", {"video_id": v1})],
        "PlayerState.stop_playing": [("PlayerState.stop_playing", {})],
        "PreviewState.load": [("PreviewState.load", {})],  # the page's course id is A's (a draft)
        "PreviewPlayerState.play": [("PreviewPlayerState.play", {"video_id": v1})],
        "PreviewPlayerState.next_lesson": [("PreviewPlayerState.next_lesson", {})],
        "PreviewPlayerState.previous_lesson": [("PreviewPlayerState.previous_lesson", {})],
        "SelectionState.toggle_video": [("SelectionState.toggle_video", {"video_id": v1, "shift": False})],
        "SelectionState.toggle_chapter_videos": [("SelectionState.toggle_chapter_videos", {"chapter_id": c1})],
        "SelectionState.toggle_chapter": [("SelectionState.toggle_chapter", {"chapter_id": c1})],
        "SelectionState.clear": [("SelectionState.clear", {})],
        "DialogState.open_move": [("DialogState.open_move", {"video_id": v1}),
                                  ("DialogState.move_to", {"chapter_id": c2})],
        "DialogState.open_move_selected": [("SelectionState.toggle_video", {"video_id": v1, "shift": False}),
                                           ("DialogState.open_move_selected", {}),
                                           ("DialogState.move_to", {"chapter_id": c2})],
        "DialogState.move_to": [("DialogState.move_to", {"chapter_id": c2})],
        "DialogState.close_move": [("DialogState.close_move", {})],
        "DialogState.ask_delete_video": [("DialogState.ask_delete_video", {"video_id": v1}),
                                         ("DialogState.confirm", {})],
        "DialogState.ask_delete_selected_videos": [("SelectionState.toggle_video", {"video_id": v1, "shift": False}),
                                                   ("DialogState.ask_delete_selected_videos", {}),
                                                   ("DialogState.confirm", {})],
        "DialogState.ask_delete_chapter": [("DialogState.ask_delete_chapter", {"chapter_id": c2}),
                                           ("DialogState.confirm", {})],
        "DialogState.ask_delete_selected_chapters": [("SelectionState.toggle_chapter", {"chapter_id": c2}),
                                                     ("DialogState.ask_delete_selected_chapters", {}),
                                                     ("DialogState.confirm", {})],
        "DialogState.close_confirm": [("DialogState.close_confirm", {})],
        "DialogState.confirm": [("DialogState.confirm", {})],
        "NoticeState.dismiss": [("NoticeState.dismiss", {})],
        "LiveState.follow": [("LiveState.follow", {})],
        "UndoState.undo": [("UndoState.undo", {})],
        "UndoState.dismiss": [("UndoState.dismiss", {})],
        "RateLimitState.dismiss": [("RateLimitState.dismiss", {})],
        "SessionState.require_login": [("SessionState.require_login", {})],
        "SessionState.redirect_if_logged_in": [("SessionState.redirect_if_logged_in", {})],
        "SessionState.session_ended": [("SessionState.session_ended", {})],
        "TokensState.load": [("TokensState.load", {})],
        "TokensState.create_token": [("TokensState.create_token", {"form_data": {"name": "hacked", "user_id": a.id}})],
        "TokensState.clear_new_token": [("TokensState.clear_new_token", {})],
        "TokensState.revoke_token": [("TokensState.revoke_token", {"token_id": a.token_id})],
        "TrashState.load": [("TrashState.load", {})],
        "TrashState.restore": [("TrashState.restore", {"kind": "video", "item_id": a.trashed_video}),
                               ("TrashState.restore", {"kind": "chapter", "item_id": a.trashed_chapter})],
        "TrashState.purge": [("TrashState.purge", {"kind": "video", "item_id": a.trashed_video}),
                             ("TrashState.purge", {"kind": "chapter", "item_id": a.trashed_chapter})],
        "TrashState.dismiss": [("TrashState.dismiss", {})],
    }
    for state in STATES:
        cases[f"{state}.setvar"] = [
            (f"{state}.setvar", {k: (_fill(v, a) if isinstance(v, (str, list)) else v) for k, v in payload.items()})
            for payload in SETVAR
        ]
    return cases


def _fill(value, a):
    if isinstance(value, list):
        return [_fill(v, a) for v in value]
    return value.format(course=a.course, chapter1=a.chapters[0])


# Handlers that touch no data of anyone's: still sent (above), but they owe no
# refusal (no log-in redirect for the anonymous visitor, no error for the stranger).
ALLOW_LIST = {
    "AuthFormState.load": "reads only the page's own URL (a signed message, the e-mail and next path typed there)",
    "DashboardState.dismiss_error": "clears the tab's own error message",
    "NoticeState.dismiss": "clears the tab's own error message",
    "TrashState.dismiss": "clears the trash page's own error and done messages",
    "RateLimitState.dismiss": "clears the tab's own rate-limit message",
    "PlayerState.stop_playing": "closes the tab's own player",
    "SelectionState.clear": "empties the tab's own selection of rows (ids only, no data)",
    "DialogState.close_move": "closes the tab's own move dialog and forgets the ids it was opened for",
    "DialogState.close_confirm": "closes the tab's own delete confirmation and forgets the ids it was opened for",
    "TokensState.clear_new_token": "forgets the token value shown once to the tab's own user",
    "SessionState.redirect_if_logged_in": "on_load of the log-in page: sends a logged-in user to the dashboard, nobody elsewhere",
    **{f"{state}.setvar": "Reflex's generic setter: with state_auto_setters off no State has a set_<var> method, "
                          "so every var name fails (proved var by var in test_reflex_handlers.py)" for state in STATES},
}

# Handlers that, called by the stranger on A's things, must say why they refused.
STRANGER_SEES_AN_ERROR = {
    "DashboardState.delete_course", "CourseState.load", "CourseState.save_title", "CourseState.save_description",
    "CourseState.toggle_published", "OutlineState.add_chapter", "OutlineState.rename_chapter",
    "OutlineState.move_chapter", "OutlineState.drop_chapter", "OutlineState.toggle_open", "OutlineState.expand_all",
    "OutlineState.apply_filter", "OutlineState.toggle_status_filter", "OutlineState.clear_filter",
    "VideosState.rename", "VideosState.move", "VideosState.move_videos", "VideosState.upload_changed",
    "VideosState.retry_processing", "PlayerState.play", "PreviewState.load", "PreviewPlayerState.play",
    "SelectionState.toggle_video", "SelectionState.toggle_chapter_videos",
    "SelectionState.toggle_chapter", "DialogState.open_move", "DialogState.open_move_selected",
    "DialogState.ask_delete_video", "DialogState.ask_delete_selected_videos", "DialogState.ask_delete_chapter",
    "DialogState.ask_delete_selected_chapters", "TokensState.revoke_token", "TrashState.load", "TrashState.restore",
    "TrashState.purge",
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
    "move B's video into A's chapter": lambda a, b: [
        ("VideosState.move_videos", {"payload": {"video_ids": [_first(b)], "chapter_id": a.chapters[0], "before_id": None}})],
    "move A's video into B's chapter": lambda a, b: [
        ("VideosState.move_videos", {"payload": {"video_ids": [_first(a)], "chapter_id": b.chapters[0], "before_id": None}})],
    "move B's video before A's": lambda a, b: [
        ("VideosState.move_videos", {"payload": {"video_ids": [_first(b)], "chapter_id": b.chapters[0],
                                                 "before_id": _first(a)}})],
    "move A's and B's videos together": lambda a, b: [
        ("VideosState.move_videos", {"payload": {"video_ids": [_first(b), _first(a)], "chapter_id": b.chapters[0],
                                                 "before_id": None}})],
    "rename A's video": lambda a, b: [("VideosState.rename", {"video_id": _first(a), "title": "hacked"})],
    "reorder A's video": lambda a, b: [("VideosState.move", {"video_id": _first(a), "offset": 1})],
    "retry A's video": lambda a, b: [("VideosState.retry_processing", {"video_id": _first(a)})],
    "delete A's video": lambda a, b: [("DialogState.ask_delete_video", {"video_id": _first(a)}),
                                      ("DialogState.confirm", {})],
    "select A's video, then delete the selection": lambda a, b: [
        ("SelectionState.toggle_video", {"video_id": _first(a), "shift": False}),
        ("DialogState.ask_delete_selected_videos", {}), ("DialogState.confirm", {})],
    "play A's video": lambda a, b: [("PlayerState.play", {"video_id": _first(a)})],
    "preview-play A's video": lambda a, b: [("PreviewPlayerState.play", {"video_id": _first(a)})],
    "open A's chapter": lambda a, b: [("OutlineState.toggle_open", {"chapter_id": a.chapters[0]})],
    "rename A's chapter": lambda a, b: [("OutlineState.rename_chapter", {"chapter_id": a.chapters[0], "title": "hacked"})],
    "delete A's chapter": lambda a, b: [("DialogState.ask_delete_chapter", {"chapter_id": a.chapters[0]}),
                                        ("DialogState.confirm", {})],
    "select A's chapter, then delete the selection": lambda a, b: [
        ("SelectionState.toggle_chapter", {"chapter_id": a.chapters[0]}),
        ("DialogState.ask_delete_selected_chapters", {}), ("DialogState.confirm", {})],
    "move A's chapter": lambda a, b: [("OutlineState.move_chapter", {"chapter_id": a.chapters[1], "offset": -1})],
    "drag A's chapter onto B's": lambda a, b: [
        ("OutlineState.drop_chapter", {"payload": {"chapter_id": a.chapters[0], "target_id": b.chapters[0]}})],
    "drag B's chapter onto A's": lambda a, b: [
        ("OutlineState.drop_chapter", {"payload": {"chapter_id": b.chapters[0], "target_id": a.chapters[0]}})],
    "delete A's course from B's page": lambda a, b: [("DashboardState.delete_course", {"course_id": a.course})],
    "revoke A's token": lambda a, b: [("TokensState.revoke_token", {"token_id": a.token_id})],
    "refresh naming A's chapter": lambda a, b: [("VideosState.upload_changed", {"payload": {"chapter_id": a.chapters[0]}})],
    "restore A's trashed video and chapter": lambda a, b: [
        ("TrashState.load", {}), ("TrashState.restore", {"kind": "video", "item_id": a.trashed_video}),
        ("TrashState.restore", {"kind": "chapter", "item_id": a.trashed_chapter})],
    "delete A's trashed video and chapter forever": lambda a, b: [
        ("TrashState.load", {}), ("TrashState.purge", {"kind": "video", "item_id": a.trashed_video}),
        ("TrashState.purge", {"kind": "chapter", "item_id": a.trashed_chapter})],
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
        await owner.send(full_name("CourseState.load"))
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
