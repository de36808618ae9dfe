"""What the checker (reconcile.py) finds: the kinds of problem and what ``repair``
does about each, the reports it returns, and the one judgement its video and
replacement checks (reconcile_replacements.py) share: when an ``uploading`` row
is stuck rather than in flight."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from course_app.models import UploadSession, UploadStatus
from course_app.storage.base import StoredObject

# kind -> what it means; the order is the order of the report.
KINDS = {
    "missing_file": "ready video whose stored file is missing",
    "trashed_missing_file": "video in the trash whose stored file is missing (it must stay until purged)",
    "size_mismatch": "ready video whose stored size differs from the row's",
    "sha1_mismatch": "ready video whose stored SHA1 differs from the row's",
    "stuck_processing": "video whose processing lease ran out (worker gone or job lost)",
    "unrecorded_upload": "file stored, but its row was never marked ready",
    "interrupted_completion": "resumable upload whose completion was interrupted",
    "stuck_upload": "upload that never finished and is no longer in progress",
    "stuck_replacement": "replacement file whose upload never finished and is no longer in progress",
    "unrecorded_replacement": "replacement file stored, but never handed to processing",
    "orphan_file": "stored file that no video row references",
    "unknown_upload": "unfinished multipart upload that no open upload session knows",
    "leftover_file": "trace of an interrupted write (temp file, sidecar without its file)",
    "pending_deletion": "storage deletion not yet carried out",
}
# kind -> what ``repair`` does about it (kinds not here are left to a person).
REPAIRS = {
    "missing_file": "mark the video failed",
    "trashed_missing_file": "mark the video failed",
    "stuck_processing": "queue it again, or fail it after the last attempt",
    "unrecorded_upload": "hand the stored file to processing",
    "interrupted_completion": "complete the upload",
    "stuck_upload": "mark the video failed",
    "stuck_replacement": "mark the replacement failed (the lesson keeps its file and shows why)",
    "unrecorded_replacement": "hand the stored file to processing",
    "orphan_file": "delete the file",
    "unknown_upload": "cancel the upload",
    "leftover_file": "remove it",
    "pending_deletion": "carry out the deletion",
}


@dataclasses.dataclass
class Problem:
    kind: str
    key: str
    detail: str
    video_id: str | None = None
    # The multipart upload id (unknown_upload) or the upload session id.
    upload_id: str | None = None
    # A pending replacement of ``video_id``'s file, when the problem is the replacement's.
    replacement_id: str | None = None
    # False when ``repair`` leaves it alone for now (younger than the grace period).
    repairable: bool = True
    # What the repair needs (a StoredObject, Leftover or outbox id); not reported.
    ref: object = dataclasses.field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind, "key": self.key, "detail": self.detail, "video_id": self.video_id,
            "upload_id": self.upload_id, "replacement_id": self.replacement_id, "repairable": self.repairable,
            "repair": REPAIRS.get(self.kind) if self.repairable else None,
        }


@dataclasses.dataclass
class Report:
    rows_checked: int = 0
    replacements_checked: int = 0  # pending replacements of a video's file
    trashed_rows: int = 0  # of rows_checked, in a course trash (their files are kept until purged)
    objects_checked: int = 0
    unfinished_checked: int = 0
    in_flight: int = 0  # uploads and writes younger than the grace period, left alone
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        return counts

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "replacements_checked": self.replacements_checked,
            "trashed_rows": self.trashed_rows,
            "objects_checked": self.objects_checked,
            "unfinished_checked": self.unfinished_checked,
            "in_flight": self.in_flight,
            "counts": self.counts(),
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclasses.dataclass
class Action:
    kind: str
    key: str
    outcome: str  # what was done, or "failed: ..." / "skipped: ..."

    @property
    def done(self) -> bool:
        return not self.outcome.startswith(("failed", "skipped"))


@dataclasses.dataclass
class RepairReport:
    before: Report
    actions: list[Action]
    after: Report

    @property
    def ok(self) -> bool:
        return self.after.ok

    def as_dict(self) -> dict:
        return {
            **self.after.as_dict(),
            "found": self.before.as_dict(),
            "repairs": [dataclasses.asdict(a) for a in self.actions],
        }


def older(moment: datetime | None, now: datetime, grace: timedelta) -> bool:
    """True when ``moment`` is at least ``grace`` ago (an unknown age never is)."""
    return moment is not None and now - moment >= grace


def judge_upload(vid: str, key: str, created_at: datetime, obj: StoredObject | None,
                  upload: UploadSession | None, now: datetime, grace: timedelta) -> Problem | None:
    """The problem with an ``uploading`` row, or None while it may still be in flight."""
    if upload is not None:
        sid = str(upload.id)
        if upload.status == UploadStatus.COMPLETING:
            if not older(upload.updated_at, now, grace):
                return None
            return Problem("interrupted_completion", key, "all parts were received; completing stopped part-way",
                           vid, upload_id=sid)
        if upload.storage_upload_id:
            return None  # resumable and resumed by the client; the sweep expires it when abandoned
        if not older(upload.updated_at, now, grace):
            return None
        return Problem("stuck_upload", key, "the resumable upload never started in storage", vid, upload_id=sid)
    if obj is not None:
        if not older(obj.uploaded_at, now, grace):
            return None  # stored a moment ago; the upload is about to mark it ready
        return Problem("unrecorded_upload", key, f"{obj.size} bytes stored; the row still says uploading", vid,
                       ref=obj)
    if not older(created_at, now, grace):
        return None
    return Problem("stuck_upload", key, f"uploading since {created_at:%Y-%m-%d %H:%M} UTC, nothing stored",
                   vid)
