"""course_app/services/api_tokens.py on SQLite and PostgreSQL: creating (the value
is shown once, only a hash is stored), listing and revoking personal API tokens."""

from __future__ import annotations

import pytest

from course_app.auth import tokens
from course_app.errors import InvalidInput, NotFound
from course_app.services import api_tokens
from tests.unit.test_tokens import raw_rows, stored_text, token_bits


def test_create_api_token_returns_the_value_once_and_stores_only_a_hash(session, engine, make_user):
    user = make_user()

    row, plain = api_tokens.create_api_token(session=session, user=user, name="  deploy script ")
    session.commit()

    assert plain.startswith("cst_")
    assert token_bits(plain.removeprefix("cst_")) >= 128
    assert row.name == "deploy script"
    assert plain.startswith(row.prefix) and len(row.prefix) < len(plain)
    stored = raw_rows(engine, "api_tokens")
    assert len(stored) == 1
    assert stored[0]["token_hash"] == tokens.token_hash(plain)
    assert plain not in stored_text(engine, "api_tokens")
    assert stored[0]["last_used_at"] is None


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the token a name"), ("   ", "Give the token a name"), ("x" * 101, "at most 100"),
     ("tab\there", "control characters"), ("lone \ud800", "control characters")],
)
def test_api_token_name_is_validated(session, engine, make_user, name, message):
    user = make_user()

    with pytest.raises(InvalidInput, match=message):
        api_tokens.create_api_token(session=session, user=user, name=name)

    session.commit()
    assert raw_rows(engine, "api_tokens") == []


def test_list_api_tokens_shows_only_your_tokens_oldest_first(session, make_user):
    alice, bob = make_user(), make_user()
    first, _ = api_tokens.create_api_token(session=session, user=alice, name="first")
    second, _ = api_tokens.create_api_token(session=session, user=alice, name="second")
    api_tokens.create_api_token(session=session, user=bob, name="bob's")
    session.commit()

    assert [t.id for t in api_tokens.list_api_tokens(session=session, user=alice)] == [first.id, second.id]
    assert [t.name for t in api_tokens.list_api_tokens(session=session, user=bob)] == ["bob's"]


def test_revoke_api_token_deletes_it_and_it_stops_working(session, engine, make_user):
    user = make_user()
    row, plain = api_tokens.create_api_token(session=session, user=user, name="old")
    keep, keep_plain = api_tokens.create_api_token(session=session, user=user, name="keep")
    session.commit()

    api_tokens.revoke_api_token(session=session, user=user, token_id=row.id)
    session.commit()

    assert [r["id"] for r in raw_rows(engine, "api_tokens")] == [keep.id]
    assert tokens.user_for_api_token(session=session, token=plain) is None
    assert tokens.user_for_api_token(session=session, token=keep_plain).id == user.id


def test_another_user_cannot_revoke_your_token(session, engine, make_user):
    owner, intruder = make_user(), make_user()
    row, plain = api_tokens.create_api_token(session=session, user=owner, name="mine")
    session.commit()

    with pytest.raises(NotFound):
        api_tokens.revoke_api_token(session=session, user=intruder, token_id=row.id)
    session.commit()

    assert [r["id"] for r in raw_rows(engine, "api_tokens")] == [row.id]
    assert tokens.user_for_api_token(session=session, token=plain).id == owner.id


@pytest.mark.parametrize("token_id", [0, -1, 987654, 2**31, 10**30])
def test_revoking_a_missing_or_impossible_id_is_not_found(session, engine, make_user, token_id):
    user = make_user()
    api_tokens.create_api_token(session=session, user=user, name="mine")
    session.commit()

    with pytest.raises(NotFound):
        api_tokens.revoke_api_token(session=session, user=user, token_id=token_id)
    session.commit()

    assert len(raw_rows(engine, "api_tokens")) == 1


def test_revoking_twice_is_not_found_the_second_time(session, make_user):
    user = make_user()
    row, _ = api_tokens.create_api_token(session=session, user=user, name="once")
    session.commit()
    api_tokens.revoke_api_token(session=session, user=user, token_id=row.id)
    session.commit()

    with pytest.raises(NotFound):
        api_tokens.revoke_api_token(session=session, user=user, token_id=row.id)
