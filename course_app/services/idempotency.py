"""Idempotent API requests: a request sent again with the same ``Idempotency-Key``
gets the first answer again instead of being applied twice.

The answer is saved in the same transaction as the request's effect, so either
both are there or neither is: a retry after a crash or a lost answer finds the
saved answer, or applies the request for the first time."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session, select

from course_app.errors import Conflict, InvalidInput
from course_app.models import IdempotentRequest, utcnow

KEY_MAX = 200
KEEP = timedelta(hours=24)


def clean_key(value: str | None) -> str | None:
    if value is None:
        return None
    key = value.strip()
    if not key or len(key) > KEY_MAX or not key.isprintable():
        raise InvalidInput(f"'Idempotency-Key' must be 1 to {KEY_MAX} printable characters.")
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


def saved(*, session: Session, user_id: int, key: str, request_fingerprint: str) -> IdempotentRequest | None:
    """The saved answer for this key, if any; a key already used for a different
    request is refused (it would otherwise replay an answer to something else)."""
    found = session.exec(
        select(IdempotentRequest).where(IdempotentRequest.user_id == user_id, IdempotentRequest.key == key)
    ).first()
    if found is not None and found.fingerprint != request_fingerprint:
        raise Conflict("This Idempotency-Key was already used for a different request; use a new key.")
    return found


def save(*, session: Session, user_id: int, key: str, request_fingerprint: str, status_code: int, body: str) -> None:
    session.add(IdempotentRequest(user_id=user_id, key=key, fingerprint=request_fingerprint,
                                  status_code=status_code, body=body))
    session.flush()


def purge_expired(*, session: Session, keep: timedelta = KEEP) -> int:
    result = session.exec(delete(IdempotentRequest).where(IdempotentRequest.created_at < utcnow() - keep))  # type: ignore[call-overload]
    return result.rowcount or 0
