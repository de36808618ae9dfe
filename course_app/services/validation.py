"""Checks shared by every service: text that users type, ids, and who owns a row."""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any, TypeVar

from sqlmodel import Session

from course_app.errors import Forbidden, InvalidInput, NotFound

OwnedRow = TypeVar("OwnedRow")

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def has_unsafe_characters(text: str, *, allowed: frozenset[str] | set[str] = frozenset()) -> bool:
    """Control characters, and lone surrogates (which no database can store)."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed for ch in text)


def clean_text(value: object, *, field: str, max_length: int, required: bool = True, multiline: bool = False) -> str:
    """Strip, reject control characters, enforce length; messages name the field."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.")
    text = value.strip()
    allowed = {"\n", "\t"} if multiline else set()
    if has_unsafe_characters(text, allowed=allowed):
        raise InvalidInput(f"{field} contains control characters.")
    if required and not text:
        raise InvalidInput(f"{field} cannot be empty.")
    if len(text) > max_length:
        raise InvalidInput(f"{field} is too long (at most {max_length} characters).")
    return text


def parse_uuid(value: object, *, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput(f"That {what} id is not valid.") from None


def owned(session: Session, model: type[OwnedRow], row_id: object, *, user: Any, what: str) -> OwnedRow:
    """The ``model`` row with this id if ``user`` owns it (its ``owner_id``); an invalid
    id is InvalidInput, a missing row NotFound, someone else's Forbidden."""
    row = session.get(model, parse_uuid(row_id, what=what))
    if row is None:
        raise NotFound(f"That {what} does not exist.")
    if row.owner_id != user.id:
        raise Forbidden(f"You do not have access to this {what}.")
    return row
