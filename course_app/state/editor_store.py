"""What the course editor's States mirror, and the two moves every handler shares.

The editor is split into States by how often each part changes (figures in
NOTES.md): the course's details (``CourseState``), the chapter outline
(``OutlineState``), the videos of the open chapters (``VideosState``), the
selection, the dialogs, the player and the one error message each live apart, so
a change to one neither resends nor re-renders the others.

- ``load_editor``: fill them all from the database in one service call (a constant
  number of queries at any course size);
- ``persist``: save a change already shown (optimistic) through a service; on
  failure reload everything from the database, the single source of truth, and
  show why next to what the user touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import reflex as rx
from reflex.state import _override_base_method
from reflex_base.vars import Field
from sqlmodel import Session

from course_app.errors import Forbidden, NotFound

from course_app.models import User, Video, VideoReplacement
from course_app.db import session_scope
from course_app.services import ordering, outline, replacements, upload_sessions
from course_app.services.outline import ChapterSummary
from course_app.services.videos import format_size, thumbnail_urls
from course_app.state.notice import clear_error, show_error
from course_app.state.session import call_service, user_message

STATUS_LABELS = {"uploading": "Uploading…", "processing": "Processing…", "ready": "Ready", "failed": "Failed"}
STAGE_LABELS = {"verifying": "Verifying…", "probing": "Reading the video…", "thumbnail": "Making the thumbnail…"}
NO_ACCESS = "This course does not exist or you do not have access to it."


BUCKETS = 16  # the open chapters' videos reach the browser in this many vars (VideosState)


def bucket_of(chapter_id: str) -> int:
    return zlib.crc32(chapter_id.encode()) % BUCKETS


@dataclasses.dataclass
class ChapterRow:
    id: str
    title: str
    count: int = 0
    size_bytes: int = 0
    uploading: int = 0
    failed: int = 0
    processing: int = 0
    seconds: float = 0.0  # total duration of its processed videos
    size: str = ""  # "1.2 GiB"
    duration: str = ""  # "1:02:03"
    summary: str = ""  # "2 uploading, 1 processing, 1 failed"
    saving: bool = False  # shown before the database has given the row its id


@dataclasses.dataclass
class VideoRow:
    id: str
    chapter_id: str
    title: str
    filename: str
    status: str
    status_label: str
    size_bytes: int
    size: str
    duration: str
    error: str
    stage: str = ""  # while processing, or where it failed
    thumbnail: str = ""  # the small thumbnail's URL, once ready
    resolution: str = ""  # "1280×720"
    can_retry: bool = False  # processing failed and a retry can help
    seconds: float = 0.0  # the duration, for the chapter's total
    # A new file on its way to replace this one's (services/replacements.py): what the
    # row says of it, whether it failed (Dismiss), and whether Retry can help.
    replacement: str = ""
    replacement_failed: bool = False
    replacement_can_retry: bool = False


@dataclasses.dataclass
class PendingUpload:
    """An unfinished resumable upload from the server's ledger, listed in the uploads
    panel with a Resume button (the browser needs the file again)."""

    id: str
    chapter_id: str
    filename: str
    size: int
    confirmed_bytes: int
    fingerprint: str
    replaces_video_id: str = ""  # a replacement's upload: the video whose file it replaces


# Views: what the browser gets of a backend var ------------------------------------------------


def view_fields(names: Iterable[str], annotated_type: Any, default_factory: Callable[[], Any]) -> dict[str, Field]:
    """Plain State vars, one per name, for ``vars().update(...)`` in a State's body."""
    return {name: Field(default_factory=default_factory, annotated_type=annotated_type) for name in names}


class Views:
    """A State whose browser-facing vars are views of one backend var (the outline's
    pages of chapter rows, the open chapters' videos by bucket).

    The backend var is the one the handlers change, in place or not; the views are
    plain vars, brought up to date when Reflex builds the delta (``get_delta``, which
    it calls on each dirty State) and only those whose value changed, so a rename
    sends one page whatever the course's size. Plain vars, not uncached computed vars:
    Reflex recomputes those on every event of every page, and fetches their States
    from the state manager to do it (with them, a chapter rename cost the server
    about twice the CPU: benchmarks/event_cost.py). ``_views()`` returns {var name:
    value} for the current backend var."""

    _views_of: ClassVar[str] = ""  # the backend var's name

    def _views(self) -> dict[str, Any]:
        raise NotImplementedError

    def _update_views(self) -> None:
        for name, value in self._views().items():
            if getattr(self, name) != value:
                setattr(self, name, value)

    @_override_base_method  # Reflex calls get_delta on each dirty State to build a delta
    def get_delta(self):
        if self._views_of in self.dirty_vars:
            self._update_views()
        return super().get_delta()


# Rows -----------------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    if not seconds:
        return ""
    total = int(round(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}" if total >= 3600 else f"{total // 60}:{total % 60:02d}"


def video_row(video: Video, replacement: VideoReplacement | None = None) -> VideoRow:
    failed = replacement is not None and replacement.status == "failed"
    return VideoRow(
        replacement=replacements.describe(replacement),
        replacement_failed=failed,
        replacement_can_retry=failed and replacement.stage is not None and replacement.retryable is not False,
        id=str(video.id),
        chapter_id=str(video.chapter_id),
        title=video.title,
        filename=video.filename,
        status=video.status,
        status_label=STAGE_LABELS.get(video.stage or "", "Processing…") if video.status == "processing"
        else STATUS_LABELS.get(video.status, video.status),
        size_bytes=video.size_bytes or 0,
        size=format_size(video.size_bytes) if video.size_bytes is not None else "",
        duration=duration_text(video.duration_seconds),
        error=video.error or "",
        stage=video.stage or "",
        thumbnail=thumbnail_urls(video).get("small", "") if video.status == "ready" else "",
        resolution=f"{video.width}×{video.height}" if video.width and video.height else "",
        can_retry=video.status == "failed" and video.stage is not None and video.retryable is not False,
        seconds=video.duration_seconds or 0.0,
    )


def summarized(row: ChapterRow) -> ChapterRow:
    """The row with its size and status texts computed from its counts."""
    parts = [f"{n} {what}" for n, what in
             ((row.uploading, "uploading"), (row.processing, "processing"), (row.failed, "failed")) if n]
    return dataclasses.replace(row, size=format_size(row.size_bytes) if row.count else "", summary=", ".join(parts),
                               duration=duration_text(row.seconds))


def chapter_row(summary: ChapterSummary) -> ChapterRow:
    counts = summary.status_counts
    return summarized(ChapterRow(
        id=str(summary.chapter.id), title=summary.chapter.title, count=summary.video_count,
        size_bytes=summary.total_bytes, uploading=counts.get("uploading", 0), failed=counts.get("failed", 0),
        processing=counts.get("processing", 0), seconds=round(summary.total_seconds, 1),
    ))


def recounted(row: ChapterRow, added: Iterable[VideoRow] = (), removed: Iterable[VideoRow] = ()) -> ChapterRow:
    """The chapter's counts after videos came in or went out (the optimistic view)."""
    count, size, uploading, failed, processing = row.count, row.size_bytes, row.uploading, row.failed, row.processing
    seconds = row.seconds
    for sign, videos in ((1, added), (-1, removed)):
        for video in videos:
            count += sign
            size += sign * video.size_bytes
            uploading += sign * (video.status == "uploading")
            failed += sign * (video.status == "failed")
            processing += sign * (video.status == "processing")
            seconds += sign * video.seconds
    return summarized(dataclasses.replace(row, count=count, size_bytes=size, uploading=uploading, failed=failed,
                                          processing=processing, seconds=round(max(0.0, seconds), 1)))


def _rows_of(session: Session, grouped: dict[Any, list[Video]]) -> dict[str, list[VideoRow]]:
    pending = replacements.of_videos(session=session, video_ids=[v.id for vs in grouped.values() for v in vs])
    return {str(chapter_id): [video_row(v, pending.get(v.id)) for v in videos] for chapter_id, videos in grouped.items()}


async def grouped_rows(grouped: dict[Any, list[Video]]) -> dict[str, list[VideoRow]]:
    """The rows of these videos, with their pending replacements (one query)."""
    return await call_service(_rows_of, grouped=grouped)


def pending_row(view: upload_sessions.LedgerView) -> PendingUpload:
    upload = view.session
    return PendingUpload(
        id=str(upload.id), chapter_id=str(upload.chapter_id or ""), filename=upload.filename,
        size=upload.size_bytes, confirmed_bytes=view.confirmed_bytes, fingerprint=upload.fingerprint,
        replaces_video_id=str(upload.replaces_video_id or ""),
    )


# Loading ----------------------------------------------------------------------------------


async def load_editor(state: rx.State, user: User, *, first_visit: bool = False) -> bool:
    """Mirror the course in the URL into every editor State; False (and the reason
    shown in place of the editor) when it cannot be opened. On a ``first_visit`` of
    this browser to the course, small courses open whole, large ones at chapter 1."""
    from course_app.state.course import CourseState
    from course_app.state.outline import OutlineState
    from course_app.state.videos import VideosState

    course = await state.get_state(CourseState)
    chapters = await state.get_state(OutlineState)
    videos = await state.get_state(VideosState)
    try:
        snapshot = await call_service(
            outline.editor_outline, user=user, course_id=course.course_id, open_chapter_ids=chapters._open_list()
        )
        chapters._apply([chapter_row(s) for s in snapshot.chapters])  # the first visit's default needs the counts
        if first_visit:
            snapshot = dataclasses.replace(snapshot, videos=await call_service(
                outline.videos_of_chapters, user=user, course_id=course.course_id,
                chapter_ids=chapters._open_by_default()))
            chapters._remember(course.course_id)
        pending = await call_service(upload_sessions.unfinished_for_course, user=user, course_id=course.course_id)
    except Exception as exc:  # the course vanished, is someone else's, or the database is down
        course._clear()
        chapters._chapters, videos._by_chapter, videos.pending = [], {}, []
        course.load_error = NO_ACCESS if isinstance(exc, (NotFound, Forbidden)) or getattr(
            exc, "status_code", 0) == 400 else user_message(exc)
        return False
    course._apply(snapshot.course)  # its revision and pulse were read first: the view is at least that new
    if chapters.filtering:
        await chapters._run_filter(user)
    else:
        shown = await grouped_rows(snapshot.videos)
        if shown != videos._by_chapter:
            videos._by_chapter = shown
    unfinished = [pending_row(view) for view in pending if view.session.chapter_id is not None]
    if unfinished != videos.pending:
        videos.pending = unfinished
    if course.load_error:
        course.load_error = ""
    return True


# {tab's client token: (course id, pulse)}: the pulse this process's last save from
# that tab produced, when nothing else happened meanwhile. The tab's live-sync task
# (state/live.py) runs in this process and skips a wake-up for it without loading
# anything. An entry is dropped when the task ends.
OWN_PULSES: dict[str, tuple[str, int]] = {}


def _edit(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[Any, int | None, int | None]:
    with session_scope() as session:
        result = fn(session=session, **kwargs)
        revision, pulse = session.info.get(ordering.REVISION), session.info.get(ordering.PULSE)
    return result, revision, pulse


async def persist(state: rx.State, user: User, target: str, fn: Callable[..., Any], **kwargs: Any) -> tuple[bool, Any]:
    """Save through a service what the page already shows, checked against the
    revision the view was built from (an edit made on a view that another window
    has since changed is refused, never applied over what its author did not see);
    on failure reload from the database and say why at ``target``. Returns (saved,
    the service's result)."""
    from course_app.state.course import CourseState

    course = await state.get_state(CourseState)
    try:
        result, revision, pulse = await asyncio.to_thread(_edit, fn, {"user": user, "revision": course._revision, **kwargs})
    except Exception as exc:
        message = user_message(exc)
        await load_editor(state, user)
        await show_error(state, message, target)
        return False, None
    course._revision = revision
    if pulse == course._pulse + 1:  # nothing else happened meanwhile: the view is current
        course._pulse = pulse
        OWN_PULSES[state.router.session.client_token] = (course.course_id, pulse)
    await clear_error(state)
    return True, result
