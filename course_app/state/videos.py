"""The editor's videos: each chapter's ordered videos, and the one playing.

Kept apart from the chapter list (EditorState) so a video change does not
resend the course tree. Same optimistic pattern: change, yield, persist,
reload from the database on failure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import reflex as rx

from course_app.models import User, Video
from course_app.services import upload_sessions, uploads, videos
from course_app.state.session import (
    call_service,
    current_user,
    is_id,
    login_redirect,
    route_course_id,
    user_message,
    user_or_redirect,
)
from course_app.storage import get_storage

STATUS_LABELS = {"uploading": "Uploading…", "ready": "Ready", "failed": "Failed"}


@dataclasses.dataclass
class VideoRow:
    id: str
    chapter_id: str
    title: str
    filename: str
    status: str
    status_label: str
    size: str
    duration: str
    error: str


@dataclasses.dataclass
class PendingUpload:
    """An unfinished resumable upload from the server's ledger, shown in its
    chapter's uploader with a Resume button (the browser needs the file again)."""

    id: str
    filename: str
    size: int
    confirmed_bytes: int
    fingerprint: str


def _pending(view: upload_sessions.LedgerView) -> PendingUpload:
    upload = view.session
    return PendingUpload(
        id=str(upload.id),
        filename=upload.filename,
        size=upload.size_bytes,
        confirmed_bytes=view.confirmed_bytes,
        fingerprint=upload.fingerprint,
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = int(round(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}" if total >= 3600 else f"{total // 60}:{total % 60:02d}"


def _row(video: Video) -> VideoRow:
    return VideoRow(
        id=str(video.id),
        chapter_id=str(video.chapter_id),
        title=video.title,
        filename=video.filename,
        status=video.status,
        status_label=STATUS_LABELS.get(video.status, video.status),
        size=videos.format_size(video.size_bytes) if video.size_bytes is not None else "",
        duration=_duration(video.duration_seconds),
        error=video.error or "",
    )


class VideosState(rx.State):
    by_chapter: dict[str, list[VideoRow]] = {}
    # Unfinished resumable uploads per chapter id, from the ledger (not progress
    # ticks: those stay in the browser's uploader).
    pending_by_chapter: dict[str, list[PendingUpload]] = {}
    playing_id: str = ""
    playing_title: str = ""
    error: str = ""
    error_target: str = ""  # a chapter id or a video id

    def _course_id(self) -> str:
        return route_course_id(self)

    async def _reload(self, user: User) -> None:
        grouped = await call_service(videos.videos_by_chapter, user=user, course_id=self._course_id())
        self.by_chapter = {str(chapter_id): [_row(v) for v in rows] for chapter_id, rows in grouped.items()}
        unfinished = await call_service(upload_sessions.unfinished_for_course, user=user, course_id=self._course_id())
        pending: dict[str, list[PendingUpload]] = {}
        for view in unfinished:
            if view.session.chapter_id is not None:
                pending.setdefault(str(view.session.chapter_id), []).append(_pending(view))
        self.pending_by_chapter = pending

    @rx.event
    async def load(self):
        self.playing_id = self.playing_title = self.error = self.error_target = ""
        self.by_chapter = {}
        self.pending_by_chapter = {}
        user = await current_user(self)
        if user is None:
            return login_redirect(self.router.url.path)
        try:
            await self._reload(user)
        except Exception:
            self.by_chapter = {}  # the editor shows why the course cannot be opened
            self.pending_by_chapter = {}

    @rx.event
    async def refresh(self, payload: dict | None = None):
        """After an upload finished or failed in the browser: show the database's truth."""
        user = await current_user(self)
        if user is None:
            return login_redirect(self.router.url.path)
        try:
            await self._reload(user)
        except Exception as exc:
            self.error, self.error_target = user_message(exc), ""

    @rx.event
    def dismiss_error(self):
        self.error = self.error_target = ""

    # Plumbing -----------------------------------------------------------------

    def _find(self, video_id: object) -> tuple[str, int] | None:
        if not is_id(video_id):
            return None
        for chapter_id, rows in self.by_chapter.items():
            for index, row in enumerate(rows):
                if row.id == video_id:
                    return chapter_id, index
        return None

    async def _persist(self, user: User, target: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            result = await call_service(fn, user=user, **kwargs)
        except Exception as exc:
            message = user_message(exc)
            try:
                await self._reload(user)
            except Exception:
                pass
            self.error, self.error_target = message, target
            return None
        self.error = self.error_target = ""
        return result

    # Edits --------------------------------------------------------------------

    @rx.event
    async def rename(self, video_id: str, title: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        found = self._find(video_id)
        if found is None or not isinstance(title, str):
            self.error, self.error_target = "That video is no longer in this course.", ""
            return
        chapter_id, index = found
        if title.strip() == self.by_chapter[chapter_id][index].title:
            return
        self.by_chapter[chapter_id][index] = dataclasses.replace(self.by_chapter[chapter_id][index], title=title.strip())
        yield
        await self._persist(user, video_id, videos.rename_video, video_id=video_id, title=title)

    @rx.event
    async def move(self, video_id: str, offset: int):
        """Move up (-1) or down (+1) within the chapter."""
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        found = self._find(video_id)
        if found is None or offset not in (-1, 1) or isinstance(offset, bool):
            self.error, self.error_target = "That video cannot move there.", ""
            return
        chapter_id, index = found
        rows = list(self.by_chapter[chapter_id])
        target = index + offset
        if not 0 <= target < len(rows):
            return
        rows[index], rows[target] = rows[target], rows[index]
        self.by_chapter[chapter_id] = rows
        yield
        await self._persist(
            user, video_id, videos.reorder_videos, chapter_id=chapter_id, video_ids=[r.id for r in rows]
        )

    @rx.event
    async def move_to_chapter(self, video_id: str, chapter_id: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        found = self._find(video_id)
        if found is None or not is_id(chapter_id):
            self.error, self.error_target = "That video or chapter is no longer in this course.", ""
            return
        source_id, index = found
        if source_id == chapter_id:
            return
        row = self.by_chapter[source_id][index]
        self.by_chapter[source_id] = [r for r in self.by_chapter[source_id] if r.id != video_id]
        self.by_chapter[chapter_id] = [*self.by_chapter.get(chapter_id, []), dataclasses.replace(row, chapter_id=chapter_id)]
        yield
        await self._persist(user, video_id, videos.move_video, video_id=video_id, chapter_id=chapter_id)

    @rx.event
    async def delete(self, video_id: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        found = self._find(video_id)
        if found is None:
            self.error, self.error_target = "That video is no longer in this course.", ""
            return
        chapter_id, _ = found
        self.by_chapter[chapter_id] = [r for r in self.by_chapter[chapter_id] if r.id != video_id]
        if self.playing_id == video_id:
            self.playing_id = self.playing_title = ""
        yield
        pending = await self._persist(user, chapter_id, videos.delete_video, video_id=video_id)
        if pending is not None:
            # The row is gone and the deletion recorded; storage is told now, and
            # the outbox retries later if storage is down.
            await uploads.run_pending_deletions(get_storage(), ids=[pending.id])

    @rx.event
    async def play(self, video_id: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        found = self._find(video_id)
        if found is None:
            return
        chapter_id, index = found
        row = self.by_chapter[chapter_id][index]
        if row.status == "ready":
            self.playing_id, self.playing_title = row.id, row.title

    @rx.event
    def stop_playing(self):
        self.playing_id = self.playing_title = ""
