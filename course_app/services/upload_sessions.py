"""Resumable uploads: the life cycle of the ledger (UploadSession + UploadPart).

    create ──▶ put part N (any order, again and again) ──▶ complete ──▶ video ready
       └──────────────── abort / sweep (stale) ─────────────────┘

Order of effects, so a crash at any step leaves something a retry, the sweep or
the checker finishes:
- create: the video row (``uploading``) and the session are written in one
  transaction, then storage starts the multipart upload and its id is saved;
- part: storage confirms the part, then the ledger records it (a part stored but
  not recorded is simply sent again);
- complete: storage joins the parts, then the video becomes ``ready`` and the
  session ``completed`` in one transaction; a repeated complete finds the work done;
- abort: the session, the video row's removal and the storage clean-up (outbox)
  are written in one transaction; storage is told afterwards and retried.

A section per step above, kept in one file so that the order of effects can be
checked in one read. Reading and recording the ledger inside a transaction (lookups,
sizes and the quota, checking and recording one part) is upload_ledger.py; its
names are this module's too, as callers have always used them. The sweep of stale
sessions is upload_sweep.py.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from sqlmodel import Session, select

from course_app.errors import Conflict, InvalidInput, QuotaExceeded, TooLarge
from course_app.models import UploadPart, UploadSession, UploadStatus, User, Video, VideoReplacement, VideoStatus, utcnow
from course_app.services import outbox, replacements, videos
from course_app.services.courses import owned_chapter
from course_app.services.ordering import lock_course
from course_app.services.upload_ledger import (OPEN_STATUSES, LedgerView, PartTarget, bytes_in_use, check_part,
                                               choose_part_size, confirmed_part, confirmed_parts, expected_part_size,
                                               owned_session, part_target, record_part, unfinished_for_course, view)
from course_app.services.video_types import sniff_video_type
from course_app.storage.base import MultipartStorage, PartInfo, StorageError, StoredObject, UploadAborted
from course_app.storage.keys import SHA1_HEX

__all__ = [  # the ledger's names (upload_ledger.py), then this module's own
    "OPEN_STATUSES", "LedgerView", "PartTarget", "bytes_in_use", "check_part", "choose_part_size", "confirmed_part",
    "confirmed_parts", "expected_part_size", "owned_session", "part_target", "record_part", "unfinished_for_course",
    "view", "FINGERPRINT_MAX", "SessionFactory", "ChecksumMismatch", "IncompletePart", "MissingParts", "create",
    "store_part", "complete", "abort", "close", "expire_session"]

SessionFactory = Callable[[], AbstractContextManager[Session]]
FINGERPRINT_MAX = 200


class ChecksumMismatch(InvalidInput):
    code = "checksum_mismatch"
    retryable = True


class IncompletePart(InvalidInput):
    code = "incomplete_part"
    retryable = True


# Create --------------------------------------------------------------------------------


def _check_request(fingerprint: object, size: object, sha1: object) -> tuple[str, int, str | None]:
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= FINGERPRINT_MAX:
        raise InvalidInput(f"'fingerprint' must be 1 to {FINGERPRINT_MAX} characters identifying the file.")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise InvalidInput("'size' must be the file's size in bytes (more than 0).")
    if sha1 is not None and (not isinstance(sha1, str) or not SHA1_HEX.fullmatch(sha1.lower())):
        raise InvalidInput("'sha1' must be 40 hexadecimal characters.")
    return fingerprint, size, sha1.lower() if isinstance(sha1, str) else None


def create(
    *,
    session_factory: SessionFactory,
    storage: MultipartStorage,
    user: User,
    course_id: object,
    chapter_id: object,
    filename: object,
    size: object,
    fingerprint: object,
    head: bytes,
    title: object = None,
    sha1: object = None,
    max_bytes: int,
    quota_bytes: int,
    configured_part_size: int | None = None,
    replaces_video_id: object = None,
) -> tuple[LedgerView, bool]:
    """Start an upload, or find the open one for the same file in the same chapter
    (resume). Returns (view, created). Everything is checked before any byte is
    stored: ownership, size limit, quota, and the type from the first bytes.
    With ``replaces_video_id`` the file replaces that video's in place
    (services/replacements.py): ``course_id`` and ``chapter_id`` may be None, and
    must be the video's when given."""
    fingerprint, size, sha1 = _check_request(fingerprint, size, sha1)
    with session_factory() as session:
        target = None
        if replaces_video_id is not None:
            target = videos.owned_video(session=session, user=user, video_id=replaces_video_id)
            if course_id is not None and str(course_id) != str(target.course_id) or (
                    chapter_id is not None and str(chapter_id) != str(target.chapter_id)):
                raise InvalidInput("The video to replace is in another course or chapter than the one given.")
            course_id, chapter_id = target.course_id, target.chapter_id
        chapter = owned_chapter(session=session, user=user, chapter_id=chapter_id, course_id=course_id)
        # The course's write lock first: two starts of the same file meet one open
        # session, and simultaneous starts into this course see each other's bytes
        # in the quota (``begin_upload`` takes the same lock again, harmlessly).
        lock_course(session, chapter.course_id, edit=False)
        existing = session.exec(
            select(UploadSession).where(
                UploadSession.owner_id == user.id,
                UploadSession.chapter_id == chapter.id,
                UploadSession.fingerprint == fingerprint,
                UploadSession.size_bytes == size,
                UploadSession.status.in_(OPEN_STATUSES),
                UploadSession.replaces_video_id == target.id if target else UploadSession.replacement_id.is_(None),
                *((UploadSession.replacement_id.is_not(None),) if target else ()),
            )
        ).first()
        if existing is not None and existing.storage_upload_id:
            return LedgerView(existing, confirmed_parts(session, existing.id)), False
        if size > max_bytes:
            raise TooLarge(f"The file is larger than the {videos.format_size(max_bytes)} limit.")
        used = bytes_in_use(session=session, user=user)
        if used + size > quota_bytes:
            raise QuotaExceeded(
                f"This upload needs {videos.format_size(size)} but only "
                f"{videos.format_size(max(0, quota_bytes - used))} of your {videos.format_size(quota_bytes)} "
                "storage is left. Delete videos you no longer need, or ask for more space."
            )
        content_type = sniff_video_type(head)
        part_size = choose_part_size(size=size, storage=storage, configured=configured_part_size)
        if target is not None:
            row = replacements.begin(session=session, user=user, video_id=target.id, filename=filename,
                                     content_type=content_type, fingerprint=fingerprint)
            links = {"replaces_video_id": target.id, "replacement_id": row.id}
        else:
            row = videos.begin_upload(
                session=session, user=user, course_id=chapter.course_id, chapter_id=chapter.id, filename=filename,
                title=title, content_type=content_type, declared_size=size, max_bytes=max_bytes,
                fingerprint=fingerprint,
            )
            links = {"video_id": row.id}
        upload = UploadSession(
            owner_id=user.id, course_id=chapter.course_id, chapter_id=chapter.id,
            filename=row.filename, size_bytes=size, content_type=content_type, chunk_size=part_size,
            part_count=max(1, math.ceil(size / part_size)), fingerprint=fingerprint,
            storage_key=row.storage_key, sha1=sha1, **links,
        )
        session.add(upload)
        session.flush()
        upload_id = upload.id
    # The intent is recorded; now storage. A crash here leaves a session without a
    # storage id, which the sweep expires.
    try:
        storage_upload_id = storage.start_multipart(upload.storage_key, content_type=content_type, sha1=sha1,
                                                    part_size=part_size)
    except StorageError as exc:
        _fail(session_factory, upload_id, f"Storage could not start the upload: {exc}")
        raise
    with session_factory() as session:
        upload = session.get(UploadSession, upload_id)
        upload.storage_upload_id = storage_upload_id
        upload.updated_at = utcnow()
        session.add(upload)
        session.flush()
        return LedgerView(upload, []), True


def _fail(session_factory: SessionFactory, upload_id: uuid.UUID, reason: str) -> None:
    with session_factory() as session:
        upload = session.get(UploadSession, upload_id)
        if upload is None:
            return
        upload.status, upload.error, upload.updated_at = UploadStatus.ABORTED, reason[:1000], utcnow()
        session.add(upload)
        if upload.video_id is not None:
            videos.fail_upload(session=session, video_id=upload.video_id, reason=reason, remove_row=True)
        if upload.replacement_id is not None:
            replacements.fail_upload(session=session, replacement_id=upload.replacement_id, reason=reason,
                                     remove_row=True)


# Parts -----------------------------------------------------------------------------------


def store_part(
    *,
    session_factory: SessionFactory,
    storage: MultipartStorage,
    user: User,
    upload_id: object,
    number: int,
    size: int,
    chunks: Iterable[bytes],
    client_sha1: str | None,
    target: PartTarget | None = None,
) -> tuple[UploadPart, bool]:
    """Store part ``number`` (synchronous: run it in a thread). Returns (part, stored):
    a part already confirmed with the same SHA1 is not stored again (idempotent).
    ``target``: part_target's answer when the caller asked already (the API does,
    to refuse before reading the body), which saves a transaction per part."""
    if target is None:
        with session_factory() as session:
            target = part_target(session=session, user=user, upload_id=upload_id, number=number, size=size,
                                 client_sha1=client_sha1)
    if target.confirmed is not None:
        return target.confirmed, False
    key, storage_upload_id, upload_uuid = target.storage_key, target.storage_upload_id, target.upload_id
    try:
        info = storage.put_part(key, storage_upload_id, number, chunks, size=size)
    except UploadAborted:
        raise IncompletePart(f"Part {number} arrived incomplete. Send it again.") from None
    if info.size != size:
        raise IncompletePart(f"Part {number} arrived with {info.size} bytes instead of {size}. Send it again.")
    if client_sha1 is not None and info.sha1 != client_sha1.lower():
        raise ChecksumMismatch(f"Part {number} was damaged on the way (its SHA1 does not match). Send it again.")
    with session_factory() as session:
        upload = session.get(UploadSession, upload_uuid)
        if upload is None or upload.status not in OPEN_STATUSES:
            raise Conflict("This upload was cancelled while the part was sent.")
        return record_part(session=session, upload_id=upload_uuid, part=info), True


# Complete ------------------------------------------------------------------------------------


class MissingParts(Conflict):
    code = "missing_parts"

    def __init__(self, missing: list[int]) -> None:
        shown = ", ".join(str(n) for n in missing[:20]) + (" …" if len(missing) > 20 else "")
        super().__init__(f"The upload is missing {len(missing)} part(s): {shown}. Send them, then complete again.")
        self.missing = missing

    def details(self) -> dict:
        return {"missing_parts": self.missing}


def complete(
    *,
    session_factory: SessionFactory,
    storage: MultipartStorage,
    user: User,
    upload_id: object,
    sha1: object = None,
) -> Video:
    """Join the parts; the video becomes ``ready`` only once storage's size (and
    SHA1, where known) match. Calling it again after success returns the video.
    A replacement's upload returns the video it replaces, unchanged until the new
    file is processed (its replacement is then on its way)."""
    if sha1 is not None and (not isinstance(sha1, str) or not SHA1_HEX.fullmatch(sha1.lower())):
        raise InvalidInput("'sha1' must be 40 hexadecimal characters.")
    declared_sha1 = sha1.lower() if isinstance(sha1, str) else None
    with session_factory() as session:
        upload = owned_session(session=session, user=user, upload_id=upload_id)
        finished_id = upload.video_id or upload.replaces_video_id
        if upload.status == UploadStatus.COMPLETED and finished_id is not None:
            video = session.get(Video, finished_id)
            if video is not None:
                return video
        if upload.status not in OPEN_STATUSES or not upload.storage_upload_id:
            raise Conflict(f"This upload is {upload.status} and cannot be completed.")
        parts = confirmed_parts(session, upload.id)
        missing = LedgerView(upload, parts).missing_parts
        if missing:
            raise MissingParts(missing)
        upload.status, upload.updated_at = UploadStatus.COMPLETING, utcnow()
        session.add(upload)
        expected_sha1 = upload.sha1 or declared_sha1
        key, storage_upload_id, size = upload.storage_key, upload.storage_upload_id, upload.size_bytes
        content_type, upload_uuid, video_id = upload.content_type, upload.id, upload.video_id
        replacement_id, replaced_id = upload.replacement_id, upload.replaces_video_id
        infos = [PartInfo(number=p.number, size=p.size, sha1=p.sha1) for p in parts]
    try:
        stored = storage.complete_multipart(key, storage_upload_id, infos, content_type=content_type)
    except StorageError:
        lost = _forget_parts_storage_lacks(session_factory, storage, upload_uuid, key, storage_upload_id)
        if lost:  # the ledger said more than storage holds: ask for those parts again
            raise MissingParts(lost) from None
        raise
    problem = _verify(stored, size=size, sha1=expected_sha1)
    with session_factory() as session:
        upload = session.get(UploadSession, upload_uuid)
        if problem is not None:
            upload.status, upload.error, upload.updated_at = UploadStatus.ABORTED, problem, utcnow()
            session.add(upload)
            outbox.enqueue_storage_deletion(session=session, storage_key=key, file_id=stored.file_id,
                                            reason="upload failed verification")
            if video_id is not None:
                videos.fail_upload(session=session, video_id=video_id, reason=problem, remove_row=False)
            if replacement_id is not None:
                replacements.fail_upload(session=session, replacement_id=replacement_id, reason=problem,
                                         remove_row=False)
            session.commit()
            raise ChecksumMismatch(problem)
        if declared_sha1 and not stored.sha1:
            stored = StoredObject(stored.key, stored.file_id, stored.size, declared_sha1, stored.content_type,
                                  stored.uploaded_at)
        if replacement_id is not None:
            finished = replacements.finish_upload(session=session, replacement_id=replacement_id, stored=stored)
            video = session.get(Video, replaced_id) if finished is not None and replaced_id else None
        elif replaced_id is not None:  # the replacement was dropped while the bytes travelled
            outbox.enqueue_storage_deletion(session=session, storage_key=stored.key, file_id=stored.file_id,
                                            reason="replacement dropped during upload")
            video = None
        else:
            video = videos.finish_upload(session=session, video_id=video_id, stored=stored) if video_id else None
        upload.status, upload.error, upload.updated_at = UploadStatus.COMPLETED, None, utcnow()
        session.add(upload)
        for part in confirmed_parts(session, upload_uuid):
            session.delete(part)
        if video is None:
            raise Conflict("The video was deleted while it was uploading.")
        return video


def _forget_parts_storage_lacks(
    session_factory: SessionFactory, storage: MultipartStorage, upload_id: uuid.UUID, key: str, storage_upload_id: str
) -> list[int]:
    """After a failed complete: set the session back to active and drop ledger
    parts that storage does not hold as recorded, so they are sent again."""
    try:
        held = {p.number: p for p in storage.list_parts(key, storage_upload_id)}
    except StorageError:
        held = None  # storage is down: keep the ledger as it is
    with session_factory() as session:
        upload = session.get(UploadSession, upload_id)
        upload.status, upload.updated_at = UploadStatus.ACTIVE, utcnow()
        session.add(upload)
        lost = []
        if held is not None:
            for part in confirmed_parts(session, upload_id):
                stored = held.get(part.number)
                if stored is None or stored.size != part.size or stored.sha1 != part.sha1:
                    lost.append(part.number)
                    session.delete(part)
        return lost


def _verify(stored: StoredObject, *, size: int, sha1: str | None) -> str | None:
    if stored.size != size:
        return f"Storage holds {stored.size} bytes but the file has {size}. Upload the file again."
    if sha1 and stored.sha1 and stored.sha1 != sha1:
        return "The stored file's SHA1 does not match the file's. Upload the file again."
    return None


# Abort and close ---------------------------------------------------------------------------------


def abort(*, session: Session, user: User, upload_id: object, reason: str = "upload cancelled") -> None:
    """Cancel an upload: the session, the video row's removal and the storage
    clean-up (through the outbox) are recorded together."""
    upload = owned_session(session=session, user=user, upload_id=upload_id)
    if upload.status == UploadStatus.COMPLETED:
        raise Conflict("This upload has finished; delete the video instead.")
    close(session, upload, status=UploadStatus.ABORTED, reason=reason, keep_video_as_failed=False)


def close(session: Session, upload: UploadSession, *, status: UploadStatus, reason: str,
          keep_video_as_failed: bool) -> int | None:
    """End a session (``aborted`` or ``expired``): its storage upload is cancelled
    through the outbox, its parts forgotten, its video removed or kept as ``failed``.
    Returns the outbox id of the storage upload's cancellation, if one was queued."""
    cancellation = None
    if upload.status in OPEN_STATUSES and upload.storage_upload_id:
        cancellation = outbox.enqueue_multipart_abort(
            session=session, storage_key=upload.storage_key, upload_id=upload.storage_upload_id, reason=reason
        ).id
    upload.status, upload.error, upload.updated_at = status, reason[:1000], utcnow()
    session.add(upload)
    for part in confirmed_parts(session, upload.id):
        session.delete(part)
    if upload.replacement_id is not None:
        replacement = session.get(VideoReplacement, upload.replacement_id)
        if replacement is not None and replacement.status == VideoStatus.UPLOADING:
            replacements.fail_upload(session=session, replacement_id=replacement.id, reason=reason,
                                     remove_row=not keep_video_as_failed)
    if upload.video_id is not None:
        video = session.get(Video, upload.video_id)
        if video is not None and video.status == VideoStatus.UPLOADING:
            if keep_video_as_failed:
                video.status, video.error, video.updated_at = VideoStatus.FAILED, reason[:1000], utcnow()
                session.add(video)
            else:
                videos.fail_upload(session=session, video_id=video.id, reason=reason, remove_row=True)
    session.flush()
    return cancellation


def expire_session(*, session: Session, upload: UploadSession, reason: str) -> None:
    """Close an open session that can no longer progress (the checker found it dead:
    its storage upload never started); its video becomes ``failed`` with ``reason``."""
    close(session, upload, status=UploadStatus.EXPIRED, reason=reason, keep_video_as_failed=True)
