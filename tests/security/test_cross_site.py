"""Cross-site requests: a state-changing request that a browser sends with the
session cookie from another site (CSRF) is refused with 403 on every such
route, and the Reflex socket refuses a connection from another origin
(cross-site WebSocket hijacking). Each attack uses A's own cookie on A's own
things, so without the check it would succeed: nothing may change."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from tests.api.support import assert_json_error
from tests.api.test_videos_api import MULTIPART, multipart
from tests.security.support import EVIL, SocketRefused, Tab, run
from tests.security.test_api_routes import ROUTES

SAFE = {"GET", "HEAD", "OPTIONS"}
STATE_CHANGING = [route for route in ROUTES if route[0] not in SAFE]


def own_requests(world, clip) -> dict[tuple[str, str], tuple[str, dict]]:
    """For each state-changing route: A's own request, which would succeed same-site."""
    a = world.a
    video = a.videos[a.chapters[1]][0]
    part = clip + bytes(65536 - len(clip))
    data = clip + bytes(1000)
    return {
        ("POST", "/api/auth/signup"): ("/api/auth/signup", {"json": {"email": f"csrf-{a.tag}@example.com",
                                                                    "password": "correct horse battery"}}),
        ("POST", "/api/auth/login"): ("/api/auth/login", {"json": {"email": a.email, "password": "correct horse battery"}}),
        ("POST", "/api/auth/supabase"): ("/api/auth/supabase", {"json": {"access_token": "a.b.c"}}),
        ("POST", "/api/auth/logout"): ("/api/auth/logout", {"headers": {"accept": "application/json"}}),
        ("POST", "/api/auth/logout-everywhere"): ("/api/auth/logout-everywhere", {"headers": {"accept": "application/json"}}),
        ("POST", "/api/tokens"): ("/api/tokens", {"json": {"name": "csrf"}}),
        ("DELETE", "/api/tokens/{token_id}"): (f"/api/tokens/{a.token_id}", {}),
        ("POST", "/api/courses"): ("/api/courses", {"json": {"title": "csrf"}}),
        ("POST", "/api/courses/{course_id}/chapters"): (f"/api/courses/{a.course}/chapters", {"json": {"title": "csrf"}}),
        ("POST", "/api/upload"): ("/api/upload", {
            "content": multipart([("course_id", a.course), ("chapter_id", a.chapters[0])], clip),
            "headers": {"content-type": MULTIPART}}),
        ("DELETE", "/api/videos/{video_id}"): (f"/api/videos/{video}", {}),
        ("POST", "/api/videos/{video_id}/retry"): (f"/api/videos/{video}/retry", {}),
        ("POST", "/api/videos/duplicates"): ("/api/videos/duplicates", {"json": {"sha1s": [hashlib.sha1(clip).hexdigest()]}}),
        ("POST", "/api/videos/{video_id}/replacement/retry"): (f"/api/videos/{video}/replacement/retry", {}),
        ("DELETE", "/api/videos/{video_id}/replacement"): (f"/api/videos/{video}/replacement", {}),
        ("POST", "/api/uploads"): ("/api/uploads", {"json": {
            "course_id": a.course, "chapter_id": a.chapters[1], "filename": "csrf.mp4", "size": len(data),
            "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(), "head": base64.b64encode(data[:8192]).decode()}}),
        ("PUT", "/api/uploads/{upload_id}/parts/{number}"): (f"/api/uploads/{a.upload}/parts/2", {
            "content": part, "headers": {"X-Part-SHA1": hashlib.sha1(part).hexdigest()}}),
        ("POST", "/api/uploads/{upload_id}/complete"): (f"/api/uploads/{a.upload}/complete", {"json": {}}),
        ("DELETE", "/api/uploads/{upload_id}"): (f"/api/uploads/{a.upload}", {}),
        ("POST", "/api/trash/{kind}/{item_id}/restore"): (f"/api/trash/videos/{a.trashed_video}/restore", {}),
        ("DELETE", "/api/trash/{kind}/{item_id}"): (f"/api/trash/chapters/{a.trashed_chapter}", {}),
        ("PATCH", "/api/courses/{course_id}"): (f"/api/courses/{a.course}", {"json": {"title": "csrf"}}),
        ("DELETE", "/api/courses/{course_id}"): (f"/api/courses/{a.course}", {}),
        ("PUT", "/api/courses/{course_id}/chapter-order"): (f"/api/courses/{a.course}/chapter-order",
                                                           {"json": {"chapter_ids": list(reversed(a.chapters))}}),
        ("PATCH", "/api/chapters/{chapter_id}"): (f"/api/chapters/{a.chapters[0]}", {"json": {"title": "csrf"}}),
        ("DELETE", "/api/chapters/{chapter_id}"): (f"/api/chapters/{a.chapters[0]}", {}),
        ("PUT", "/api/chapters/{chapter_id}/video-order"): (
            f"/api/chapters/{a.chapters[1]}/video-order", {"json": {"video_ids": list(reversed(a.videos[a.chapters[1]]))}}),
        ("PATCH", "/api/videos/{video_id}"): (f"/api/videos/{video}", {"json": {"title": "csrf", "chapter_id": a.chapters[0]}}),
    }


FOREIGN = {
    "Origin of another site": {"Origin": EVIL},
    "Referer of another site, no Origin": {"Referer": EVIL + "/page"},
    "Origin null (sandboxed frame, file:)": {"Origin": "null"},
    "Origin of a look-alike host": {"Origin": "http://localhost.evil.example"},
}


def test_every_state_changing_route_has_a_cross_site_case(world, clip):
    assert STATE_CHANGING
    missing = [route for route in STATE_CHANGING if route not in own_requests(world, clip)]
    assert not missing, f"state-changing routes without a CSRF case (add one to own_requests()): {missing}"


@pytest.mark.parametrize("foreign", list(FOREIGN))
@pytest.mark.parametrize("route", STATE_CHANGING, ids=[f"{m} {p}" for m, p in STATE_CHANGING])
def test_a_cross_site_request_with_the_cookie_is_403_and_changes_nothing(world, clip, route, foreign):
    cases = own_requests(world, clip)
    if route not in cases:
        pytest.fail(f"{route} has no cross-site case: add one to own_requests() in {__name__}")
    url, kwargs = cases[route]
    headers = {**kwargs.get("headers", {}), **FOREIGN[foreign]}
    with httpx.Client(base_url=world.base_url, timeout=30, cookies={"cs_session": world.a.session_token}) as http:
        before = world.snapshot()
        response = http.request(route[0], url, **{**kwargs, "headers": headers})
        changes = world.unchanged(before)

    assert "Cross-site" in assert_json_error(response, 403)
    assert changes == []
    assert world.a.http.get("/api/auth/me").status_code == 200  # A is still logged in


def test_the_same_request_from_the_apps_own_origin_is_not_refused(make_account, login_as, app_server):
    """The control: the check refuses other sites, not the app itself."""
    http = login_as(make_account())
    for origin in (app_server.base_url, app_server.base_url.replace("localhost", "127.0.0.1")):
        response = http.post("/api/tokens", json={"name": "same site"}, headers={"Origin": origin})
        assert response.status_code == 201, response.text
    response = http.post("/api/tokens", json={"name": "same site"}, headers={"Referer": app_server.base_url + "/settings"})
    assert response.status_code == 201, response.text


# Cross-site WebSocket hijacking -------------------------------------------------------------------


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost.evil.example", "http://localhost:1"])
def test_the_socket_refuses_a_connection_from_another_origin(world, origin):
    async def scenario():
        tab = Tab(world.base_url, cookie=world.a.session_token, origin=origin)
        with pytest.raises(SocketRefused):
            await tab.connect("/dashboard")
        await tab.close()
        return tab

    tab = run(scenario())

    assert tab.frames == []  # not even the hydration reached it


@pytest.mark.parametrize("origin", ["same", "127.0.0.1", None], ids=["localhost", "127.0.0.1", "no Origin (not a browser)"])
def test_the_socket_accepts_the_apps_own_origins(world, origin):
    if origin == "127.0.0.1":
        origin = world.base_url.replace("localhost", "127.0.0.1")

    async def scenario():
        tab = Tab(world.base_url, cookie=world.a.session_token, origin=origin)
        await tab.connect("/dashboard")
        await tab.close()
        return tab

    tab = run(scenario())

    assert world.a.email in str(tab.frames)
