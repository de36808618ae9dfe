"""course_app/auth/tokens.py: browser sessions, recognising personal API tokens, signed
notices and safe redirects, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from course_app.auth import tokens
from course_app.models import ApiToken, AuthSession, utcnow
from course_app.services import api_tokens
from course_app.settings import get_settings

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def raw_rows(engine, table: str) -> list[dict]:
    """Every stored row of ``table`` as plain values, read outside the ORM."""
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text(f"SELECT * FROM {table}"))]


def stored_text(engine, table: str) -> str:
    return " ".join(str(value) for row in raw_rows(engine, table) for value in row.values())


def token_bits(token: str) -> int:
    return len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8


# Browser sessions -------------------------------------------------------------------


def test_create_session_returns_a_long_random_token_and_stores_only_its_hash(session, engine, make_user):
    user = make_user()

    token, expires_at = tokens.create_session(session=session, user=user)
    session.commit()

    assert token_bits(token) >= 128
    rows = raw_rows(engine, "auth_sessions")
    assert len(rows) == 1
    assert rows[0]["user_id"] == user.id
    assert HEX64.match(rows[0]["token_hash"])
    assert rows[0]["token_hash"] == tokens.token_hash(token)
    assert token not in stored_text(engine, "auth_sessions")
    lifetime = timedelta(hours=get_settings().session_lifetime_hours)
    assert abs((expires_at - utcnow()) - lifetime) < timedelta(minutes=1)


def test_each_session_gets_a_different_token(session, make_user):
    user = make_user()

    first, _ = tokens.create_session(session=session, user=user)
    second, _ = tokens.create_session(session=session, user=user)

    assert first != second
    assert tokens.token_hash(first) != tokens.token_hash(second)


def test_user_for_session_token_finds_the_user(session, engine, make_user):
    user = make_user()
    token, _ = tokens.create_session(session=session, user=user)
    session.commit()

    with Session(engine) as fresh:
        found = tokens.user_for_session_token(session=fresh, token=token)
    assert found is not None and found.id == user.id


@pytest.mark.parametrize("token", [None, "", "not-a-session", "x" * 201])
def test_unknown_or_garbage_session_token_finds_nobody(session, make_user, token):
    tokens.create_session(session=session, user=make_user())

    assert tokens.user_for_session_token(session=session, token=token) is None


def test_session_token_hash_is_not_usable_as_a_token(session, engine, make_user):
    token, _ = tokens.create_session(session=session, user=make_user())
    session.commit()
    stolen_hash = raw_rows(engine, "auth_sessions")[0]["token_hash"]

    assert tokens.user_for_session_token(session=session, token=stolen_hash) is None


def test_expired_session_is_refused_and_deleted(session, engine, make_user):
    user = make_user()
    token, _ = tokens.create_session(session=session, user=user)
    keep, _ = tokens.create_session(session=session, user=user)
    row = session.exec(select(AuthSession).where(AuthSession.token_hash == tokens.token_hash(token))).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.add(row)
    session.commit()

    assert tokens.user_for_session_token(session=session, token=token) is None
    session.commit()

    assert [r["token_hash"] for r in raw_rows(engine, "auth_sessions")] == [tokens.token_hash(keep)]
    assert tokens.user_for_session_token(session=session, token=keep).id == user.id


def test_end_session_invalidates_only_that_token(session, engine, make_user):
    user = make_user()
    token, _ = tokens.create_session(session=session, user=user)
    other, _ = tokens.create_session(session=session, user=user)
    session.commit()

    tokens.end_session(session=session, token=token)
    session.commit()

    assert tokens.user_for_session_token(session=session, token=token) is None
    assert tokens.user_for_session_token(session=session, token=other).id == user.id
    assert len(raw_rows(engine, "auth_sessions")) == 1


def test_end_session_without_a_token_changes_nothing(session, engine, make_user):
    tokens.create_session(session=session, user=make_user())
    session.commit()

    tokens.end_session(session=session, token=None)
    tokens.end_session(session=session, token="")
    session.commit()

    assert len(raw_rows(engine, "auth_sessions")) == 1


def test_purge_expired_sessions_removes_only_expired_ones(session, engine, make_user):
    user = make_user()
    old, _ = tokens.create_session(session=session, user=user)
    fresh_token, _ = tokens.create_session(session=session, user=user)
    row = session.exec(select(AuthSession).where(AuthSession.token_hash == tokens.token_hash(old))).one()
    row.expires_at = utcnow() - timedelta(hours=1)
    session.add(row)
    session.commit()

    assert tokens.purge_expired_sessions(session=session) == 1
    session.commit()

    assert [r["token_hash"] for r in raw_rows(engine, "auth_sessions")] == [tokens.token_hash(fresh_token)]


def test_deleting_a_user_deletes_their_sessions_and_tokens(session, engine, make_user):
    user = make_user()
    tokens.create_session(session=session, user=user)
    api_tokens.create_api_token(session=session, user=user, name="ci")
    session.commit()

    session.delete(user)
    session.commit()

    assert raw_rows(engine, "auth_sessions") == []
    assert raw_rows(engine, "api_tokens") == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("cs_session=abc123", "abc123"),
        ("theme=dark; cs_session=abc123; other=1", "abc123"),
        ("theme=dark", None),
        ("", None),
        (None, None),
    ],
)
def test_session_token_from_cookie_header(header, expected):
    assert tokens.session_token_from_cookie_header(header) == expected


# Personal API tokens ---------------------------------------------------------------


def test_user_for_api_token_finds_the_user_and_records_the_use(session, engine, make_user):
    user = make_user()
    row, plain = api_tokens.create_api_token(session=session, user=user, name="script")
    session.commit()
    before = utcnow()

    with Session(engine) as fresh:
        found = tokens.user_for_api_token(session=fresh, token=plain)
        assert found is not None and found.id == user.id
        fresh.commit()

    with Session(engine) as check:
        last_used = check.get(ApiToken, row.id).last_used_at
    assert last_used is not None
    assert last_used >= before - timedelta(seconds=1)


@pytest.mark.parametrize(
    "token",
    [None, "", "garbage", "cst_", "cst_" + "A" * 43, "Bearer cst_x", "cst_" + "x" * 300],
)
def test_user_for_api_token_rejects_unknown_and_garbage(session, engine, make_user, token):
    row, _ = api_tokens.create_api_token(session=session, user=make_user(), name="real")
    session.commit()

    assert tokens.user_for_api_token(session=session, token=token) is None
    session.commit()
    assert raw_rows(engine, "api_tokens")[0]["last_used_at"] is None


def test_session_token_is_not_an_api_token_and_vice_versa(session, make_user):
    user = make_user()
    session_token, _ = tokens.create_session(session=session, user=user)
    _, api_token = api_tokens.create_api_token(session=session, user=user, name="script")

    assert tokens.user_for_api_token(session=session, token=session_token) is None
    assert tokens.user_for_api_token(session=session, token="cst_" + session_token) is None
    assert tokens.user_for_session_token(session=session, token=api_token) is None


# Hashing, notices and redirects -----------------------------------------------------


def test_token_hash_is_keyed_by_the_secret(monkeypatch):
    first = tokens.token_hash("same token")
    monkeypatch.setenv("COURSE_SECRET_KEY", "a-different-secret-" + "z" * 32)
    get_settings.cache_clear()
    try:
        assert tokens.token_hash("same token") != first
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert tokens.token_hash("same token") == first


def test_notice_signature_accepts_only_the_signed_message():
    signature = tokens.notice_signature("Wrong e-mail or password.")

    assert tokens.notice_is_authentic("Wrong e-mail or password.", signature)
    assert not tokens.notice_is_authentic("Your account was deleted. Call 555-0100.", signature)
    assert not tokens.notice_is_authentic("Wrong e-mail or password.", "")
    tampered = signature[:-1] + ("1" if signature[-1] == "0" else "0")
    assert not tokens.notice_is_authentic("Wrong e-mail or password.", tampered)


@pytest.mark.parametrize(
    "path",
    ["//evil.com", "//evil.com/dashboard", "http://evil", "https://evil.example/x", "/\\evil.com",
     "javascript:alert(1)", "dashboard", "", None, 42, "/" + "a" * 600],
)
def test_safe_next_refuses_anything_but_a_local_path(path):
    assert tokens.safe_next(path) == ""
    assert tokens.safe_next(path, default="/dashboard") == "/dashboard"


@pytest.mark.parametrize("path", ["/dashboard", "/courses/123?tab=videos", "/settings#tokens"])
def test_safe_next_keeps_local_paths(path):
    assert tokens.safe_next(path, default="/dashboard") == path
