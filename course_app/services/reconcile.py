"""Two-way reconciliation of the database and storage (``course-app check-videos``).

``check_videos`` reads one storage listing (plus the unfinished multipart uploads
and, on local disk, the leftovers of interrupted writes), one query per table, and
compares them as sets, so it scales to hundreds of thousands of videos without a
request per object. It reports:

- ready rows whose stored file is missing or whose size / SHA1 differ; rows in
  the course trash are counted apart and keep their files until purged, so a
  trashed row without its file is a problem of its own (``trashed_missing_file``);
- videos whose processing lease ran out (``stuck_processing``: the worker died or
  the job was lost; the reaper normally queues it again within seconds);
- rows stuck in ``uploading`` with no open upload session for longer than the
  grace period: with nothing stored (``stuck_upload``), with the file stored but
  the row never marked ready (``unrecorded_upload``: the database failed at the
  last step), or a resumable upload whose completion was interrupted;
- stored files no live row references (``orphan_file``; a failed upload's file
  counts, not the file or thumbnails of a video whose processing failed: Retry needs them);
- unfinished multipart uploads no open upload session knows (``unknown_upload``);
- leftovers of interrupted writes (local disk: temp files, lone sidecars);
- storage deletions waiting in the outbox (``pending_deletion``);
- pending replacements of a video's file (reconcile_replacements.py): their new
  file and thumbnails are live objects; stuck ones are ``stuck_processing``,
  ``stuck_replacement`` or ``unrecorded_replacement``.

``repair`` fixes what is safe, re-checks and returns what remains. Nothing younger
than the grace period is touched, so uploads in flight are left alone: a stored
file's age is its upload time (local: mtime), an upload's its start. The grace
period must be longer than the slowest single-request upload takes.

The listing is read before the database, and every row is written before its bytes
(services/uploads.py, upload_sessions.py), so a file uploaded while the check runs
always finds its row. A row that became ready after the listing started is not
judged, and every destructive repair looks again at that one row or object first.

The kinds of problem, what repair does about each and the reports are in
reconcile_findings.py (re-exported here); the replacements' checks and repairs in
reconcile_replacements.py. This file keeps the video checks and their repairs
together, so that each kind of problem's check and its repair read in one place.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from course_app.errors import DomainError
from course_app.models import StorageDeletion, UploadSession, UploadStatus, User, Video, VideoStatus, utcnow
from course_app.services import outbox, processing, reconcile_replacements, replacements, upload_sessions, videos
from course_app.services.reconcile_findings import (KINDS, REPAIRS, Action, Problem, RepairReport, Report,
                                                    judge_upload, older)
from course_app.services.video_types import SNIFF_BYTES, sniff_video_type
from course_app.storage.base import Leftover, MultipartStorage, Storage, StorageError, StoredObject

log = logging.getLogger(__name__)

SessionFactory = Callable[[], AbstractContextManager[Session]]

VIDEO_PREFIX = "videos/"
DEFAULT_GRACE = timedelta(minutes=60)
MISSING_FILE_REASON = "The stored file is missing. Upload the video again."
STUCK_REASON = "The upload did not finish. Upload the video again."
NOT_A_VIDEO_REASON = "The stored file is not a video we can use. Upload the video again."

# The findings' names are this module's too (the CLI and the tests use them from here).
__all__ = ["KINDS", "REPAIRS", "Action", "Problem", "RepairReport", "Report", "check_videos", "repair",
           "thumbnail_owner", "DEFAULT_GRACE", "MISSING_FILE_REASON", "NOT_A_VIDEO_REASON", "STUCK_REASON"]


# The check ---------------------------------------------------------------------------


def check_videos(
    *, session: Session, storage: Storage, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None
) -> Report:
    """Compare the database with storage; changes nothing."""
    listed_at = now or utcnow()
    report = Report()
    # Storage first, then the database (see the module docstring).
    stored = {obj.key: obj for obj in storage.list(VIDEO_PREFIX)}
    unfinished = list(storage.list_unfinished(VIDEO_PREFIX)) if isinstance(storage, MultipartStorage) else []
    leftovers = list(storage.list_leftovers(VIDEO_PREFIX))
    rows = session.exec(
        select(Video.id, Video.storage_key, Video.status, Video.size_bytes, Video.sha1, Video.created_at,
               Video.updated_at, Video.deleted_at, Video.stage, Video.lease_expires_at, Video.attempts,
               Video.thumbnail_small_key, Video.thumbnail_large_key)
    ).all()
    open_uploads = list(session.exec(
        select(UploadSession).where(UploadSession.status.in_(upload_sessions.OPEN_STATUSES))
        .order_by(UploadSession.created_at)
    ))
    open_sessions = {u.video_id: u for u in open_uploads if u.video_id is not None}
    pending = list(session.exec(select(StorageDeletion).order_by(StorageDeletion.id)))
    report.objects_checked, report.rows_checked, report.unfinished_checked = len(stored), len(rows), len(unfinished)
    problems = report.problems

    live_keys: set[str] = set()
    processing_keys: set[str] = set()  # their thumbnails may be stored before the row records them
    for (video_id, key, status, size, sha1, created_at, updated_at, deleted_at, stage, lease_ends, attempts,
         *thumbs) in rows:
        vid = str(video_id)
        obj = stored.get(key)
        trashed = f" (in the trash since {deleted_at:%Y-%m-%d %H:%M} UTC)" if deleted_at is not None else ""
        report.trashed_rows += bool(trashed)
        live_keys.update(t for t in thumbs if t)
        if status == VideoStatus.PROCESSING or (status == VideoStatus.FAILED and stage is not None):
            live_keys.add(key)
        if status == VideoStatus.PROCESSING:
            processing_keys.add(key)
            if lease_ends is not None and lease_ends < listed_at:
                problems.append(Problem("stuck_processing", key, f"at {stage}, lease ran out "
                                        f"{lease_ends:%Y-%m-%d %H:%M:%S} UTC after {attempts} claim(s)", vid))
        if status == VideoStatus.READY:
            live_keys.add(key)
            if obj is None:
                if updated_at is not None and updated_at >= listed_at:
                    report.in_flight += 1  # became ready after the listing started
                else:
                    problems.append(Problem("trashed_missing_file" if trashed else "missing_file", key,
                                            "the row is ready but storage has no file" + trashed, vid))
            elif obj.size != size:
                problems.append(Problem("size_mismatch", key, f"row says {size} bytes, storage has {obj.size}{trashed}",
                                        vid, repairable=False))
            elif sha1 and obj.sha1 and obj.sha1 != sha1:
                problems.append(Problem("sha1_mismatch", key, "stored SHA1 differs from the row's" + trashed, vid,
                                        repairable=False))
        elif status == VideoStatus.UPLOADING:
            live_keys.add(key)
            problem = judge_upload(vid, key, created_at, obj, open_sessions.get(video_id), listed_at, grace)
            if problem is None:
                report.in_flight += 1
            else:
                problems.append(problem)

    reconcile_replacements.check(session, report, stored, open_uploads, listed_at, grace, live_keys, processing_keys)

    pending_keys = {p.storage_key for p in pending}
    for key, obj in stored.items():
        owner = thumbnail_owner(key)
        if key in live_keys or key in pending_keys or owner in processing_keys or owner in pending_keys:
            continue  # (a queued deletion of a video's file takes its thumbnails too)
        old = older(obj.uploaded_at, listed_at, grace)
        when = f"stored {obj.uploaded_at:%Y-%m-%d %H:%M} UTC" if obj.uploaded_at else "upload time unknown"
        detail = f"{obj.size} bytes, {when}, no live video row" + ("" if old else "; younger than the grace period")
        problems.append(Problem("orphan_file", key, detail, repairable=old, ref=obj))

    known_uploads = {u.storage_upload_id for u in open_uploads if u.storage_upload_id}
    pending_uploads = {p.multipart_upload_id for p in pending if p.multipart_upload_id}
    for upload in unfinished:
        if upload.upload_id in known_uploads or upload.upload_id in pending_uploads:
            continue
        if not older(upload.started_at, listed_at, grace):
            report.in_flight += 1
            continue
        started = f"started {upload.started_at:%Y-%m-%d %H:%M} UTC"
        problems.append(Problem("unknown_upload", upload.key, started, upload_id=upload.upload_id))

    for leftover in leftovers:
        if not older(leftover.modified_at, listed_at, grace):
            report.in_flight += 1
            continue
        problems.append(Problem("leftover_file", leftover.path, f"{leftover.size} bytes", ref=leftover))

    for p in pending:
        detail = f"{p.reason}; {p.attempts} attempt(s)" + (f"; last error: {p.last_error}" if p.last_error else "")
        problems.append(Problem("pending_deletion", p.storage_key, detail, upload_id=p.multipart_upload_id))

    order = list(KINDS)
    problems.sort(key=lambda p: (order.index(p.kind), p.key))
    return report


def thumbnail_owner(key: str) -> str | None:
    """The video key a thumbnail key belongs to (services/media.py names them), else None."""
    owner, marker, _ = key.partition(outbox.DERIVED_MARKER)
    return owner if marker else None


# The repair --------------------------------------------------------------------------


def repair(*, session_factory: SessionFactory, storage: Storage, grace: timedelta = DEFAULT_GRACE) -> RepairReport:
    """Check, fix what is safe to fix, and check again. Each fix is its own
    transaction; one that fails is reported and the rest go on."""
    with session_factory() as session:
        before = check_videos(session=session, storage=storage, grace=grace)
    actions: list[Action] = []
    fixes: dict[str, Callable[[Problem], str]] = {
        "unrecorded_upload": lambda p: _finish_from_object(session_factory, storage, p),
        "interrupted_completion": lambda p: _complete_upload(session_factory, storage, p),
        "stuck_upload": lambda p: _fail_stuck(session_factory, storage, p),
        "stuck_replacement": lambda p: _fail_stuck(session_factory, storage, p),
        "unrecorded_replacement": lambda p: reconcile_replacements.finish(session_factory, storage, p),
        "stuck_processing": lambda p: _reap(session_factory, p),
        "missing_file": lambda p: _fail_missing(session_factory, storage, p),
        "trashed_missing_file": lambda p: _fail_missing(session_factory, storage, p),
        "orphan_file": lambda p: _delete_orphan(session_factory, storage, p),
        "unknown_upload": lambda p: _cancel_upload(storage, p),
        "leftover_file": lambda p: _remove_leftover(storage, p),
    }
    for problem in before.problems:
        fix = fixes.get(problem.kind)
        if fix is None or not problem.repairable:
            continue
        try:
            outcome = fix(problem)
        except (StorageError, DomainError) as exc:
            outcome = f"failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - one broken item must not stop the others
            log.exception("Repair of %s %s failed", problem.kind, problem.key)
            outcome = f"failed: {type(exc).__name__}: {exc}"
        actions.append(Action(problem.kind, problem.key, outcome))
    if any(p.kind == "pending_deletion" for p in before.problems) or any(a.done for a in actions):
        actions += _carry_out_deletions(session_factory, storage)  # last: fixes may have queued some
    with session_factory() as session:
        after = check_videos(session=session, storage=storage, grace=grace)
    return RepairReport(before=before, actions=actions, after=after)


def _carry_out_deletions(session_factory: SessionFactory, storage: Storage) -> list[Action]:
    """Every deletion waiting in the outbox, due or not (those the check found and
    those a fix above queued)."""
    with session_factory() as session:
        waiting = list(session.exec(
            select(StorageDeletion.id, StorageDeletion.storage_key).order_by(StorageDeletion.id)))
    ids = [deletion_id for deletion_id, _ in waiting]
    for start in range(0, len(ids), 200):
        outbox.process_pending_deletions(session_factory=session_factory, storage=storage,
                                         ids=ids[start:start + 200], limit=200, due_only=False)
    with session_factory() as session:
        left = {row.id: row for row in session.exec(select(StorageDeletion).where(StorageDeletion.id.in_(ids)))}
    return [
        Action("pending_deletion", key, f"failed: {left[i].last_error}" if i in left else "deleted from storage")
        for i, key in waiting
    ]


def _uploading_row(session: Session, problem: Problem) -> Video | None:
    video = session.get(Video, uuid.UUID(problem.video_id))
    return video if video is not None and video.status == VideoStatus.UPLOADING else None


def _finish_from_object(session_factory: SessionFactory, storage: Storage, problem: Problem) -> str:
    """The bytes arrived but the row was never marked ready (the database failed at
    that moment): keep the instructor's upload if the stored file looks right."""
    listed: StoredObject = problem.ref
    obj = storage.stat(problem.key, listed.file_id)
    if obj is None:
        return "skipped: the file is gone since the listing"
    head = b"".join(storage.open_range(obj.key, obj.file_id, 0, SNIFF_BYTES - 1)) if obj.size else b""
    try:
        plausible = bool(head) and bool(sniff_video_type(head))  # the upload checked the same before storing
    except DomainError:
        plausible = False
    with session_factory() as session:
        video = _uploading_row(session, problem)
        if video is None:
            return "skipped: the row changed since the check"
        if plausible:
            videos.finish_upload(session=session, video_id=video.id, stored=obj)
            return f"handed to processing ({obj.size} bytes)"
        pending = videos.fail_upload(session=session, video_id=video.id, reason=NOT_A_VIDEO_REASON, remove_row=False)
    outbox.process_pending_deletions(session_factory=session_factory, storage=storage, ids=[pending.id], due_only=False)
    return "marked failed: the stored file is not a video; deleted it"


def _complete_upload(session_factory: SessionFactory, storage: Storage, problem: Problem) -> str:
    with session_factory() as session:
        upload = session.get(UploadSession, uuid.UUID(problem.upload_id))
        owner = session.get(User, upload.owner_id) if upload is not None else None
        if upload is None or owner is None or upload.status != UploadStatus.COMPLETING:
            return "skipped: the upload changed since the check"
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=owner,
                                     upload_id=upload.id)
    return f"completed; the video is {video.status}"


def _fail_stuck(session_factory: SessionFactory, storage: Storage, problem: Problem) -> str:
    """An upload that never finished, a video's (``stuck_upload``) or a replacement's
    (``stuck_replacement``): its open session expires and the row is marked failed."""
    if problem.upload_id is None and storage.stat(problem.key, "") is not None:
        return "skipped: the file arrived since the check"
    replacing = problem.replacement_id is not None
    with session_factory() as session:
        row = (reconcile_replacements.uploading_row if replacing else _uploading_row)(session, problem)
        if row is None:
            return f"skipped: the {'replacement' if replacing else 'row'} changed since the check"
        if problem.upload_id is not None:
            upload = session.get(UploadSession, uuid.UUID(problem.upload_id))
            if upload is not None and upload.status in upload_sessions.OPEN_STATUSES:
                upload_sessions.expire_session(session=session, upload=upload, reason=STUCK_REASON)
        if row.status != VideoStatus.UPLOADING:
            pass  # expiring its session marked it failed already
        elif replacing:  # the lesson keeps its file and shows why
            replacements.fail_upload(session=session, replacement_id=row.id, reason=STUCK_REASON, remove_row=False)
        else:
            # No outbox entry: nothing is stored, and one run later could delete the
            # file of an upload that was merely slow and still finishes.
            row.status, row.error, row.updated_at = VideoStatus.FAILED, STUCK_REASON, utcnow()
            session.add(row)
    return "marked failed"


def _reap(session_factory: SessionFactory, problem: Problem) -> str:
    from course_app.jobs import processing_options

    options = processing_options()
    done = processing.reap(session_factory=session_factory, max_attempts=options["max_attempts"],
                           queue_wait=options["queue_wait"],
                           ids=[uuid.UUID(problem.replacement_id or problem.video_id)])
    return done[0][1] if done else "skipped: the row changed since the check"


def _fail_missing(session_factory: SessionFactory, storage: Storage, problem: Problem) -> str:
    with session_factory() as session:
        video = session.get(Video, uuid.UUID(problem.video_id))
        if video is None or video.status != VideoStatus.READY:
            return "skipped: the row changed since the check"
        if storage.stat(video.storage_key, video.backblaze_file_id or "") is not None:
            return "skipped: the file is there after all"
        video.status, video.error, video.updated_at = VideoStatus.FAILED, MISSING_FILE_REASON, utcnow()
        session.add(video)
    return "marked failed"


def _delete_orphan(session_factory: SessionFactory, storage: Storage, problem: Problem) -> str:
    obj: StoredObject = problem.ref
    with session_factory() as session:
        owner = thumbnail_owner(obj.key)
        live = session.exec(
            select(Video.id).where(or_(
                and_(Video.storage_key == obj.key, or_(Video.status != VideoStatus.FAILED, Video.stage.is_not(None))),
                Video.thumbnail_small_key == obj.key, Video.thumbnail_large_key == obj.key,
                and_(Video.storage_key == owner, Video.status == VideoStatus.PROCESSING),
            ))
        ).first()
        replacing = reconcile_replacements.refers_to(session, obj.key, owner)
        queued = session.exec(select(StorageDeletion.id).where(StorageDeletion.storage_key == obj.key)).first()
    if live is not None or queued is not None or replacing:
        return "skipped: a row or a queued deletion refers to it now"
    storage.delete(obj.key, obj.file_id)
    return "deleted"


def _cancel_upload(storage: Storage, problem: Problem) -> str:
    storage.abort_multipart(problem.key, problem.upload_id)
    return "cancelled"


def _remove_leftover(storage: Storage, problem: Problem) -> str:
    leftover: Leftover = problem.ref
    storage.remove_leftover(leftover)
    return "removed"
