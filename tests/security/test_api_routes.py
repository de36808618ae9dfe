"""Every route of course_app.api.build_api(), called by a stranger (another
instructor, with their cookie or their API token) and by an anonymous visitor
with A's ids: 401 for the visitor, 403/404 for the stranger, nothing changed in
the database or storage, nothing of A's in the answer. Each id of a route is
also swapped on its own (the stranger's course with A's chapter, and so on).

The routes are read from the app, so a route added later without a case here
fails the suite until it gets one (or a reasoned place in PUBLIC). Beyond
build_api(), the route table of the ASGI app Reflex assembles for production is
walked too (tests/security/route_table.py), so a route mounted anywhere else (on
Reflex's own app, another router, a sub-application) fails until it is checked here
or has a reasoned place in REFLEX_OWN."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from fastapi.routing import APIRoute

from course_app.api import build_api
from tests.api.support import assert_no_internals
from tests.api.test_videos_api import MULTIPART, multipart
from tests.security.route_table import MOUNT
from tests.security.support import find_leaks
from tests.server import ROOT


def api_routes() -> set[tuple[str, str]]:
    """(method, path) of every route, through included routers; HEAD is GET's twin."""
    found: set[tuple[str, str]] = set()

    def walk(routes) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
                walk(route.original_router.routes)
            elif isinstance(route, APIRoute) or hasattr(route, "methods"):
                found.update((method, route.path) for method in route.methods if method != "HEAD")

    api = build_api()
    walk(api.routes)
    described = {(method.upper(), path) for path, item in api.openapi()["paths"].items() for method in item}
    assert described <= found, f"routes in the OpenAPI description the walk missed: {described - found}"
    return found


ROUTES = sorted(api_routes(), key=lambda r: (r[1], r[0]))

PUBLIC = {
    ("POST", "/api/auth/signup"): "creates a new account; refused cross-site (test_cross_site) and rate limited (test_low_limits)",
    ("POST", "/api/auth/login"): "checks credentials; refused cross-site (test_cross_site) and rate limited (test_low_limits)",
    ("POST", "/api/auth/supabase"): "trades a Supabase access token it verifies for a session (404 unless configured); "
                                    "refused cross-site (test_cross_site), bad tokens in test_supabase_sign_in",
    ("POST", "/api/auth/logout"): "ends only the session in the caller's own cookie (test_sessions shows others survive)",
    ("POST", "/api/auth/logout-everywhere"): "ends only the caller's own sessions, 401 without a log-in "
                                             "(test_open_tabs shows another user's session survives)",
    ("GET", "/api/openapi.json"): "the API's public description: routes and schemas, no data",
    ("GET", "/api/docs"): "the API's public description page (Swagger UI), no data",
    ("GET", "/docs/oauth2-redirect"): "a static page of the Swagger UI, no data",
    ("GET", "/api/health"): "for load balancers: each dependency's ok and latency, no host, key or data "
                            "(tests/api/test_operations_api.py), rate limited per address",
    ("GET", "/api/media/{video_id}/{kind}/{version}"): "a signed playback link's bytes: no cookie read, the link's "
                                                        "HMAC and expiry are the permission (403 without them, below "
                                                        "and in tests/api/test_playback_api.py)",
}


@dataclass
class Attempt:
    label: str
    method: str
    url: str
    kwargs: dict = field(default_factory=dict)
    stranger: tuple[int, ...] = (403, 404)  # what the stranger may get; 2xx for routes about one's own things
    own: bool = False  # the route acts on the caller's own things only


def _form(course: str, chapter: str, data: bytes, **query) -> dict:
    fields = [("course_id", course), ("chapter_id", chapter)] if course else []
    return {"content": multipart(fields, data, filename="hacked.mp4"), "headers": {"content-type": MULTIPART},
            "params": query}


def _create(course: str | None, chapter: str | None, data: bytes, replaces: str | None = None) -> dict:
    return {"json": {"course_id": course, "chapter_id": chapter, "filename": "hacked.mp4", "size": len(data),
                     "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(), "head": base64.b64encode(data[:8192]).decode(),
                     "replaces_video_id": replaces}}


def attempts(world, clip: bytes) -> dict[tuple[str, str], list[Attempt]]:
    a, b = world.a, world.b
    video = a.videos[a.chapters[0]][0]
    part = clip + bytes(65536 - len(clip))
    mixed = (400, 403, 404)  # the stranger's own id beside one of A's: refused either way
    return {
        ("GET", "/api/auth/me"): [Attempt("who am I", "GET", "/api/auth/me", stranger=(200,), own=True)],
        # only the metrics token opens it, never a log-in or an API token
        ("GET", "/api/metrics"): [Attempt("read the metrics", "GET", "/api/metrics", stranger=(401,))],
        ("GET", "/api/tokens"): [Attempt("list tokens", "GET", "/api/tokens", stranger=(200,), own=True)],
        ("POST", "/api/tokens"): [Attempt("create a token naming A as its owner", "POST", "/api/tokens",
                                          {"json": {"name": "mine", "user_id": a.id, "id": a.token_id}},
                                          stranger=(201,), own=True)],
        ("DELETE", "/api/tokens/{token_id}"): [Attempt("revoke A's token", "DELETE", f"/api/tokens/{a.token_id}")],
        ("GET", "/api/courses"): [Attempt("list courses", "GET", "/api/courses", stranger=(200,), own=True)],
        ("POST", "/api/courses"): [Attempt("create a course naming A as its owner", "POST", "/api/courses",
                                           {"json": {"title": "Mine", "owner_id": a.id, "id": a.course,
                                                     "status": "published"}}, stranger=(201,), own=True)],
        ("GET", "/api/courses/{course_id}"): [Attempt("read A's course", "GET", f"/api/courses/{a.course}")],
        ("POST", "/api/courses/{course_id}/chapters"): [
            Attempt("add a chapter to A's course", "POST", f"/api/courses/{a.course}/chapters", {"json": {"title": "hacked"}})],
        ("POST", "/api/upload"): [
            Attempt("upload into A's chapter", "POST", "/api/upload", _form(a.course, a.chapters[0], clip)),
            Attempt("B's course, A's chapter", "POST", "/api/upload", _form(b.course, a.chapters[0], clip), stranger=mixed),
            Attempt("A's course, B's chapter", "POST", "/api/upload", _form(a.course, b.chapters[0], clip), stranger=mixed),
            Attempt("A's ids in the query string", "POST", "/api/upload",
                    _form("", "", clip, course_id=a.course, chapter_id=a.chapters[0])),
            Attempt("B's ids in the query, A's in the form (the form wins)", "POST", "/api/upload",
                    _form(a.course, a.chapters[0], clip, course_id=b.course, chapter_id=b.chapters[0])),
        ],
        ("PATCH", "/api/courses/{course_id}"): [
            Attempt("rename and publish A's course", "PATCH", f"/api/courses/{a.course}",
                    {"json": {"title": "hacked", "status": "published"}})],
        ("DELETE", "/api/courses/{course_id}"): [Attempt("delete A's course", "DELETE", f"/api/courses/{a.course}")],
        ("PUT", "/api/courses/{course_id}/chapter-order"): [
            Attempt("reorder A's chapters", "PUT", f"/api/courses/{a.course}/chapter-order",
                    {"json": {"chapter_ids": list(reversed(a.chapters))}}),
            Attempt("B's course, A's chapters", "PUT", f"/api/courses/{b.course}/chapter-order",
                    {"json": {"chapter_ids": list(reversed(a.chapters))}}, stranger=(403, 404, 409))],
        ("PATCH", "/api/chapters/{chapter_id}"): [
            Attempt("rename A's chapter", "PATCH", f"/api/chapters/{a.chapters[0]}", {"json": {"title": "hacked"}})],
        ("DELETE", "/api/chapters/{chapter_id}"): [
            Attempt("delete A's chapter", "DELETE", f"/api/chapters/{a.chapters[0]}")],
        ("PUT", "/api/chapters/{chapter_id}/video-order"): [
            Attempt("reorder A's videos", "PUT", f"/api/chapters/{a.chapters[0]}/video-order",
                    {"json": {"video_ids": list(reversed(a.videos[a.chapters[0]]))}})],
        ("PATCH", "/api/videos/{video_id}"): [
            Attempt("rename A's video", "PATCH", f"/api/videos/{video}", {"json": {"title": "hacked"}}),
            Attempt("move A's video into B's chapter", "PATCH", f"/api/videos/{video}",
                    {"json": {"chapter_id": b.chapters[0]}}),
            Attempt("move B's video into A's chapter", "PATCH", f"/api/videos/{b.videos[b.chapters[0]][0]}",
                    {"json": {"chapter_id": a.chapters[0]}}, stranger=mixed)],
        ("GET", "/api/videos/{video_id}"): [Attempt("read A's video", "GET", f"/api/videos/{video}")],
        ("DELETE", "/api/videos/{video_id}"): [Attempt("delete A's video", "DELETE", f"/api/videos/{video}")],
        ("POST", "/api/videos/{video_id}/retry"): [Attempt("retry A's video", "POST", f"/api/videos/{video}/retry")],
        ("POST", "/api/videos/duplicates"): [
            # Both upload the same clip: B hears of B's own copies only, never of A's.
            Attempt("look up the file A uploaded", "POST", "/api/videos/duplicates",
                    {"json": {"sha1s": [hashlib.sha1(clip).hexdigest()],
                              "fingerprints": [f"v1:{len(clip)}:{hashlib.sha1(clip + clip).hexdigest()}"]}},
                    stranger=(200,), own=True)],
        ("GET", "/api/videos/{video_id}/replacement"): [
            Attempt("follow A's video's replacement", "GET", f"/api/videos/{video}/replacement")],
        ("POST", "/api/videos/{video_id}/replacement/retry"): [
            Attempt("retry A's video's replacement", "POST", f"/api/videos/{video}/replacement/retry")],
        ("DELETE", "/api/videos/{video_id}/replacement"): [
            Attempt("dismiss A's video's replacement", "DELETE", f"/api/videos/{video}/replacement")],
        ("GET", "/api/videos/{video_id}/thumbnail/{size}"): [
            Attempt("see A's thumbnail", "GET", f"/api/videos/{video}/thumbnail/small"),
            Attempt("see A's large thumbnail", "GET", f"/api/videos/{video}/thumbnail/large")],
        ("GET", "/api/videos/{video_id}/playback"): [
            Attempt("get a signed link to A's draft video", "GET", f"/api/videos/{video}/playback")],
        ("GET", "/api/videos/{video_id}/stream"): [
            Attempt("play A's video", "GET", f"/api/videos/{video}/stream"),
            Attempt("play a range of A's video", "GET", f"/api/videos/{video}/stream", {"headers": {"Range": "bytes=0-99"}}),
        ],
        ("POST", "/api/uploads"): [
            Attempt("start an upload into A's chapter", "POST", "/api/uploads", _create(a.course, a.chapters[0], clip)),
            Attempt("B's course, A's chapter", "POST", "/api/uploads", _create(b.course, a.chapters[0], clip), stranger=mixed),
            Attempt("A's course, B's chapter", "POST", "/api/uploads", _create(a.course, b.chapters[0], clip), stranger=mixed),
            Attempt("replace the file of A's video", "POST", "/api/uploads", _create(None, None, clip, video)),
            Attempt("B's chapter, replacing A's video", "POST", "/api/uploads",
                    _create(b.course, b.chapters[0], clip, video), stranger=mixed),
        ],
        ("GET", "/api/uploads"): [Attempt("list A's unfinished uploads", "GET", "/api/uploads",
                                          {"params": {"course_id": a.course}})],
        ("GET", "/api/uploads/{upload_id}"): [Attempt("read A's upload", "GET", f"/api/uploads/{a.upload}")],
        ("DELETE", "/api/uploads/{upload_id}"): [Attempt("cancel A's upload", "DELETE", f"/api/uploads/{a.upload}")],
        ("PUT", "/api/uploads/{upload_id}/parts/{number}"): [
            Attempt("send a part of A's upload", "PUT", f"/api/uploads/{a.upload}/parts/2",
                    {"content": part, "headers": {"X-Part-SHA1": hashlib.sha1(part).hexdigest()}}),
            Attempt("overwrite A's confirmed part", "PUT", f"/api/uploads/{a.upload}/parts/1",
                    {"content": part, "headers": {"X-Part-SHA1": hashlib.sha1(part).hexdigest()}}),
        ],
        ("POST", "/api/uploads/{upload_id}/complete"): [
            Attempt("complete A's upload", "POST", f"/api/uploads/{a.upload}/complete", {"json": {}})],
        ("GET", "/api/courses/{course_id}/trash"): [Attempt("list A's trash", "GET", f"/api/courses/{a.course}/trash")],
        ("POST", "/api/trash/{kind}/{item_id}/restore"): [
            Attempt("restore A's trashed video", "POST", f"/api/trash/videos/{a.trashed_video}/restore"),
            Attempt("restore A's trashed chapter", "POST", f"/api/trash/chapters/{a.trashed_chapter}/restore"),
            Attempt("restore A's live video", "POST", f"/api/trash/videos/{video}/restore"),
        ],
        ("DELETE", "/api/trash/{kind}/{item_id}"): [
            Attempt("purge A's trashed video", "DELETE", f"/api/trash/videos/{a.trashed_video}"),
            Attempt("purge A's trashed chapter", "DELETE", f"/api/trash/chapters/{a.trashed_chapter}"),
            Attempt("purge A's live video", "DELETE", f"/api/trash/videos/{video}"),
        ],
    }


def test_every_route_has_a_case_and_every_public_route_a_reason(world, clip):
    cases = attempts(world, clip)
    missing = [route for route in ROUTES if route not in cases and route not in PUBLIC]
    assert not missing, f"routes without a security case (add one to attempts()): {missing}"
    stale = sorted((set(cases) | set(PUBLIC)) - set(ROUTES))
    assert not stale, f"cases for routes that no longer exist: {stale}"
    assert not set(cases) & set(PUBLIC)
    assert all(len(reason) > 20 for reason in PUBLIC.values())


def _client(world, who: str, new_client):
    if who == "stranger":
        return new_client(cookie=f"cs_session={world.b.session_token}")
    if who == "stranger with an API token":
        return new_client(Authorization=f"Bearer {world.b.token_value}")
    return new_client()


PRIVATE = [route for route in ROUTES if route not in PUBLIC]


@pytest.mark.parametrize("who", ["anonymous", "stranger", "stranger with an API token"])
@pytest.mark.parametrize("route", PRIVATE, ids=[f"{m} {p}" for m, p in PRIVATE])
def test_a_route_called_with_someone_elses_ids_is_refused_and_changes_nothing(world, clip, new_client, route, who):
    cases = attempts(world, clip)
    if route not in cases:
        pytest.fail(f"{route} has no security case: add one to attempts() in {__name__}")

    for attempt in cases[route]:
        http = _client(world, who, new_client)
        before = world.snapshot()
        response = http.request(attempt.method, attempt.url, **attempt.kwargs)
        changes = world.unchanged(before, may_create_for=world.b.id if attempt.own and who != "anonymous" else None)

        where = f"{attempt.label} as {who}"
        assert changes == [], f"{where} changed: {changes}"
        assert find_leaks(response.text, world.secrets_of_a()) == [], f"{where} answered with A's data: {response.text[:300]}"
        assert_no_internals(response)
        if who == "anonymous":
            assert response.status_code == 401, f"{where}: {response.status_code} {response.text[:300]}"
        else:
            assert response.status_code in attempt.stranger, f"{where}: {response.status_code} {response.text[:300]}"
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"]


def test_own_things_created_with_someone_elses_ids_in_the_body_belong_to_the_creator(world, new_client):
    """Mass assignment: owner and id fields in a body are ignored."""
    http = _client(world, "stranger", new_client)

    course = http.post("/api/courses", json={"title": "Smuggled", "owner_id": world.a.id, "id": world.a.course,
                                             "status": "published"})
    token = http.post("/api/tokens", json={"name": "smuggled", "user_id": world.a.id, "id": world.a.token_id})

    assert course.status_code == 201 and course.json()["id"] != world.a.course
    assert course.json()["status"] == "draft"
    assert course.json()["id"] in [c["id"] for c in world.b.http.get("/api/courses").json()]
    assert course.json()["id"] not in [c["id"] for c in world.a.http.get("/api/courses").json()]
    assert token.status_code == 201 and token.json()["id"] != world.a.token_id
    assert "smuggled" in [t["name"] for t in world.b.http.get("/api/tokens").json()]
    assert "smuggled" not in [t["name"] for t in world.a.http.get("/api/tokens").json()]


def test_the_public_routes_hold_nothing_of_anyones(world, anonymous):
    video = world.a.videos[world.a.chapters[0]][0]
    for method, path in PUBLIC:
        if method != "GET":
            continue
        if "{" in path:  # a signed link's route, asked for A's video with a made-up signature
            url = path.format(video_id=video, kind="video", version="0" * 16)
            for query in ({}, {"expires": "99999999999", "signature": "forged"}):
                response = anonymous.get(url, params=query)
                assert response.status_code == 403 and response.json()["code"] == "link_invalid", response.text
                assert find_leaks(response.text, world.secrets_of_a()) == [], path
            continue
        response = anonymous.get(path)
        assert response.status_code == 200, path
        assert find_leaks(response.text, world.secrets_of_a()) == [], path


@pytest.mark.parametrize(("method", "path"), [("POST", "/_upload"), ("GET", "/_upload/anything.mp4"),
                                              ("GET", "/_upload/../course_studio.db")])
def test_reflexs_own_upload_route_is_not_mounted(anonymous, method, path):
    """The app uploads through its own routes; Reflex's /_upload (any State
    handler by name, files served to anyone) must not exist: not found, or (for
    the POST, which reaches the front end's static files) method not allowed."""
    response = anonymous.request(method, path, headers={"Reflex-Client-Token": "x", "Reflex-Event-Handler": "x"})
    assert response.status_code in (404, 405), f"{method} {path}: {response.status_code} {response.text[:200]}"
    assert "SQLite" not in response.text


# Every route the running app serves, not only build_api()'s ---------------------------------

# Served by Reflex itself (reflex/app.py: _add_default_endpoints, _setup_state, and
# the front end mounted by the production backend). Not here on purpose: /_upload
# (Reflex mounts it once an upload component is used; it must stay unmounted, see
# test_reflexs_own_upload_route_is_not_mounted) and /_all_routes.
REFLEX_OWN = {
    ("GET", "/ping"): "Reflex's liveness answer, a constant; read anonymously below (nothing of anyone's)",
    ("GET", "/_health"): "Reflex's health answer (database and Redis up or not); read anonymously below",
    (MOUNT, "/_event"): "Reflex's socket: every State handler behind it is enumerated and attacked "
                        "(test_state_handlers, test_reflex_handlers, test_socket_robustness, test_cross_site)",
    (MOUNT, "/"): "the compiled front end (static files, unknown paths 404); its bundle and pages are scanned "
                  "for secrets in test_secrets",
}


def served_routes(app_server, *, inject: bool = False) -> list[tuple[str, str, str]]:
    """(method or MOUNT, path, what serves it), read in a separate process from the
    ASGI app the production backend builds, with the running server's settings and
    build folder. ``inject`` first adds routes outside build_api() (the suite's own proof)."""
    out = app_server.data_dir.parent / ("routes-injected.json" if inject else "routes.json")
    command = [sys.executable, "-m", "tests.security.route_table", str(out)] + (["--inject"] if inject else [])
    result = subprocess.run(command, cwd=ROOT, env={**app_server.env, "REFLEX_ENV_MODE": "prod"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [tuple(route) for route in json.loads(out.read_text())]


def unchecked(table: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Served routes that neither have a case here (ROUTES: attempts() or PUBLIC) nor an allowance."""
    return [route for route in table if route[:2] not in set(ROUTES) and route[:2] not in REFLEX_OWN]


@pytest.fixture(scope="module")
def served(app_server) -> list[tuple[str, str, str]]:
    return served_routes(app_server)


def test_every_route_the_app_serves_is_checked_or_allowed_with_a_reason(served):
    assert not unchecked(served), f"routes served without a security case (add one to attempts(), or a reason " \
                                  f"to REFLEX_OWN): {unchecked(served)}"
    paths = {route[:2] for route in served}
    assert set(ROUTES) <= paths, f"build_api() routes the app does not serve: {sorted(set(ROUTES) - paths)}"
    assert set(REFLEX_OWN) <= paths, f"allowances for routes no longer served: {sorted(set(REFLEX_OWN) - paths)}"
    assert all(len(reason) > 20 for reason in REFLEX_OWN.values())


def test_a_route_added_outside_build_api_is_caught(app_server):
    """The walk sees a route added on Reflex's own app, a router included into the
    API after build_api() and a mounted sub-application; each fails the check above."""
    injected = served_routes(app_server, inject=True)

    assert sorted(route[:2] for route in unchecked(injected)) == [
        ("DELETE", "/injected/thing"), ("GET", "/_injected_on_reflex"), (MOUNT, "/injected-files")]
    assert [route for route in injected if route[1].startswith(("/_injected", "/injected"))] == unchecked(injected)


@pytest.mark.parametrize("path", [path for method, path in REFLEX_OWN if method == "GET"])
def test_reflexs_own_routes_hold_nothing_of_anyones(world, anonymous, path):
    response = anonymous.get(path)

    assert response.status_code == 200, f"{path}: {response.status_code}"
    assert find_leaks(response.text, world.secrets_of_a()) == [], path
    assert_no_internals(response)
