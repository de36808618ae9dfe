"""Browser sessions and personal API tokens: who a request comes from.

Both are random 256-bit tokens handed to the client once; the database keeps
only an HMAC-SHA256 of each (keyed by the secret key), so a copy of the
database does not let anyone log in. Creating, listing and revoking API tokens
is services/api_tokens.py.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie

from sqlmodel import Session, delete, select

from course_app.models import ApiToken, AuthSession, User, utcnow
from course_app.settings import get_settings

SESSION_COOKIE = "cs_session"
API_TOKEN_PREFIX = "cst_"


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def token_hash(token: str) -> str:
    key = get_settings().resolved_secret_key().encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


# Browser sessions -----------------------------------------------------------


def create_session(*, session: Session, user: User) -> tuple[str, datetime]:
    """Start a browser session; returns the token (for the cookie) and its expiry."""
    token = new_token()
    expires_at = utcnow() + timedelta(hours=get_settings().session_lifetime_hours)
    session.add(AuthSession(user_id=user.id, token_hash=token_hash(token), expires_at=expires_at))
    session.flush()
    return token, expires_at


def user_for_session_token(*, session: Session, token: str | None) -> User | None:
    if not token or len(token) > 200:
        return None
    row = session.exec(select(AuthSession).where(AuthSession.token_hash == token_hash(token))).first()
    if row is None:
        return None
    if row.expires_at <= utcnow():
        session.delete(row)
        return None
    return session.get(User, row.user_id)


def live_session_and_user(*, session: Session, token: str | None) -> tuple[int, User] | None:
    """The unexpired session behind this token and its user, in one query, else None."""
    if not token or len(token) > 200:
        return None
    return session.exec(select(AuthSession.id, User).join(User, User.id == AuthSession.user_id).where(
        AuthSession.token_hash == token_hash(token), AuthSession.expires_at > utcnow())).first()


def live_session_hashes(*, session: Session, hashes: list[str]) -> set[str]:
    """Which of these session token hashes still belong to an unexpired session."""
    live: set[str] = set()
    for start in range(0, len(hashes), 500):
        batch = hashes[start:start + 500]
        live.update(session.exec(select(AuthSession.token_hash).where(
            AuthSession.token_hash.in_(batch), AuthSession.expires_at > utcnow())).all())
    return live


def end_session(*, session: Session, token: str | None) -> None:
    if token:
        session.exec(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))


def end_all_sessions(*, session: Session, user_id: int) -> int:
    """Log the user out everywhere: every browser session ends (API tokens stay)."""
    result = session.exec(delete(AuthSession).where(AuthSession.user_id == user_id))
    return result.rowcount or 0


def purge_expired_sessions(*, session: Session) -> int:
    result = session.exec(delete(AuthSession).where(AuthSession.expires_at <= utcnow()))
    return result.rowcount or 0


def session_token_from_cookie_header(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel else None


# Personal API tokens --------------------------------------------------------


def user_for_api_token(*, session: Session, token: str | None) -> User | None:
    if not token or not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).first()
    if row is None:
        return None
    row.last_used_at = utcnow()
    session.add(row)
    return session.get(User, row.user_id)


# Signed notices -------------------------------------------------------------


def notice_signature(message: str) -> str:
    """Sign a message put in a redirect URL, so pages show only messages we wrote."""
    return token_hash("notice:" + message)[:24]


def notice_is_authentic(message: str, signature: str) -> bool:
    return hmac.compare_digest(notice_signature(message), signature or "")


def safe_next(path: object, default: str = "") -> str:
    """A local path to go to after log-in; anything else (other sites) becomes ``default``."""
    if isinstance(path, str) and path.startswith("/") and not path.startswith(("//", "/\\")) and len(path) < 500:
        return path
    return default
