"""The checker's part about pending replacements of a video's file
(services/replacements.py); reconcile.py runs it beside the video checks and repairs.

A replacement's new file and thumbnails are live objects. One whose lease ran out is
``stuck_processing`` like a video; one still ``uploading`` with no open upload
session is ``stuck_replacement`` (nothing stored: repair marks it failed, so the
lesson shows it) or ``unrecorded_replacement`` (stored, never handed on: repair
hands it to processing). A swap and its outbox entry commit together, so an old
file not yet deleted after a swap is a ``pending_deletion``, not a problem of this
module's.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, select

from course_app.models import UploadSession, VideoReplacement, VideoStatus
from course_app.services import replacements
from course_app.services.reconcile_findings import Problem, Report, judge_upload
from course_app.services.upload_sessions import SessionFactory
from course_app.storage.base import Storage, StoredObject

# What an ``uploading`` row's problem is called when the row is a replacement.
_KINDS = {"stuck_upload": "stuck_replacement", "unrecorded_upload": "unrecorded_replacement"}


def check(session: Session, report: Report, stored: dict[str, StoredObject], open_uploads: list[UploadSession],
          listed_at: datetime, grace: timedelta, live_keys: set[str], processing_keys: set[str]) -> None:
    """Pending replacements: add their objects to ``live_keys`` (and the files being
    processed to ``processing_keys``), and their problems to ``report``."""
    rows = session.exec(select(
        VideoReplacement.id, VideoReplacement.video_id, VideoReplacement.storage_key, VideoReplacement.status,
        VideoReplacement.stage, VideoReplacement.created_at, VideoReplacement.lease_expires_at,
        VideoReplacement.attempts, VideoReplacement.thumbnail_small_key, VideoReplacement.thumbnail_large_key,
    )).all()
    report.replacements_checked = len(rows)
    sessions = {u.replacement_id: u for u in open_uploads if u.replacement_id is not None}
    for rid, video_id, key, status, stage, created_at, lease_ends, attempts, *thumbs in rows:
        live_keys.add(key)
        live_keys.update(t for t in thumbs if t)
        ids = {"video_id": str(video_id), "replacement_id": str(rid)}
        if status == VideoStatus.PROCESSING:
            processing_keys.add(key)
            if lease_ends is not None and lease_ends < listed_at:
                report.problems.append(Problem("stuck_processing", key, f"replacement at {stage}, lease ran out "
                                               f"{lease_ends:%Y-%m-%d %H:%M:%S} UTC after {attempts} claim(s)", **ids))
        elif status == VideoStatus.UPLOADING:
            problem = judge_upload(str(video_id), key, created_at, stored.get(key), sessions.get(rid), listed_at,
                                   grace)
            if problem is None:
                report.in_flight += 1
                continue
            report.problems.append(dataclasses.replace(problem, kind=_KINDS.get(problem.kind, problem.kind),
                                                       replacement_id=str(rid)))


def uploading_row(session: Session, problem: Problem) -> VideoReplacement | None:
    """The problem's replacement, if it is still ``uploading`` (else the repair skips it)."""
    row = session.get(VideoReplacement, uuid.UUID(problem.replacement_id))
    return row if row is not None and row.status == VideoStatus.UPLOADING else None


def finish(session_factory: SessionFactory, storage: Storage, problem: Problem) -> str:
    """Repair of ``unrecorded_replacement``: the new file is stored; hand it to processing."""
    listed: StoredObject = problem.ref
    obj = storage.stat(problem.key, listed.file_id)
    if obj is None:
        return "skipped: the file is gone since the listing"
    with session_factory() as session:
        row = uploading_row(session, problem)
        if row is None:
            return "skipped: the replacement changed since the check"
        replacements.finish_upload(session=session, replacement_id=row.id, stored=obj)
    return f"handed to processing ({obj.size} bytes)"


def refers_to(session: Session, key: str, owner: str | None) -> bool:
    """Whether a replacement names ``key`` as its file or a thumbnail, or ``owner``
    (the file a thumbnail key belongs to) as its file: then it is no orphan."""
    return session.exec(select(VideoReplacement.id).where(or_(
        VideoReplacement.storage_key.in_([key, owner or key]),
        VideoReplacement.thumbnail_small_key == key, VideoReplacement.thumbnail_large_key == key,
    ))).first() is not None
