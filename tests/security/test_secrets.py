"""No secret in what the browser gets: the built front-end bundle and the pages
hold no secret key, password hash, storage credential or database URL, and an
API token's value reaches only its owner, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.support import Tab, find_leaks, run
from tests.security.test_state_handlers import full_name


def bundle_root(app_server) -> Path:
    return Path(app_server.env["REFLEX_WEB_WORKDIR"]) / "build" / "client"


def _bundle_secrets(world, app_server) -> dict[str, str]:
    secrets = {**world.server_secrets(), "data folder": str(app_server.data_dir),
               "A's e-mail": world.a.email, "A's API token": world.a.token_value}
    del secrets["B's session token"]
    for name in ("COURSE_B2_KEY_ID", "COURSE_B2_APPLICATION_KEY", "COURSE_SECRET_KEY", "COURSE_DATABASE_URL"):
        assert app_server.env.get(name), f"the test server runs without {name}: the scan would prove nothing"
    return secrets


def test_the_built_bundle_holds_no_secret(world, app_server):
    root = bundle_root(app_server)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 10 and any(p.suffix == ".js" for p in files), f"no build under {root}"
    secrets = {name: value.encode() for name, value in _bundle_secrets(world, app_server).items()}

    leaks = [(p.relative_to(root).as_posix(), name) for p in files for name, value in secrets.items()
             if value in p.read_bytes()]

    assert leaks == []


@pytest.mark.parametrize("path", ["/login", "/signup", "/dashboard", "/settings", "/courses/x", "/api/openapi.json"])
def test_the_served_pages_hold_no_secret(world, app_server, anonymous, path):
    response = anonymous.get(path, follow_redirects=True)
    assert response.status_code == 200
    assert find_leaks(response.text, _bundle_secrets(world, app_server)) == []


def test_a_new_api_token_reaches_only_its_owner_once(world):
    async def scenario():
        owner = Tab(world.base_url, cookie=world.a.session_token)
        stranger = Tab(world.base_url, cookie=world.b.session_token)
        anonymous = Tab(world.base_url)
        for tab in (owner, stranger, anonymous):
            await tab.connect("/settings")
        created = await owner.send(full_name("TokensState.create_token"), {"form_data": {"name": "Once only"}})
        for tab in (stranger, anonymous):
            await tab.send(full_name("TokensState.load"))
        reloaded = await owner.send(full_name("TokensState.load"))
        for tab in (owner, stranger, anonymous):
            await tab.close()
        return owner, stranger, anonymous, created, reloaded

    owner, stranger, anonymous, created, reloaded = run(scenario())

    values = [v for f in created for s in (f.get("delta") or {}).values() for k, v in s.items()
              if k.startswith("new_token") and v]
    assert len(values) == 1 and values[0].startswith("cst_")
    token = values[0]
    assert token not in json.dumps(stranger.frames) and token not in json.dumps(anonymous.frames)
    cleared = [s["new_token_rx_state_"] for f in reloaded for s in (f.get("delta") or {}).values()
               if "new_token_rx_state_" in s]
    assert cleared == [""]  # shown once: gone when the page loads again
    assert token not in json.dumps(reloaded)
    listed = world.a.http.get("/api/tokens").text
    assert token not in listed and token[:10] in listed  # the API lists only the prefix
    assert world.a.http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()["id"] == world.a.id
