"""A resumable upload's ledger (UploadSession + UploadPart), read and recorded
inside the caller's transaction: lookups, sizes and the quota, and the checks and
records of single parts. Nothing here talks to storage; the life cycle that orders
storage's effects and the ledger's is upload_sessions.py (which re-exports these)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlmodel import Session, func, select

from course_app.errors import Conflict, InvalidInput, TooLarge
from course_app.models import Course, UploadPart, UploadSession, UploadStatus, User, Video, VideoReplacement, utcnow
from course_app.services.courses import owned_course
from course_app.services.validation import owned
from course_app.storage.base import MultipartStorage, PartInfo
from course_app.storage.keys import SHA1_HEX

OPEN_STATUSES = (UploadStatus.ACTIVE, UploadStatus.COMPLETING)


@dataclass(frozen=True)
class LedgerView:
    """What the API and the editor show of a session."""

    session: UploadSession
    parts: list[UploadPart]

    @property
    def confirmed_bytes(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def missing_parts(self) -> list[int]:
        have = {p.number for p in self.parts}
        return [n for n in range(1, self.session.part_count + 1) if n not in have]


# Sizes -------------------------------------------------------------------------------


def choose_part_size(*, size: int, storage: MultipartStorage, configured: int | None) -> int:
    """The configured or recommended part size, at least storage's minimum, grown
    so the file fits in storage's maximum number of parts."""
    part = max(configured or storage.recommended_part_size(), storage.min_part_size)
    return max(part, math.ceil(size / storage.max_parts))


def expected_part_size(upload: UploadSession, number: int) -> int:
    if number < upload.part_count:
        return upload.chunk_size
    return upload.size_bytes - upload.chunk_size * (upload.part_count - 1)


def bytes_in_use(*, session: Session, user: User) -> int:
    """Stored bytes plus bytes reserved by open uploads: what counts against the quota."""
    stored = session.exec(
        select(func.coalesce(func.sum(Video.size_bytes), 0))
        .join(Course, Course.id == Video.course_id)
        .where(Course.owner_id == user.id)
    ).one()
    replacing = session.exec(
        select(func.coalesce(func.sum(VideoReplacement.size_bytes), 0))
        .join(Course, Course.id == VideoReplacement.course_id)
        .where(Course.owner_id == user.id)
    ).one()
    reserved = session.exec(
        select(func.coalesce(func.sum(UploadSession.size_bytes), 0)).where(
            UploadSession.owner_id == user.id, UploadSession.status.in_(OPEN_STATUSES)
        )
    ).one()
    return int(stored) + int(replacing) + int(reserved)


# Lookups -----------------------------------------------------------------------------


def owned_session(*, session: Session, user: User, upload_id: object) -> UploadSession:
    return owned(session, UploadSession, upload_id, user=user, what="upload")


def confirmed_parts(session: Session, upload_id: uuid.UUID) -> list[UploadPart]:
    return list(session.exec(select(UploadPart).where(UploadPart.session_id == upload_id).order_by(UploadPart.number)))


def view(*, session: Session, user: User, upload_id: object) -> LedgerView:
    upload = owned_session(session=session, user=user, upload_id=upload_id)
    return LedgerView(upload, confirmed_parts(session, upload.id))


def unfinished_for_course(*, session: Session, user: User, course_id: object) -> list[LedgerView]:
    """Open uploads of a course, oldest first, with their confirmed parts (owner only:
    someone else's course is refused like on every other route, not an empty list)."""
    course_uuid = owned_course(session=session, user=user, course_id=course_id).id
    uploads = session.exec(
        select(UploadSession)
        .where(UploadSession.owner_id == user.id, UploadSession.course_id == course_uuid,
               UploadSession.status.in_(OPEN_STATUSES))
        .order_by(UploadSession.created_at)
    )
    return [LedgerView(u, confirmed_parts(session, u.id)) for u in uploads]


# Parts -----------------------------------------------------------------------------------


def check_part(*, session: Session, user: User, upload_id: object, number: object, size: object) -> UploadSession:
    """Refuse a part before reading its bytes: owner, open session, range, size."""
    upload = owned_session(session=session, user=user, upload_id=upload_id)
    if upload.status not in OPEN_STATUSES or not upload.storage_upload_id:
        raise Conflict(f"This upload is {upload.status}; start it again to send more parts.")
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= upload.part_count:
        raise InvalidInput(f"Part numbers for this upload run from 1 to {upload.part_count}.")
    expected = expected_part_size(upload, number)
    if size is None:
        raise InvalidInput("Send the part's length in the Content-Length header.")
    if size > expected:
        raise TooLarge(f"Part {number} must be exactly {expected} bytes; {size} were sent.")
    if size != expected:
        raise InvalidInput(f"Part {number} must be exactly {expected} bytes; {size} were sent.")
    return upload


def confirmed_part(*, session: Session, upload_id: uuid.UUID, number: int) -> UploadPart | None:
    return session.exec(
        select(UploadPart).where(UploadPart.session_id == upload_id, UploadPart.number == number)
    ).first()


def record_part(*, session: Session, upload_id: uuid.UUID, part: PartInfo) -> UploadPart:
    row = confirmed_part(session=session, upload_id=upload_id, number=part.number)
    if row is None:
        row = UploadPart(session_id=upload_id, number=part.number, size=part.size, sha1=part.sha1)
    else:
        row.size, row.sha1, row.created_at = part.size, part.sha1, utcnow()
    session.add(row)
    upload = session.get(UploadSession, upload_id)
    upload.updated_at = utcnow()
    session.add(upload)
    session.flush()
    return row


@dataclass(frozen=True)
class PartTarget:
    """Where part N of an upload goes, as checked in a transaction of its own, or
    the part already confirmed with the SHA1 the client sends (nothing to store)."""

    upload_id: uuid.UUID
    storage_key: str
    storage_upload_id: str
    confirmed: UploadPart | None


def part_target(
    *, session: Session, user: User, upload_id: object, number: object, size: object, client_sha1: str | None = None
) -> PartTarget:
    """check_part, the X-Part-SHA1 header's form, and the part already confirmed
    with that SHA1: everything store_part needs to know before reading a byte."""
    if client_sha1 is not None and not SHA1_HEX.fullmatch(client_sha1.lower()):
        raise InvalidInput("The X-Part-SHA1 header must be 40 hexadecimal characters.")
    upload = check_part(session=session, user=user, upload_id=upload_id, number=number, size=size)
    existing = confirmed_part(session=session, upload_id=upload.id, number=number)
    same = existing is not None and client_sha1 is not None and existing.sha1 == client_sha1.lower()
    return PartTarget(upload.id, upload.storage_key, upload.storage_upload_id, existing if same else None)
