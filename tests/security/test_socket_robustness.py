"""Hostile socket messages: wrong argument types for every handler argument,
missing and extra arguments, malformed event frames, names of private methods,
names of functions that would run a command (a marker file shows none ran), and
payloads over the socket's 1 MB limit (the connection must be refused or closed,
not merely left waiting). None may crash the backend or change data; afterwards
/ping answers and a normal user can still use the app."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import sys

import pytest
import socketio

from tests.security.support import EVENT_NAMESPACE, ROOT_STATE, SocketClosed, Tab, find_leaks, run
from tests.security.test_state_handlers import HANDLERS, STATES, full_name

# python-socketio's client walks a payload recursively (looking for binary parts).
sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

BAD_VALUES = {
    "a string": "not-what-you-expect",
    "a number": 12345,
    "a huge int": 10**40,
    "a negative huge int": -(10**40),
    "a float": 1e308,
    "a bool": True,
    "None": None,
    "a list": ["a", 1, None, {"x": 1}],
    "a nested dict": {"title": {"title": {"title": ["hacked"]}}, "__class__": "x"},
    "a deep nesting (500 levels)": json.loads("[" * 500 + "]" * 500),
    "a long string (200 kB)": "x" * 200_000,
    "control characters": "a\x00b\u202ec\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
}


def parameters(handler: str) -> list[str]:
    state, name = handler.split(".")
    fn = STATES[state].event_handlers[name].fn
    return [p for p in inspect.signature(fn).parameters if p != "self"]


WITH_ARGUMENTS = [h for h in HANDLERS if parameters(h)]


def _hint(handler: str, param: str):
    state, name = handler.split(".")
    return (STATES[state].event_handlers[name]._type_hints or {}).get(param)


def _wrong_for(handler: str, param: str, kind: str) -> bool:
    """Whether the bad value is really of the wrong type for this argument (a
    short plain string is a valid title: sending it would be a real edit)."""
    return not (kind == "a string" and _hint(handler, param) is str)


def barrage(kind: str) -> list[tuple[str, dict]]:
    """(handler, payload) for every handler that takes arguments: each argument
    wrong on its own (the others a harmless "x", which is no one's id), then all."""
    events = []
    for handler in WITH_ARGUMENTS:
        params = parameters(handler)
        if kind == "missing arguments":
            events.append((handler, {}))
        elif kind == "unknown extra argument":
            events.append((handler, {**{p: "x" for p in params}, "__init__": 1, "self": 2}))
        else:
            wrong = [p for p in params if _wrong_for(handler, p, kind)]
            for param in wrong:
                events.append((handler, {p: (BAD_VALUES[kind] if p == param else "x") for p in params}))
            if len(wrong) > 1:
                events.append((handler, {p: (BAD_VALUES[kind] if p in wrong else "x") for p in params}))
    return events


KINDS = [*BAD_VALUES, "missing arguments", "unknown extra argument"]


async def _stranger_tab(world) -> Tab:
    """The stranger on their own course page: their own ids are in the mirror,
    so the handlers get past the first checks."""
    tab = Tab(world.base_url, cookie=world.b.session_token)
    await tab.connect(f"/courses/{world.b.course}", {"course_id": world.b.course})
    return tab


async def _still_serving(world) -> None:
    """/ping answers, the API answers and a fresh tab hydrates and loads data."""
    assert world.b.http.get("/ping").status_code == 200
    assert world.b.http.get("/api/courses").status_code == 200
    tab = Tab(world.base_url, cookie=world.b.session_token)
    await tab.connect("/dashboard")
    await tab.close()
    assert world.b.texts["course title"] in json.dumps(tab.frames), json.dumps(tab.frames)[-3000:]


def test_every_handler_argument_is_covered():
    assert WITH_ARGUMENTS
    for kind in KINDS:
        assert barrage(kind), kind


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_argument_types_crash_nothing_and_change_nothing(world, kind):
    events = barrage(kind)

    async def scenario():
        tab = await _stranger_tab(world)
        before = world.snapshot()
        for handler, payload in events:
            await tab.emit(full_name(handler), payload)
        await tab.settle()
        connected = tab.sio.connected
        changes = world.unchanged(before)
        await tab.close()
        await _still_serving(world)
        return tab, connected, changes

    tab, connected, changes = run(scenario())

    assert connected, "the server dropped the socket"
    assert changes == [], changes
    assert find_leaks(json.dumps(tab.frames), world.secrets_of_a()) == []


def _at(state: str, name: str) -> str:
    return f"{STATES[state].get_full_name()}.{name}"


# "{a}", "{a_session}", "{a_video}" and "{marker}" are filled in per test (A's ids,
# A's session token, and a file that exists only if the server ran a command).
MALFORMED = {
    "event data is a string": "hello",
    "event data is JSON text": json.dumps({"name": "x"}),
    "event data is a number": 42,
    "event data is a list": [1, 2, 3],
    "event data is null": None,
    "no name": {"payload": {}},
    "an unknown handler": {"name": _at("CourseState", "no_such_handler"), "payload": {}},
    "an unknown state": {"name": f"{ROOT_STATE}.no_such_state.load", "payload": {}},
    "a private method": {"name": _at("VideosState", "_delete"), "payload": {"user": None, "ids": ["{a_video}"]}},
    "a private reload": {"name": _at("DashboardState", "_reload"), "payload": {"user": None}},
    "a dunder": {"name": _at("CourseState", "__init__"), "payload": {}},
    "a var, not a handler": {"name": _at("OutlineState", "filter_text"), "payload": {}},
    "a dotted path out of the tree": {"name": "os.system", "payload": {"command": "touch {marker}"}},
    "a module function under the root state": {"name": f"{ROOT_STATE}.os.system",
                                               "payload": {"command": "touch {marker}"}},
    "a subprocess function by name": {"name": "subprocess.getoutput", "payload": {"cmd": "touch {marker}"}},
    "exec by name": {"name": "builtins.exec", "payload": {"source": "import os; os.system('touch {marker}')"}},
    "payload is a string": {"name": _at("CourseState", "load"), "payload": "x"},
    "payload is a list": {"name": _at("CourseState", "save_title"), "payload": ["x"]},
    "router_data is a string": {"name": _at("CourseState", "load"), "payload": {}, "router_data": "x"},
    "router_data points at A's course": {"name": _at("CourseState", "load"), "payload": {},
                                         "router_data": {"pathname": "/courses/{a}", "query": {"course_id": "{a}"}}},
    "a forged client token": {"name": _at("CourseState", "load"), "payload": {}, "token": "someone-elses-token"},
    "a forged session in router_data": {"name": _at("DashboardState", "load"),
                                        "payload": {}, "router_data": {"headers": {"cookie": "cs_session={a_session}"}}},
    "a hydrate with forged storage vars": {"name": f"{ROOT_STATE}.hydrate_and_load",
                                           "payload": {"vars": {"x.y": 1, f"{ROOT_STATE}.is_hydrated": "x"}, "hashes": "x"}},
}
RUNS_A_COMMAND = {"a dotted path out of the tree", "a module function under the root state",
                  "a subprocess function by name", "exec by name"}


def test_the_malformed_cases_name_what_they_say():
    """Each case still aims at what its name says (a State split or renamed would
    otherwise turn "a private method" into just "an unknown state")."""
    assert "_delete" not in STATES["VideosState"].event_handlers and callable(STATES["VideosState"]._delete)
    assert "_reload" not in STATES["DashboardState"].event_handlers and callable(STATES["DashboardState"]._reload)
    assert "filter_text" in STATES["OutlineState"].base_vars
    assert "no_such_handler" not in STATES["CourseState"].event_handlers
    for handler in ("CourseState.load", "CourseState.save_title", "DashboardState.load"):
        assert handler in HANDLERS, handler
    assert all("touch {marker}" in json.dumps(MALFORMED[case]) for case in RUNS_A_COMMAND)


def _filled(case: str, world, marker) -> object:
    text = json.dumps(MALFORMED[case]).replace("{marker}", str(marker))
    return json.loads(text.replace("{a}", world.a.course).replace("{a_session}", world.a.session_token)
                      .replace("{a_video}", world.a.all_videos[0]))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_event_frame_crashes_nothing_and_changes_nothing(world, case, tmp_path):
    marker = tmp_path / "the-server-ran-a-command"
    raw = _filled(case, world, marker)

    async def scenario():
        tab = await _stranger_tab(world)
        before = world.snapshot()
        start = len(tab.frames)
        await tab.emit("", raw=raw)
        # The server answers the settle marker after the frame, or closes the socket over the frame: both are fine.
        with contextlib.suppress(SocketClosed, socketio.exceptions.BadNamespaceError):
            await tab.settle()
        changes = world.unchanged(before)
        frames = tab.frames[start:]
        await tab.close()
        await _still_serving(world)
        return frames, changes

    frames, changes = run(scenario())

    assert changes == [], changes
    assert find_leaks(json.dumps(frames), world.secrets_of_a()) == []
    assert not marker.exists(), f"{case}: the server ran the command in the event"


@pytest.mark.parametrize("size", [1_100_000, 5_000_000])
def test_a_payload_over_the_socket_limit_drops_only_that_connection(world, size):
    """REFLEX_SOCKET_MAX_HTTP_BUFFER_SIZE (1 MB): the server closes the socket."""
    async def scenario():
        tab = await _stranger_tab(world)
        bystander = await _stranger_tab(world)
        before = world.snapshot()
        await tab.emit(full_name("CourseState.save_title"), {"value": "x" * size})
        await asyncio.wait_for(tab.disconnected.wait(), timeout=15)
        changes = world.unchanged(before)
        bystander_alive = bystander.sio.connected
        await bystander.settle()
        await tab.close()
        await bystander.close()
        await _still_serving(world)
        return changes, bystander_alive

    changes, bystander_alive = run(scenario())

    assert changes == []
    assert bystander_alive


async def _connect_outcome(tab: Tab, auth: dict, *, deadline: float = 15) -> str:
    """How the server answers a socket whose CONNECT packet carries ``auth``:
    "accepted" (the namespace connected), "refused" (the handshake failed or the
    server sent CONNECT_ERROR), "closed" (the server closed the connection), or
    "kept open" when none of these happened within ``deadline`` seconds."""
    refusals = []
    tab.sio.on("connect_error", refusals.append, namespace=EVENT_NAMESPACE)
    try:
        await tab.sio.connect(f"{tab.base_url}?token={tab.token}", headers=tab.headers(), auth=auth,
                              transports=["websocket"], namespaces=[EVENT_NAMESPACE], socketio_path="/_event",
                              wait=False)
    except socketio.exceptions.ConnectionError:
        return "refused"
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        if EVENT_NAMESPACE in tab.sio.namespaces:
            return "accepted"
        if refusals:
            return "refused"
        if tab.sio.eio.state != "connected":
            return "closed"
        await asyncio.sleep(0.05)
    return "kept open"


@pytest.mark.parametrize(("size", "expected"), [(10, {"accepted"}), (2_000_000, {"refused", "closed"})])
def test_an_oversized_hydration_in_the_connect_packet_is_refused(world, size, expected):
    """Over the socket's 1 MB limit the server must refuse or close the connection
    at once; a socket it keeps open (neither accepted nor closed within the
    deadline) fails. The small one is the control: the same path, accepted."""
    async def scenario():
        tab = Tab(world.base_url, cookie=world.b.session_token)
        tab.path, tab.query = "/dashboard", {}
        auth = {"event": {"name": f"{ROOT_STATE}.hydrate_and_load", "payload": {"vars": {"x": "y" * size}},
                          "router_data": tab.router_data()}}
        outcome = await _connect_outcome(tab, auth)
        await tab.close()
        await _still_serving(world)
        return outcome

    outcome = run(scenario())

    assert outcome in expected, f"a hydration of {size:,} bytes: the server {outcome} the connection"
