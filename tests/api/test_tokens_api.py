"""course_app/api/tokens.py (and bearer authentication in deps.py) through
HTTP against the running production build."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from course_app.auth.tokens import token_hash
from course_app.models import ApiToken
from tests.db_faults import failing
from tests.api.support import assert_json_error, assert_no_internals


def stored_tokens(server_engine, owner_id: int) -> list[ApiToken]:
    with Session(server_engine) as db:
        return list(db.exec(select(ApiToken).where(ApiToken.user_id == owner_id).order_by(ApiToken.id)))


def raw_token_rows_text(server_engine) -> str:
    with server_engine.connect() as conn:
        return " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM api_tokens")) for v in row)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_token(http, name: str = "deploy") -> dict:
    response = http.post("/api/tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


# Create and list -----------------------------------------------------------------------------


def test_create_returns_the_value_once_and_stores_only_its_hash(client, signed_up, server_engine):
    email, _ = signed_up
    me = client.get("/api/auth/me").json()

    response = client.post("/api/tokens", json={"name": "  CI deploy  "})

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "prefix", "created_at", "last_used_at", "token"}
    assert body["name"] == "CI deploy"
    assert body["token"].startswith("cst_") and len(body["token"]) >= 40
    assert body["token"].startswith(body["prefix"]) and body["prefix"] != body["token"]
    assert body["last_used_at"] is None
    rows = stored_tokens(server_engine, me["id"])
    assert [(r.id, r.token_hash) for r in rows] == [(body["id"], token_hash(body["token"]))]
    assert body["token"] not in raw_token_rows_text(server_engine)
    assert me["email"] == email


def test_list_never_shows_token_values(owner):
    _, http = owner
    first, second = create_token(http, "first"), create_token(http, "second")

    response = http.get("/api/tokens")

    assert response.status_code == 200
    listed = response.json()
    assert [(t["id"], t["name"], t["prefix"]) for t in listed] == [
        (first["id"], "first", first["prefix"]), (second["id"], "second", second["prefix"])
    ]
    assert all("token" not in t for t in listed)
    assert first["token"] not in response.text and second["token"] not in response.text


def test_list_shows_only_your_tokens(owner, make_account, login_as):
    _, http = owner
    create_token(http, "mine")
    stranger = login_as(make_account())
    create_token(stranger, "theirs")

    assert [t["name"] for t in http.get("/api/tokens").json()] == ["mine"]
    assert [t["name"] for t in stranger.get("/api/tokens").json()] == ["theirs"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the token a name"), ("   ", "Give the token a name"), ("n" * 101, "at most 100"),
     ("bell\u0007", "control characters"), ("lone \ud800 surrogate", "control characters")],
)
def test_bad_token_names_are_400_and_create_nothing(owner, server_engine, name, message):
    account, http = owner

    body = json.dumps({"name": name})  # ASCII with \u escapes, so a lone surrogate reaches the server
    response = http.post("/api/tokens", content=body, headers={"content-type": "application/json"})

    assert message in assert_json_error(response, 400)
    assert stored_tokens(server_engine, account.id) == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [('{"nme": "x"}', "application/json"), ('{"name": 123}', "application/json"), ("{broken", "application/json"),
     ("name=x", "application/x-www-form-urlencoded"), ("", "application/json")],
)
def test_malformed_create_body_is_422_json_and_creates_nothing(owner, server_engine, content, content_type):
    account, http = owner

    response = http.post("/api/tokens", content=content, headers={"content-type": content_type})

    assert assert_json_error(response, 422).startswith("Invalid request")
    assert stored_tokens(server_engine, account.id) == []


def test_token_routes_need_a_login(new_client):
    http = new_client()

    assert_json_error(http.get("/api/tokens"), 401)
    assert_json_error(http.post("/api/tokens", json={"name": "x"}), 401)
    assert_json_error(http.delete("/api/tokens/1"), 401)


# Bearer authentication ---------------------------------------------------------------------------


def test_bearer_token_authenticates_me_and_tokens_and_records_its_use(owner, new_client, server_engine):
    account, http = owner
    created = create_token(http)
    script = new_client(**bearer(created["token"]))

    me = script.get("/api/auth/me")
    listed = script.get("/api/tokens")

    assert me.status_code == 200 and me.json()["id"] == account.id
    assert listed.status_code == 200 and [t["id"] for t in listed.json()] == [created["id"]]
    assert listed.json()[0]["last_used_at"] is not None
    assert stored_tokens(server_engine, account.id)[0].last_used_at is not None
    assert script.cookies.get("cs_session") is None


def test_bearer_token_can_create_and_revoke_tokens(owner, new_client, server_engine):
    account, http = owner
    script = new_client(**bearer(create_token(http)["token"]))

    made = script.post("/api/tokens", json={"name": "made by script"})
    assert made.status_code == 201, made.text
    assert script.delete(f"/api/tokens/{made.json()['id']}").status_code == 204

    assert [t.name for t in stored_tokens(server_engine, account.id)] == ["deploy"]


@pytest.mark.parametrize("value", ["garbage", "cst_" + "A" * 43, "cst_", "x" * 500])
def test_garbage_bearer_is_401_json(new_client, value):
    assert "API token is not valid" in assert_json_error(new_client(**bearer(value)).get("/api/auth/me"), 401)


def test_a_bad_bearer_does_not_fall_back_to_the_session_cookie(owner):
    _, http = owner

    response = http.get("/api/auth/me", headers=bearer("cst_not-a-real-token"))

    assert_json_error(response, 401)


def test_session_cookie_value_is_not_an_api_token(owner, new_client):
    _, http = owner

    assert_json_error(new_client(**bearer(http.cookies.get("cs_session"))).get("/api/auth/me"), 401)


# Revoke ------------------------------------------------------------------------------------------


def test_revoke_is_204_and_the_token_stops_working(owner, new_client, server_engine):
    account, http = owner
    doomed, kept = create_token(http, "doomed"), create_token(http, "kept")
    script = new_client(**bearer(doomed["token"]))
    assert script.get("/api/auth/me").status_code == 200

    response = http.delete(f"/api/tokens/{doomed['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_json_error(script.get("/api/auth/me"), 401)
    assert_json_error(script.get("/api/tokens"), 401)
    assert [t["id"] for t in http.get("/api/tokens").json()] == [kept["id"]]
    assert [t.id for t in stored_tokens(server_engine, account.id)] == [kept["id"]]
    assert new_client(**bearer(kept["token"])).get("/api/auth/me").status_code == 200


def test_revoking_twice_is_404(owner):
    _, http = owner
    created = create_token(http)
    assert http.delete(f"/api/tokens/{created['id']}").status_code == 204

    assert_json_error(http.delete(f"/api/tokens/{created['id']}"), 404)


def test_revoking_another_users_token_is_404_and_it_keeps_working(owner, make_account, login_as, new_client, server_engine):
    victim, victim_http = owner
    created = create_token(victim_http, "victim's")
    attacker = login_as(make_account())

    response = attacker.delete(f"/api/tokens/{created['id']}")

    assert_json_error(response, 404)
    assert [t.id for t in stored_tokens(server_engine, victim.id)] == [created["id"]]
    assert new_client(**bearer(created["token"])).get("/api/auth/me").json()["id"] == victim.id


@pytest.mark.parametrize(("token_id", "status"), [("abc", 422), ("1.5", 422), ("0", 404), ("-3", 404),
                                                  ("99999999999999999999999", 404), ("2147483648", 404)])
def test_revoke_with_a_bad_id_is_a_client_error(owner, server_engine, token_id, status):
    account, http = owner
    create_token(http)

    assert_json_error(http.delete(f"/api/tokens/{token_id}"), status)
    assert len(stored_tokens(server_engine, account.id)) == 1


def test_revoke_that_fails_in_the_database_is_not_reported_as_done(owner, new_client, server_engine):
    """Fault injection: if the deletion cannot be committed the client must not
    get 204 (and the token must keep working), and the 500 leaks nothing."""
    _, http = owner
    created = create_token(http)
    with failing(server_engine, "test_block_token_delete", "DELETE", "api_tokens"):
        response = http.delete(f"/api/tokens/{created['id']}")

    assert_json_error(response, 500)
    assert "injected failure" not in response.text
    assert new_client(**bearer(created["token"])).get("/api/auth/me").status_code == 200


def test_error_bodies_never_contain_internals(owner, new_client):
    _, http = owner
    responses = [
        http.post("/api/tokens", content=b"\xff\xfe not utf-8", headers={"content-type": "application/json"}),
        http.delete("/api/tokens/" + "9" * 400),
        new_client(Authorization=b"Bearer cst_\xe9\xe9\xe9").get("/api/tokens"),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert_json_error(response, response.status_code)
        assert_no_internals(response)
