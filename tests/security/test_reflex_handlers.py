"""Reflex's own event handlers (on rx.State itself and on its internal substates:
hydration, on_load, client storage, frontend errors, shared state), the generic
``setvar`` of every State, and Reflex's upload route naming any handler, sent by
the stranger (B) from their own course page with payloads aimed at what the
server trusts or shows:

- the editor's course id (``CourseState.course_id``: every editor action targets it),
- the tab's API tokens and the token value shown once (``TokensState``),
- the user shown in the header (``SessionState``) and the socket's headers (the
  cookie the user is resolved from),
- A's chapters, smuggled into the browser-storage var of the open chapters.

Each must leave the database unchanged and send nothing of A's; afterwards the
server's State, read back whole through Reflex's ``hydrate``, still holds B's
course, B's tokens and B's e-mail, and an edit made in the page still lands on
B's course.

Reflex's handlers are found by walking rx.State and its substates, so a handler
a Reflex upgrade adds fails the suite until it gets a case here."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
import reflex as rx
import sqlalchemy as sa

from course_app.state.outline import PAGES
from tests.security.support import ROOT_STATE, Tab, find_leaks, run
from tests.security.test_state_handlers import STATES as APP_STATES

FIELD = "_rx_state_"


def reflex_states() -> dict[str, type[rx.State]]:
    """rx.State and every substate Reflex itself defines (not course_app's)."""
    found, pending = {"State": rx.State}, list(rx.State.get_substates())
    while pending:
        cls = pending.pop()
        pending.extend(cls.get_substates())
        if not cls.__module__.startswith("course_app"):
            found[cls.__name__] = cls
    return found


REFLEX_STATES = reflex_states()
ALL_STATES = {**REFLEX_STATES, **APP_STATES}
assert not set(REFLEX_STATES) & set(APP_STATES)
REFLEX_HANDLERS = sorted(f"{name}.{handler}" for name, cls in REFLEX_STATES.items() for handler in cls.event_handlers)
SETVARS = sorted(f"{name}.setvar" for name in ALL_STATES)
UPLOAD_ROUTE = "Reflex's upload route (/_upload)"
UPLOAD_NAMED = [*REFLEX_HANDLERS, "CourseState.setvar", "CourseState.load", "TokensState.create_token"]
CASES_NEEDED = sorted(set(REFLEX_HANDLERS) | set(SETVARS) | {UPLOAD_ROUTE})


def full_name(handler: str) -> str:
    state, name = handler.split(".")
    return f"{ALL_STATES[state].get_full_name()}.{name}"


def var_key(state: str, var: str) -> str:
    """A var as the browser names it in client-storage updates."""
    return f"{ALL_STATES[state].get_full_name()}.{var}"


# What the attacks aim at ------------------------------------------------------------------


@dataclass
class Sandbox:
    """B's own courses for these tests (B's shared furnishings stay as they are):
    the one B's tab edits, with two chapters, and another one."""

    course: str
    title: str
    chapters: list[str] = field(default_factory=list)
    other_course: str = ""
    other_title: str = ""


def _new_course(http: httpx.Client, title: str) -> str:
    response = http.post("/api/courses", json={"title": title})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def sandbox(world) -> Sandbox:
    b, tag = world.b, uuid.uuid4().hex[:8]
    made = Sandbox(course=_new_course(b.http, f"Stranger sandbox {tag}"), title=f"Stranger sandbox {tag}",
                   other_course=_new_course(b.http, f"Stranger other {tag}"), other_title=f"Stranger other {tag}")
    for number in (1, 2):
        response = b.http.post(f"/api/courses/{made.course}/chapters", json={"title": f"Sandbox chapter {number}"})
        assert response.status_code == 201, response.text
        made.chapters.append(response.json()["id"])
    return made


def aimed_values(world, sandbox: Sandbox) -> dict[str, object]:
    """var name -> the value an attacker would like it to hold."""
    a = world.a
    return {
        "course_id": a.course,
        "title": a.texts["course title"],
        "tokens": [{"id": a.token_id, "name": "A's token", "prefix": "cst_", "created": "", "last_used": ""}],
        "new_token": "cst_forged_token_value",
        "user_email": a.email,
        "user_role": "admin",
        "remembered": json.dumps({sandbox.course: a.chapters, a.course: a.chapters}),
        "open_ids": {chapter: True for chapter in a.chapters},
        "_by_chapter": {a.chapters[0]: []},
        "videos_0": {a.chapters[0]: []},
        "chapters": [{"id": chapter, "title": "A's"} for chapter in a.chapters],
        "_chapters": [{"id": chapter, "title": "A's"} for chapter in a.chapters],
        "page_0": [{"id": chapter, "title": "A's"} for chapter in a.chapters],
        "courses": [{"id": a.course, "title": "A's", "status": "draft", "chapter_count": 0, "video_count": 0}],
        "videos": {video: True for video in a.all_videos},
        "playing_id": a.all_videos[0],
        "_identity": "anonymous",
        "rx_router_headers": {"cookie": f"cs_session={a.session_token}"},
        "rx_router_session": {"client_token": "someone-else"},
        "router": {"headers": {"cookie": f"cs_session={a.session_token}"}},
        "is_hydrated": a.course,
        "filter": a.texts["video 1 title"],
    }


def setvar_targets(state: str, aimed: dict[str, object]) -> list[tuple[str, object]]:
    """Every var of the State itself (A's course id as the value where nothing more
    pointed is known) and every aimed var name, whichever State holds it."""
    own = sorted(ALL_STATES[state].base_vars)
    return [(name, aimed.get(name, aimed["course_id"])) for name in own] + \
           [(name, value) for name, value in aimed.items() if name not in own]


def storage_updates(world, sandbox: Sandbox) -> dict[str, object]:
    """Fully named vars for update_vars_internal / hydrate_and_load: the one real
    browser-storage var (the open chapters) filled with A's chapters, and vars the
    browser has no business setting."""
    aimed = aimed_values(world, sandbox)
    return {
        var_key("OutlineState", "remembered"): aimed["remembered"],
        var_key("CourseState", "course_id"): aimed["course_id"],
        var_key("CourseState", "course_id" + FIELD): aimed["course_id"],
        var_key("TokensState", "tokens"): aimed["tokens"],
        var_key("TokensState", "new_token"): aimed["new_token"],
        var_key("SessionState", "user_email"): aimed["user_email"],
        var_key("SessionState", "_identity"): aimed["_identity"],
        var_key("OutlineState", "open_ids"): aimed["open_ids"],
        var_key("VideosState", "by_chapter"): aimed["by_chapter"],
        var_key("State", "rx_router_headers"): aimed["rx_router_headers"],
        var_key("State", "is_hydrated"): aimed["is_hydrated"],
    }


def steps(world, sandbox: Sandbox) -> dict[str, list[tuple]]:
    """handler -> steps: ("event", handler, payload) over the socket, or
    ("upload", handler, args) through Reflex's /_upload route with the tab's token."""
    a = world.a
    aimed = aimed_values(world, sandbox)
    updates = storage_updates(world, sandbox)
    one_by_one = [("event", "UpdateVarsInternalState.update_vars_internal", {"vars": {key: value}})
                  for key, value in updates.items()]
    cases: dict[str, list[tuple]] = {
        "State.hydrate": [("event", "State.hydrate", {}), ("event", "State.hydrate", {"vars": updates})],
        "State.hydrate_and_load": [
            ("event", "State.hydrate_and_load", {"vars": updates, "hashes": ["x"]}),
            ("event", "State.hydrate_and_load", {"vars": {var_key("OutlineState", "remembered"): aimed["remembered"]}}),
            ("event", "State.hydrate_and_load", {"vars": "x", "hashes": {"x": 1}}),
        ],
        "State.set_is_hydrated": [("event", "State.set_is_hydrated", {"value": value})
                                  for value in (True, a.course, {"course_id": a.course})],
        "OnLoadInternalState.on_load_internal": [
            ("event", "OnLoadInternalState.on_load_internal", {}),
            ("event", "OnLoadInternalState.on_load_internal", {"course_id": a.course}),
        ],
        "OnLoadInternalState.set_is_hydrated": [("event", "OnLoadInternalState.set_is_hydrated", {"value": value})
                                                for value in (False, a.course)],
        "UpdateVarsInternalState.update_vars_internal": [
            *one_by_one,
            ("event", "UpdateVarsInternalState.update_vars_internal", {"vars": updates}),
            ("event", "UpdateVarsInternalState.update_vars_internal", {"vars": {f"{ROOT_STATE}.no_such_state.x": 1}}),
        ],
        "FrontendEventExceptionState.handle_frontend_exception": [
            ("event", "FrontendEventExceptionState.handle_frontend_exception",
             {"info": f"TypeError: Cannot read properties of null ({a.course})", "component_stack": a.course}),
            ("event", "FrontendEventExceptionState.handle_frontend_exception",
             {"info": "[/bold][red]x" * 1000, "component_stack": "[link=https://evil.example]y[/link]"}),
            ("event", "FrontendEventExceptionState.handle_frontend_exception",
             {"info": {"a": 1}, "component_stack": None}),
        ],
    }
    for state in ALL_STATES:
        cases[f"{state}.setvar"] = [("event", f"{state}.setvar", {"var_name": name, "value": value})
                                    for name, value in setvar_targets(state, aimed)]
    # Reflex's upload route naming each of these handlers, and the app's own course
    # and token handlers, with the tab's client token: it must not exist.
    cases[UPLOAD_ROUTE] = [("upload", handler, {"var_name": "course_id", "value": a.course, "vars": updates,
                                                "form_data": {"name": "hacked"}}) for handler in UPLOAD_NAMED]
    return cases


def test_every_reflex_handler_and_every_setvar_has_a_case(world, sandbox):
    cases = steps(world, sandbox)
    assert {"State.hydrate", "State.hydrate_and_load", "UpdateVarsInternalState.update_vars_internal",
            "OnLoadInternalState.on_load_internal", "FrontendEventExceptionState.handle_frontend_exception",
            "CourseState.setvar", "TokensState.setvar"} <= set(CASES_NEEDED)
    missing = [handler for handler in CASES_NEEDED if handler not in cases]
    assert not missing, f"Reflex handlers without a case (add one to steps()): {missing}"
    unknown = [handler for handler in cases if handler not in CASES_NEEDED]
    assert not unknown, f"cases for handlers that no longer exist: {unknown}"
    assert set(REFLEX_HANDLERS) <= {handler for _, handler, _ in cases[UPLOAD_ROUTE]}


# Reading the server's State back -------------------------------------------------------------


async def server_state(tab: Tab) -> dict[str, dict]:
    """The tab's whole State as the server holds it: Reflex's hydrate sends it all."""
    frames = await tab.send(full_name("State.hydrate"), {})
    course_state = ALL_STATES["CourseState"].get_full_name()
    for frame in frames:
        delta = frame.get("delta") or {}
        if course_state in delta:
            return {name: {key.removesuffix(FIELD): value for key, value in delta[cls.get_full_name()].items()}
                    for name, cls in ALL_STATES.items() if cls.get_full_name() in delta}
    raise AssertionError(f"hydrate sent no full State: {json.dumps(frames)[:2000]}")


def watched(state: dict[str, dict]) -> dict[str, object]:
    return {
        "course id": state["CourseState"]["course_id"],
        "course title": state["CourseState"]["title"],
        "token ids": sorted(row["id"] for row in state["TokensState"]["tokens"]),
        "token value shown": state["TokensState"]["new_token"],
        "user shown": state["SessionState"]["user_email"],
        "chapters in the outline": sorted(row["id"] for k in range(PAGES)
                                          for row in state["OutlineState"].get(f"page_{k}", [])),
        # which chapters are open is this browser's own preference (its storage var):
        # it may change, but only ever among B's chapters
        "chapters open": sorted(state["OutlineState"]["open_ids"]),
        "chapters with videos loaded": sorted(state["VideosState"]["by_chapter"]),
    }


VIEW_ONLY = ("chapters open", "chapters with videos loaded")


def backend_errors(frames: list) -> int:
    """Reflex's answer to a handler that raised: a toast "An error occurred."."""
    return sum("An error occurred." in json.dumps(event) for frame in frames for event in frame.get("events") or [])


def _course(engine, course_id: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT title, description, status, owner_id FROM courses WHERE id = :c"),
                           {"c": course_id.replace("-", "")}).mappings().one()
        return dict(row)


@dataclass
class Outcome:
    before: dict
    after: dict
    changes: list
    frames: list = field(default_factory=list)  # everything the tab received
    per_step: list = field(default_factory=list)  # (step, frames it caused)
    uploads: list = field(default_factory=list)  # (handler, status code)
    edit: str = ""


async def _attack(world, sandbox: Sandbox, attack: list[tuple]) -> Outcome:
    b = world.b
    tab = Tab(world.base_url, cookie=b.session_token)
    await tab.connect(f"/courses/{sandbox.course}", {"course_id": sandbox.course})
    try:
        await tab.send(full_name("TokensState.load"))  # the token list holds B's tokens too
        before_state = watched(await server_state(tab))
        before = world.snapshot()
        outcome = Outcome(before=before_state, after={}, changes=[])
        for kind, handler, payload in attack:
            if kind == "event":
                frames = await tab.send(full_name(handler), payload)
                outcome.per_step.append(((handler, payload), frames))
            else:
                outcome.uploads.append((handler, _upload(world, tab, handler, payload)))
        await tab.settle()
        outcome.changes = world.unchanged(before)
        outcome.after = watched(await server_state(tab))
        # An edit made in the page afterwards lands on B's course, nowhere else.
        outcome.edit = f"edited {uuid.uuid4().hex}"
        await tab.send(full_name("CourseState.save_description"), {"value": outcome.edit})
        outcome.frames = tab.frames
    finally:
        await tab.close()
    return outcome


def _upload(world, tab: Tab, handler: str, args: dict) -> int:
    """POST /_upload as Reflex's upload component does, with the tab's client token."""
    with httpx.Client(base_url=world.base_url, timeout=30) as http:
        response = http.post(
            "/_upload",
            headers={"Reflex-Client-Token": tab.token, "Reflex-Event-Handler": full_name(handler),
                     "Cookie": f"cs_session={world.b.session_token}", "Origin": world.base_url},
            files={"files": ("x.mp4", b"\x00" * 1024, "video/mp4")},
            data={"__reflex_event_args": json.dumps(args)},
        )
    return response.status_code


def _expected(world, sandbox: Sandbox) -> dict[str, object]:
    tokens = world.b.http.get("/api/tokens")
    assert tokens.status_code == 200, tokens.text
    return {
        "course id": sandbox.course,
        "course title": _course(world.engine, sandbox.course)["title"],
        "token ids": sorted(row["id"] for row in tokens.json()),
        "token value shown": "",
        "user shown": world.b.email,
        "chapters in the outline": sorted(sandbox.chapters),
    }


def _check(world, sandbox: Sandbox, outcome: Outcome, what: str) -> None:
    expected = _expected(world, sandbox)
    # the read-back is real: before the attack it showed B's course, tokens and e-mail
    assert {k: outcome.before[k] for k in expected} == expected, outcome.before
    assert outcome.changes == [], f"{what} changed the database: {outcome.changes}"
    assert find_leaks(json.dumps(outcome.frames), world.secrets_of_a()) == [], f"{what} sent A's data to B"
    changed = {k: (outcome.before[k], outcome.after[k]) for k in outcome.before
               if k not in VIEW_ONLY and outcome.before[k] != outcome.after[k]}
    assert not changed, f"{what} changed the server's State: {changed}"
    for name in VIEW_ONLY:
        assert set(outcome.after[name]) <= set(sandbox.chapters), f"{what}: {name} {outcome.after[name]}"
    assert _course(world.engine, sandbox.course)["description"] == outcome.edit, f"{what}: the edit missed B's course"
    assert _course(world.engine, world.a.course)["description"] == world.a.texts["course description"]


@pytest.mark.parametrize("handler", CASES_NEEDED)
def test_reflexs_handlers_cannot_retarget_the_editor_or_reach_someone_elses_data(world, sandbox, handler):
    cases = steps(world, sandbox)
    if handler not in cases:
        pytest.fail(f"{handler} has no case: add one to steps() in {__name__}")

    outcome = run(_attack(world, sandbox, cases[handler]))

    _check(world, sandbox, outcome, handler)
    for upload_handler, status in outcome.uploads:
        assert status in (404, 405), f"/_upload naming {upload_handler} answered {status}"


@pytest.mark.parametrize("state", sorted(ALL_STATES))
def test_setvar_fails_for_every_var_without_an_explicit_setter(world, sandbox, state):
    """With state_auto_setters off, setvar finds no set_<var> and raises: Reflex's
    error toast comes back and no delta carries the var. The only setter is
    set_is_hydrated (Reflex's own)."""
    aimed = aimed_values(world, sandbox)
    outcome = run(_attack(world, sandbox, [("event", f"{state}.setvar", {"var_name": name, "value": value})
                                           for name, value in setvar_targets(state, aimed)]))

    cls = ALL_STATES[state]
    for (handler, payload), frames in outcome.per_step:
        name = payload["var_name"]
        deltas = json.dumps([frame.get("delta") or {} for frame in frames])
        if hasattr(cls, f"set_{name}"):
            assert name == "is_hydrated", f"{state} has a setter for {name}"
            continue
        assert backend_errors(frames) == 1, f"{state}.setvar({name!r}) did not fail: {frames}"
        assert f'"{name}{FIELD}"' not in deltas, f"{state}.setvar({name!r}) sent the var: {deltas[:1000]}"


def test_the_read_back_sees_a_real_change_of_course(world, sandbox):
    """The control: when the page really moves to B's other course (its on_load with
    that course in the URL), the read-back shows the new course id and the edit
    lands there; so the checks above would see a retargeted editor."""
    async def scenario():
        tab = Tab(world.base_url, cookie=world.b.session_token)
        await tab.connect(f"/courses/{sandbox.course}", {"course_id": sandbox.course})
        try:
            before = watched(await server_state(tab))
            tab.path, tab.query = f"/courses/{sandbox.other_course}", {"course_id": sandbox.other_course}
            await tab.send(full_name("CourseState.load"))
            tab.path, tab.query = f"/courses/{sandbox.course}", {"course_id": sandbox.course}
            after = watched(await server_state(tab))
            edit = f"control {uuid.uuid4().hex}"
            await tab.send(full_name("CourseState.save_description"), {"value": edit})
        finally:
            await tab.close()
        return before, after, edit

    before, after, edit = run(scenario())

    assert before["course id"] == sandbox.course and after["course id"] == sandbox.other_course
    assert after["course title"] == sandbox.other_title
    assert _course(world.engine, sandbox.other_course)["description"] == edit
    assert _course(world.engine, sandbox.course)["description"] != edit
