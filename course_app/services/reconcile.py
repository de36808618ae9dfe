"""Compare the database with storage: every stored file has its row and every
row its file. Listing-based (one paged listing, one query), so it scales."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from sqlmodel import Session, select

from course_app.models import StorageDeletion, Video, utcnow
from course_app.storage.base import Storage

VIDEO_PREFIX = "videos/"
STUCK_AFTER = timedelta(hours=1)


@dataclasses.dataclass
class Problem:
    kind: str  # missing_file | size_mismatch | sha1_mismatch | orphan_file | pending_deletion | stuck_upload
    key: str
    detail: str
    video_id: str | None = None


@dataclasses.dataclass
class Report:
    rows_checked: int = 0
    objects_checked: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "objects_checked": self.objects_checked,
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def check_videos(*, session: Session, storage: Storage) -> Report:
    report = Report()
    stored = {}
    for obj in storage.list(VIDEO_PREFIX):
        stored[obj.key] = obj
    report.objects_checked = len(stored)
    referenced: set[str] = set()
    now = utcnow()
    for video in session.exec(select(Video)):
        report.rows_checked += 1
        referenced.add(video.storage_key)
        obj = stored.get(video.storage_key)
        vid = str(video.id)
        if video.status == "ready":
            if obj is None:
                report.problems.append(Problem("missing_file", video.storage_key, "the row is ready but storage has no file", vid))
            elif obj.size != video.size_bytes:
                report.problems.append(Problem(
                    "size_mismatch", video.storage_key, f"row says {video.size_bytes} bytes, storage has {obj.size}", vid))
            elif video.sha1 and obj.sha1 and obj.sha1 != video.sha1:
                report.problems.append(Problem("sha1_mismatch", video.storage_key, "stored SHA1 differs from the row's", vid))
        elif video.status == "uploading" and now - _aware(video.created_at) > STUCK_AFTER:
            report.problems.append(Problem(
                "stuck_upload", video.storage_key, f"uploading since {video.created_at:%Y-%m-%d %H:%M} UTC", vid))
    pending = list(session.exec(select(StorageDeletion)))
    pending_keys = {p.storage_key for p in pending}
    for p in pending:
        detail = f"{p.reason}; {p.attempts} attempt(s)" + (f"; last error: {p.last_error}" if p.last_error else "")
        report.problems.append(Problem("pending_deletion", p.storage_key, detail))
    for key, obj in stored.items():
        if key not in referenced and key not in pending_keys:
            report.problems.append(Problem("orphan_file", key, f"{obj.size} bytes stored with no video row"))
    return report


def format_report(report: Report) -> str:
    lines = [f"Checked {report.rows_checked} video rows and {report.objects_checked} stored files."]
    if report.ok:
        lines.append("Database and storage agree.")
        return "\n".join(lines)
    width = max(len(p.kind) for p in report.problems)
    lines.append(f"{len(report.problems)} problem(s):")
    lines.append(f"{'KIND'.ljust(width)}  {'KEY':<52}  DETAIL")
    for p in report.problems:
        lines.append(f"{p.kind.ljust(width)}  {p.key:<52}  {p.detail}")
    return "\n".join(lines)
