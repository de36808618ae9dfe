"""Supabase sign-in: a Supabase access token, verified here, names a local user.

Verification is local (PyJWT; Supabase is asked only for its public keys, cached):
- ES256 / RS256 tokens against the project's JWKS; a key id not in the cached set
  fetches the set again (at most once per ``supabase_jwks_cooldown_seconds``), so
  rotated keys are picked up;
- HS256 tokens (projects still on the legacy JWT secret) only when
  ``COURSE_SUPABASE_JWT_SECRET`` is set;
- anything else (``alg: none``, HS256 without a secret, a header naming one
  algorithm and a key of another kind) is refused before any signature check, so an
  RSA public key can never be used as an HMAC secret;
- issuer ``<url>/auth/v1``, audience (``authenticated``), expiry and not-before are
  checked; anonymous Supabase users are refused.

The token's ``sub`` is kept in ``users.supabase_sub``; the first sign-in creates
the user. An existing account is never linked by e-mail: nothing in an access token
proves the address was confirmed (``user_metadata`` is writable by its user, and a
project may accept sign-ups without confirmation), so linking would hand a password
account to whoever registered its address at Supabase. Such a sign-in is refused
with a message; the person logs in with their password instead.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import jwt
from jwt import PyJWKClient
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from course_app.errors import Conflict, DomainError, Forbidden, Unauthorized
from course_app.models import ROLES, User
from course_app.services.users import normalise_email
from course_app.settings import get_settings

ASYMMETRIC = frozenset({"ES256", "RS256"})
LEEWAY_SECONDS = 30  # clock difference allowed between Supabase and this machine
TOKEN_MAX = 16 * 1024
JWKS_TIMEOUT_SECONDS = 5
NO_PASSWORD = "!supabase"  # not an argon2 hash: a password never matches it
INVALID = "That Supabase sign-in is not valid or has expired. Sign in again."


class SupabaseUnavailable(DomainError):
    status_code = 503
    code = "unavailable"
    retryable = True


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


@lru_cache(maxsize=4)
def _jwks_client(url: str, lifespan: float, cooldown: float) -> PyJWKClient:
    return PyJWKClient(url, cache_jwk_set=True, lifespan=lifespan, cooldown_duration=cooldown,
                       timeout=JWKS_TIMEOUT_SECONDS)


def _verification_key(token: str, alg: str) -> Any:
    settings = get_settings()
    if alg == "HS256" and settings.supabase_jwt_secret:
        return settings.supabase_jwt_secret
    if alg not in ASYMMETRIC:
        raise Unauthorized(INVALID)
    client = _jwks_client(settings.resolved_supabase_jwks_url, settings.supabase_jwks_cache_seconds,
                          settings.supabase_jwks_cooldown_seconds)
    try:
        key = client.get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError:
        raise SupabaseUnavailable("Supabase's signing keys could not be fetched. Try again in a moment.") from None
    except jwt.PyJWTError:  # no key with that id, even after fetching the set again
        raise Unauthorized(INVALID) from None
    if key.algorithm_name != alg:  # an EC key offered for an RS256 header, or the reverse
        raise Unauthorized(INVALID)
    return key.key


def verify_access_token(token: object) -> dict[str, Any]:
    """The claims of a valid Supabase access token; Unauthorized otherwise. Blocking
    (a JWKS fetch now and then): call it from a thread."""
    settings = get_settings()
    if not settings.supabase_enabled:
        raise Unauthorized("Supabase sign-in is not configured on this server.")
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX or not looks_like_jwt(token):
        raise Unauthorized(INVALID)
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        raise Unauthorized(INVALID) from None
    key = _verification_key(token, alg)
    try:
        claims = jwt.decode(token, key, algorithms=[alg], audience=settings.supabase_audience,
                            issuer=settings.supabase_issuer, leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "iat", "sub", "aud", "iss"]})
    except jwt.PyJWTError:
        raise Unauthorized(INVALID) from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 255:
        raise Unauthorized(INVALID)
    if claims.get("is_anonymous") is True:
        raise Forbidden("Anonymous Supabase sessions cannot sign in here. Sign in with your account.")
    return claims


def _claimed_role(claims: dict[str, Any]) -> str | None:
    """The role a new (or, without a default, any) user gets: the app_metadata.role
    claim when it names one of ours (app_metadata is set by the project, never by
    its users), else the configured default."""
    metadata = claims.get("app_metadata")
    role = metadata.get("role") if isinstance(metadata, dict) else None
    if isinstance(role, str) and role in ROLES:
        return role
    return get_settings().supabase_default_role or None


def _email_of(claims: dict[str, Any]) -> str:
    try:
        return normalise_email(claims.get("email"))
    except DomainError:  # a phone-only account: a placeholder no one can receive mail at
        return f"supabase-{hashlib.sha256(claims['sub'].encode()).hexdigest()[:20]}@users.invalid"


def user_for_claims(*, session: Session, claims: dict[str, Any]) -> User:
    """The local user of verified claims, created on first sign-in."""
    sub = claims["sub"]
    role = _claimed_role(claims)
    user = session.exec(select(User).where(User.supabase_sub == sub)).first()
    if user is not None:
        if role is None:
            raise Forbidden("Your Supabase account is no longer an instructor here.")
        return user
    if role is None:
        raise Forbidden("Your Supabase account is not an instructor here. Ask the school's administrator.")
    email = _email_of(claims)
    if session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict("An account with this e-mail already exists here. Log in with its password.")
    user = User(email=email, password_hash=NO_PASSWORD, role=role, supabase_sub=sub)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # the same person signing in twice at once: the other request made the user
        session.rollback()
        user = session.exec(select(User).where(User.supabase_sub == sub)).first()
        if user is None:
            raise Conflict("An account with this e-mail already exists here. Log in with its password.") from None
    return user


def user_for_access_token(*, session: Session, token: str) -> User:
    return user_for_claims(session=session, claims=verify_access_token(token))
