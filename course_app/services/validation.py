"""Checks for text that users type, shared by every service."""

from __future__ import annotations

import re
import unicodedata
import uuid

from course_app.errors import InvalidInput

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
