"""Ordered children (chapters in a course, videos in a chapter): positions are
0..n-1 and unique within their parent, and a new order must name every child once.

Every write that assigns or changes positions first takes its course's write
lock (``lock_course``) and only then reads positions, so two requests never
compute the same ``max(position) + 1`` or renumber from a stale list.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import InvalidRequestError
from sqlmodel import Session

from course_app.errors import Conflict, InvalidInput, NotFound, Stale
from course_app.models import Course, utcnow
from course_app.services.validation import parse_uuid


class Positioned(Protocol):
    id: object
    position: int


P = TypeVar("P", bound=Positioned)
R = TypeVar("R")


REVISION = "course_revision"  # session.info keys: the revision and pulse the last write produced
PULSE = "course_pulse"


def lock_course(session: Session, course_id: uuid.UUID, *, revision: int | None = None, edit: bool = True) -> int:
    """Take the course's write lock for the rest of the transaction and mark the
    course changed. Call it before reading any position. Returns the course's
    revision after the change (also left in ``session.info[REVISION]``).

    An ``edit`` (anything a person changes: titles, order, chapters, videos coming
    or going) advances the revision; with ``revision`` (the one the editor's view or
    the API client's ``If-Match`` was built from) it is refused with ``Stale`` when
    the course has moved on since. Status changes (``edit=False``: an upload's
    bytes arriving, processing) only advance the pulse that open editors watch.

    It is an UPDATE of the course row. On PostgreSQL the row lock serializes the
    writes of one course, and under READ COMMITTED every later statement sees what
    the previous holder committed; the revision test is part of the same UPDATE, so
    of two racing edits from one view exactly one wins. On SQLite the UPDATE starts
    the write transaction (the driver runs earlier SELECTs outside one), so the
    database is locked for other writers (they wait up to busy_timeout) and later
    reads are current. Raises NotFound if the course was deleted meanwhile."""
    values: dict = {"updated_at": utcnow(), "pulse": Course.pulse + 1}
    condition = Course.id == course_id
    if edit:
        values["revision"] = Course.revision + 1
        if revision is not None:
            condition = condition & (Course.revision == revision)
    statement = update(Course).where(condition).values(**values).returning(Course.revision, Course.pulse)
    changed = session.execute(statement).one_or_none()
    if changed is None:
        now = session.scalar(select(Course.revision).where(Course.id == course_id))
        if now is None:
            raise NotFound("That course does not exist.")
        raise Stale(revision=now)
    session.info[REVISION], session.info[PULSE] = changed
    return changed[0]


def then(session: Session, revision: int | None) -> int | None:
    """The revision the next step of one edit is checked against: what the previous
    step produced (or no check, when the edit came without one)."""
    return session.info[REVISION] if revision is not None else None


def current(session: Session, row: R, *, gone: str) -> R:
    """``row`` reloaded after the lock (another transaction may have changed,
    deleted or trashed it between the ownership check and the lock)."""
    try:
        session.refresh(row)
    except InvalidRequestError:  # the row is gone
        raise NotFound(gone) from None
    if getattr(row, "deleted_at", None) is not None:  # in the course trash (services/trash.py)
        raise NotFound(gone)
    return row


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


def parse_id_list(values: object, *, what: str, limit: int) -> list[uuid.UUID]:
    """A non-empty list (at most ``limit``) of distinct ids, in the given order."""
    if not isinstance(values, (list, tuple)) or not values:
        raise InvalidInput(f"Choose at least one {what}.")
    if len(values) > limit:
        raise InvalidInput(f"Choose at most {limit} {what}s at once.")
    ids = [parse_uuid(value, what=what) for value in values]
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"Each {what} may be listed only once.")
    return ids


def in_requested_order(rows: Sequence[P], requested: object, *, what: str, parent: str, limit: int) -> list[P]:
    """``rows`` in the order of the ids in ``requested``, which must name each row once."""
    if not isinstance(requested, (list, tuple)) or len(requested) > limit:
        raise InvalidInput(f"The new order must list the {parent}'s {what}s.")
    wanted = [parse_uuid(value, what=what) for value in requested]
    by_id = {row.id: row for row in rows}
    if len(wanted) != len(set(wanted)) or set(wanted) != set(by_id):
        raise Conflict(f"The {what}s changed in the meantime; the list has been reloaded.")
    return [by_id[row_id] for row_id in wanted]
