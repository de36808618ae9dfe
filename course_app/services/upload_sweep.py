"""The sweep of resumable uploads (``course-app sweep-uploads`` and the app's
upkeep task): stale sessions stuck in ``completing`` are finished, other stale
sessions expire (their videos become ``failed`` with a reason the instructor
sees), and storage uploads no session knows are cancelled."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from course_app.models import UploadSession, UploadStatus, User, utcnow
from course_app.services.upload_sessions import OPEN_STATUSES, SessionFactory, close, complete
from course_app.storage.base import MultipartStorage, StorageError

log = logging.getLogger(__name__)

UNKNOWN_UPLOAD_GRACE = timedelta(hours=1)


def _finish_interrupted_completions(session_factory: SessionFactory, storage: MultipartStorage, *,
                                    before: datetime) -> None:
    """A stale session stuck in ``completing`` had all its parts: finish it rather
    than expire it (the instructor's upload is kept); expiry takes it only if
    completing fails again."""
    with session_factory() as session:
        stuck = list(session.exec(select(UploadSession.id, UploadSession.owner_id).where(
            UploadSession.status == UploadStatus.COMPLETING, UploadSession.updated_at < before)))
    for upload_id, owner_id in stuck:
        with session_factory() as session:
            owner = session.get(User, owner_id)
        try:
            complete(session_factory=session_factory, storage=storage, user=owner, upload_id=upload_id)
        except Exception as exc:  # left for the expiry below
            log.warning("Could not finish interrupted upload %s: %s", upload_id, exc)


@dataclass
class SweepReport:
    expired: list[str]
    unknown_cancelled: list[str]
    dry_run: bool

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "expired_sessions": self.expired, "unknown_uploads_cancelled": self.unknown_cancelled}


def sweep(
    *, session_factory: SessionFactory, storage: MultipartStorage, stale_after: timedelta, dry_run: bool = False,
    now: datetime | None = None,
) -> SweepReport:
    """Expire sessions untouched for ``stale_after`` (their videos become ``failed``
    with a reason the instructor sees) and cancel storage uploads no session knows."""
    now = now or utcnow()
    report = SweepReport(expired=[], unknown_cancelled=[], dry_run=dry_run)
    reason = (f"Upload abandoned: no progress for {stale_after.total_seconds() / 3600:g} hours. "
              "Upload the file again.")
    if not dry_run:
        _finish_interrupted_completions(session_factory, storage, before=now - stale_after)
    with session_factory() as session:
        stale = list(session.exec(
            select(UploadSession).where(UploadSession.status.in_(OPEN_STATUSES),
                                        UploadSession.updated_at < now - stale_after)
        ))
        for upload in stale:
            report.expired.append(str(upload.id))
            if not dry_run:
                close(session, upload, status=UploadStatus.EXPIRED, reason=reason, keep_video_as_failed=True)
        # Uploads of closed sessions are cancelled through the outbox; only those no
        # session knows at all are the sweep's to cancel here.
        known = set(session.exec(select(UploadSession.storage_upload_id).where(
            UploadSession.storage_upload_id.is_not(None))))
    for unfinished in storage.list_unfinished("videos/"):
        started = unfinished.started_at
        if unfinished.upload_id in known or (started is not None and now - started < UNKNOWN_UPLOAD_GRACE):
            continue
        report.unknown_cancelled.append(f"{unfinished.key} ({unfinished.upload_id})")
        if not dry_run:
            try:
                storage.abort_multipart(unfinished.key, unfinished.upload_id)
            except StorageError as exc:
                log.warning("Could not cancel unfinished upload %s: %s", unfinished.upload_id, exc)
    return report

