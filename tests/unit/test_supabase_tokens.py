"""Supabase access tokens (course_app/auth/supabase.py): verified here against a
JWKS served by a stand-in project (tests/supabase.py), and mapped to local users
on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import jwt
import pytest
from sqlmodel import Session, select

from course_app.auth import supabase
from course_app.auth.passwords import verify_password
from course_app.errors import Conflict, Forbidden, Unauthorized
from course_app.models import User
from course_app.services import users
from course_app.settings import get_settings
from tests.supabase import HS_SECRET, FakeSupabase


@pytest.fixture(scope="module")
def project():
    with FakeSupabase() as fake:
        yield fake


@pytest.fixture
def configure(monkeypatch, project):
    """Supabase sign-in on, pointing at the stand-in project; more settings by keyword."""

    def _configure(**values: str) -> None:
        for name, value in {"supabase_url": project.url, "supabase_jwks_cooldown_seconds": "0", **values}.items():
            monkeypatch.setenv(f"COURSE_{name.upper()}", value)
        get_settings.cache_clear()
        supabase._jwks_client.cache_clear()

    _configure()
    yield _configure
    monkeypatch.undo()
    get_settings.cache_clear()
    supabase._jwks_client.cache_clear()


def refused(token: str) -> str:
    with pytest.raises(Unauthorized) as error:
        supabase.verify_access_token(token)
    return str(error.value)


# Verification -------------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_a_token_signed_by_a_published_key_is_accepted(configure, project, kid):
    token = project.token(kid, sub="user-1", email="Ann@Example.com")
    claims = supabase.verify_access_token(token)
    assert claims["sub"] == "user-1" and claims["aud"] == "authenticated"


def test_the_key_set_is_cached(configure, project):
    before = project.fetches
    for _ in range(3):
        supabase.verify_access_token(project.token("rsa-1"))
    assert project.fetches == before + 1


def test_a_rotated_key_is_fetched_when_its_id_is_first_seen(configure, project):
    supabase.verify_access_token(project.token("rsa-1"))
    project.add_key("rsa-rotated", "RS256")

    assert supabase.verify_access_token(project.token("rsa-rotated"))["sub"]


def test_unknown_key_ids_do_not_hammer_the_project(configure, project):
    """A flood of made-up key ids fetches the set again at most once per cooldown."""
    configure(supabase_jwks_cooldown_seconds="30")
    supabase.verify_access_token(project.token("rsa-1"))
    fetched = project.fetches
    for number in range(5):
        project.add_key(f"made-up-{number}", "RS256", publish=False)
        refused(project.token(f"made-up-{number}"))
    assert project.fetches <= fetched + 1


def test_an_unknown_key_id_is_refused(configure, project):
    project.add_key("never-published", "RS256", publish=False)
    assert "not valid" in refused(project.token("never-published"))


def test_an_expired_token_is_refused(configure, project):
    assert "expired" in refused(project.token(expires_in=-3600))


def test_a_token_not_valid_yet_is_refused(configure, project):
    refused(project.token(nbf=int(time.time()) + 3600))


def test_a_token_for_another_audience_is_refused(configure, project):
    refused(project.token(audience="anon"))


@pytest.mark.parametrize("issuer", ["https://other.supabase.co/auth/v1", "supabase", "project"])
def test_a_token_from_another_issuer_is_refused(configure, project, issuer):
    refused(project.token(issuer=project.url if issuer == "project" else issuer))  # "project": without /auth/v1


def test_alg_none_is_refused(configure, project):
    configure(supabase_jwt_secret=HS_SECRET)
    for alg in ("none", "None", "NONE"):
        refused(project.raw_token({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, project.claims(), None))


def test_an_hs256_token_signed_with_the_public_key_is_refused(configure, project):
    """HS/RS confusion: the RSA public key (which anyone can fetch) used as an HMAC secret."""
    pem = project.public_pem("rsa-1")
    forged = project.raw_token({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, project.claims(), pem)
    refused(forged)  # no legacy secret configured: HS256 is not accepted at all
    configure(supabase_jwt_secret=HS_SECRET)
    refused(forged)  # with one, only that secret verifies HS256


def test_a_header_naming_another_algorithm_than_its_key_is_refused(configure, project):
    """An ES256 key id under an RS256 header (and the reverse) is not tried."""
    key, _ = project.keys["rsa-1"]
    token = jwt.encode(project.claims(), key, algorithm="RS256", headers={"kid": "ec-1"})
    refused(token)


def test_hs256_needs_the_legacy_secret(configure, project):
    token = project.hs_token()
    refused(token)
    configure(supabase_jwt_secret=HS_SECRET)
    assert supabase.verify_access_token(token)["sub"]
    refused(project.hs_token(secret="another-secret-" + "y" * 40))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 20000])
def test_garbage_is_refused(configure, token):
    refused(token)


def test_without_supabase_settings_nothing_is_accepted(configure, project, monkeypatch):
    token = project.token()
    monkeypatch.delenv("COURSE_SUPABASE_URL")
    get_settings.cache_clear()
    assert "not configured" in refused(token)


def test_an_anonymous_supabase_user_is_refused(configure, project):
    with pytest.raises(Forbidden):
        supabase.verify_access_token(project.token(is_anonymous=True))


# Users -----------------------------------------------------------------------------------------


def test_the_first_sign_in_creates_an_instructor_with_no_password(configure, project, session, engine):
    claims = supabase.verify_access_token(project.token(sub="sub-new", email="New.Person@Example.com"))
    user = supabase.user_for_claims(session=session, claims=claims)
    session.commit()

    with Session(engine) as fresh:
        stored = fresh.exec(select(User).where(User.supabase_sub == "sub-new")).one()
    assert (stored.id, stored.email, stored.role) == (user.id, "new.person@example.com", "instructor")
    assert not verify_password(stored.password_hash, "")
    with pytest.raises(Unauthorized):
        users.authenticate(session=session, email="new.person@example.com", password="!supabase")


def test_the_next_sign_in_finds_the_same_user(configure, project, session):
    first = supabase.user_for_claims(session=session, claims=project.claims(sub="sub-again"))
    session.commit()
    again = supabase.user_for_claims(session=session, claims=project.claims(sub="sub-again", email="changed@x.org"))
    assert again.id == first.id and again.email == first.email


def test_an_existing_password_account_is_not_linked_by_e_mail(configure, project, session, make_user):
    make_user(email="owner@example.com")
    with pytest.raises(Conflict, match="Log in with its password"):
        supabase.user_for_claims(session=session, claims=project.claims(sub="sub-claims", email="owner@example.com"))
    session.rollback()
    assert session.exec(select(User).where(User.supabase_sub == "sub-claims")).first() is None


def test_an_account_without_e_mail_gets_a_placeholder(configure, project, session):
    user = supabase.user_for_claims(session=session, claims=project.claims(sub="phone-only", email=""))
    assert user.email.endswith("@users.invalid")


def test_app_metadata_role_names_the_role(configure, project, session):
    claims = project.claims(app_metadata={"provider": "email", "role": "admin"})
    assert supabase.user_for_claims(session=session, claims=claims).role == "admin"
    claims = project.claims(app_metadata={"provider": "email", "role": "superuser"})  # not ours: the default
    assert supabase.user_for_claims(session=session, claims=claims).role == "instructor"


def test_without_a_default_role_only_the_claim_lets_people_in(configure, project, session):
    configure(supabase_default_role="")
    with pytest.raises(Forbidden, match="not an instructor"):
        supabase.user_for_claims(session=session, claims=project.claims(sub="student"))
    claims = project.claims(sub="teacher", app_metadata={"role": "instructor"})
    assert supabase.user_for_claims(session=session, claims=claims).role == "instructor"
    session.commit()
    with pytest.raises(Forbidden, match="no longer"):  # the claim taken away at Supabase
        supabase.user_for_claims(session=session, claims=project.claims(sub="teacher"))
