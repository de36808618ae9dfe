"""What every API route needs: a database session, the storage, the current user
(session cookie, or a bearer token: ours or a Supabase access token), rate limits
and the cross-site request check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlmodel import Session

from course_app.api.client_address import client_address
from course_app.auth import supabase
from course_app.auth.tokens import API_TOKEN_PREFIX, SESSION_COOKIE, user_for_api_token, user_for_session_token
from course_app.db import session_scope
from course_app.errors import Forbidden, Unauthorized
from course_app.models import User
from course_app.rate_limits import enforce_rate_limit, enforce_rate_limit_async  # noqa: F401  (the routes' limits)
from course_app.rate_limits import enforce_anonymous_rate_limit, enforce_user_rate_limit
from course_app.settings import get_settings
from course_app.storage import Storage, get_storage

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db() -> Iterator[Session]:
    with session_scope() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db)]


def current_storage() -> Storage:
    """The process's storage (local disk or B2, both multipart-capable); tests may
    override this dependency. Sync, so a first B2 authorization runs off the loop."""
    return get_storage()


StorageDep = Annotated[Storage, Depends(current_storage)]


# Rate limits (course_app/rate_limits.py: one limiter for both doors) ---------


def client_ip(request: Request) -> str:
    return client_address(request.scope)


# Cross-site requests --------------------------------------------------------


def origin_allowed(request: Request) -> bool:
    """Same-origin requests and configured origins may change state with a cookie."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True  # not a browser making a cross-site request
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    origin = origin.rstrip("/")
    if origin in get_settings().allowed_origins:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def check_csrf(request: Request) -> None:
    if request.method not in SAFE_METHODS and not origin_allowed(request):
        raise Forbidden("Cross-site request refused.")


# Current user ---------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _bearer_user(db: Session, token: str) -> User:
    """The user of a bearer token: one of our API tokens or, with Supabase sign-in on,
    a Supabase access token (the user is made on first use, as on the log-in page)."""
    if not token.startswith(API_TOKEN_PREFIX) and get_settings().supabase_enabled and supabase.looks_like_jwt(token):
        return supabase.user_for_access_token(session=db, token=token)
    user = user_for_api_token(session=db, token=token)
    if user is None:
        raise Unauthorized("That API token is not valid. Create a new one on the settings page.")
    return user


def optional_user(request: Request) -> User | None:
    """The user behind the bearer token or session cookie. Uses its own short
    transaction, so a long upload does not hold a database connection. Bad
    credentials count against the client's address (``anonymous_rate_limit``)."""
    bearer = _bearer(request)
    with session_scope() as db:
        if bearer is not None:
            try:
                return _bearer_user(db, bearer)
            except (Unauthorized, Forbidden):
                enforce_anonymous_rate_limit(client_ip(request))
                raise
        user = user_for_session_token(session=db, token=request.cookies.get(SESSION_COOKIE))
    if user is not None:
        check_csrf(request)
    return user


def current_user(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        enforce_anonymous_rate_limit(client_ip(request))
        raise Unauthorized("Log in, or send an API token as 'Authorization: Bearer <token>'.")
    enforce_user_rate_limit(user.id)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


# Refusing a request with a body ----------------------------------------------------

DRAIN_LIMIT = 64 * 1024 * 1024


async def drain_small_body(request: Request, declared: int | None) -> None:
    """Read and drop a refused request's body when it is small, so the client
    (which is still sending) receives the error instead of a reset connection.
    Large bodies are not read: the server answers and closes."""
    if declared is not None and declared <= DRAIN_LIMIT:
        async for _ in request.stream():
            pass
