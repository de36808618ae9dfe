"""Ordered children (chapters in a course, videos in a chapter): positions are
0..n-1 and unique within their parent, and a new order must name every child once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from sqlmodel import Session

from course_app.errors import Conflict, InvalidInput
from course_app.models import utcnow
from course_app.services.validation import parse_uuid


class Positioned(Protocol):
    id: object
    position: int


P = TypeVar("P", bound=Positioned)


def renumber(session: Session, rows: Sequence[P]) -> None:
    """Give ``rows`` positions 0..n-1 in order without ever breaking the unique
    (parent, position) constraint: park them on negative positions first."""
    for index, row in enumerate(rows):
        row.position = -(index + 1)
        session.add(row)
    session.flush()
    for index, row in enumerate(rows):
        row.position = index
        row.updated_at = utcnow()
        session.add(row)
    session.flush()


def in_requested_order(rows: Sequence[P], requested: object, *, what: str, parent: str, limit: int) -> list[P]:
    """``rows`` in the order of the ids in ``requested``, which must name each row once."""
    if not isinstance(requested, (list, tuple)) or len(requested) > limit:
        raise InvalidInput(f"The new order must list the {parent}'s {what}s.")
    wanted = [parse_uuid(value, what=what) for value in requested]
    by_id = {row.id: row for row in rows}
    if len(wanted) != len(set(wanted)) or set(wanted) != set(by_id):
        raise Conflict(f"The {what}s changed in the meantime; the list has been reloaded.")
    return [by_id[row_id] for row_id in wanted]
