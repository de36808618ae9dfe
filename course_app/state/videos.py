"""The videos of the open chapters, the uploads' results, and the player.

Only open chapters (or, while a filter is on, the matching videos) are mirrored
here; the outline keeps each chapter's counts. Every edit is optimistic: the rows
move at once, a service saves, and a refusal reloads the editor from the database
with a message next to the row.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, ClassVar

import reflex as rx

from course_app.models import User
from course_app.services import outbox, playback, processing, replacements, undo, upload_sessions, video_layout, videos
from course_app.settings import get_settings
from course_app.storage import get_storage
from course_app.state.editor_store import (BUCKETS, STAGE_LABELS, PendingUpload, VideoRow, Views, bucket_of, pending_row,
                                           persist, view_fields)
from course_app.state.notice import show_error
from course_app.state.session import call_service, is_id, requires_user, user_message
from course_app.state.undo import offer_undo

MAX_BATCH = 1000
GONE = "That video is no longer in this course."


def video_ids(value: object) -> list[str] | None:
    """A list of distinct ids from a handler argument, or None."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_BATCH or not all(is_id(v) for v in value):
        return None
    return list(dict.fromkeys(value))


class VideosState(Views, rx.State):
    # chapter id -> its videos in order: the open chapters only (or the filter's
    # matches). Backend only: what the handlers change. The browser gets them spread
    # over BUCKETS vars (videos_0, videos_1, ...: plain vars kept up to date by
    # ``Views``), each open chapter in a bucket of its own while at most BUCKETS are
    # open (``slots``), and only the buckets that changed: renaming or moving a video
    # resends the rows of its chapter (or two), not of every open chapter.
    _by_chapter: dict[str, list[VideoRow]] = {}
    _views_of: ClassVar[str] = "_by_chapter"
    vars().update(view_fields([f"videos_{b}" for b in range(BUCKETS)], dict[str, list[VideoRow]], dict))
    slots: dict[str, int] = {}  # open chapter id -> the bucket that carries its videos

    def _views(self) -> dict[str, Any]:
        # An open chapter keeps its bucket; a newly opened one takes a free bucket (past
        # BUCKETS open chapters, buckets are shared, by a hash of the id).
        slots = {c: b for c, b in self.slots.items() if c in self._by_chapter}
        free = iter(sorted(set(range(BUCKETS)) - set(slots.values())))
        for chapter_id in self._by_chapter:
            if chapter_id not in slots:
                slots[chapter_id] = next(free, None) if len(self._by_chapter) <= BUCKETS else bucket_of(chapter_id)
        buckets: list[dict[str, list[VideoRow]]] = [{} for _ in range(BUCKETS)]
        for chapter_id, rows in self._by_chapter.items():
            buckets[slots[chapter_id]][chapter_id] = list(rows)  # a copy: handlers change rows in place
        return {"slots": slots, **{f"videos_{b}": bucket for b, bucket in enumerate(buckets)}}

    # The ledger's unfinished uploads of the course (for the uploads panel's Resume).
    pending: list[PendingUpload] = []

    # Plumbing (backend only) ---------------------------------------------------------------

    def _find(self, video_id: object) -> tuple[str, int] | None:
        if not is_id(video_id):
            return None
        for chapter_id, rows in self._by_chapter.items():
            for index, row in enumerate(rows):
                if row.id == video_id:
                    return chapter_id, index
        return None

    def _row(self, video_id: str) -> VideoRow | None:
        found = self._find(video_id)
        return self._by_chapter[found[0]][found[1]] if found else None

    def _without(self, ids: set[str]) -> tuple[dict[str, list[VideoRow]], dict[str, tuple[list, list]]]:
        """The shown rows without ``ids``, and per chapter the rows taken out (as
        (added, removed) for the outline's counts)."""
        shown = dict(self._by_chapter)
        counts: dict[str, tuple[list[VideoRow], list[VideoRow]]] = {}
        for chapter_id, rows in shown.items():
            left = [r for r in rows if r.id not in ids]
            if len(left) != len(rows):
                shown[chapter_id] = left
                counts[chapter_id] = ([], [r for r in rows if r.id in ids])
        return shown, counts

    async def _outline(self):
        from course_app.state.outline import OutlineState

        return await self.get_state(OutlineState)

    async def _course_id(self) -> str:
        from course_app.state.course import CourseState

        return (await self.get_state(CourseState)).course_id

    async def _refresh(self, user: User, chapter_ids: list[str]) -> None:
        """The database's truth for these chapters (if shown), the counts and the ledger."""
        course_id = await self._course_id()
        chapters = await self._outline()
        shown = [c for c in chapter_ids if c in self._by_chapter]
        if shown and not await chapters._load_videos(user, course_id, shown):
            return
        try:
            unfinished = await call_service(upload_sessions.unfinished_for_course, user=user, course_id=course_id)
        except Exception as exc:
            await show_error(self, user_message(exc), "videos")
            return
        pending = [pending_row(v) for v in unfinished if v.session.chapter_id is not None]
        if pending != self.pending:
            self.pending = pending
        await chapters._confirm_counts(user, course_id)

    # Edits -----------------------------------------------------------------------------------

    @rx.event
    @requires_user
    async def rename(self, user: User, video_id: str, title: str):
        found = self._find(video_id)
        if found is None or not isinstance(title, str):
            await show_error(self, GONE, "videos")
            return
        chapter_id, index = found
        rows = self._by_chapter[chapter_id]
        old = rows[index].title
        if title.strip() == old:
            return
        rows[index] = dataclasses.replace(rows[index], title=title.strip())
        yield
        saved, _ = await persist(self, user, video_id, videos.rename_video, video_id=video_id, title=title)
        if saved:
            await offer_undo(self, "Video renamed", "rename_video", video_id, video_id=video_id, title=old)

    @rx.event
    @requires_user
    async def move(self, user: User, video_id: str, offset: int):
        """Keyboard: move up (-1) or down (+1) within the chapter."""
        found = self._find(video_id)
        if found is None or offset not in (-1, 1) or isinstance(offset, bool):
            await show_error(self, "That video cannot move there.", "videos")
            return
        chapter_id, index = found
        rows = self._by_chapter[chapter_id]
        target = index + offset
        if not 0 <= target < len(rows):
            return
        # Up: before the row above. Down: before the row after the next one (or last).
        before = rows[target].id if offset == -1 else (rows[target + 1].id if target + 1 < len(rows) else None)
        async for update in self._move(user, [video_id], chapter_id, before, target=video_id):
            yield update

    @rx.event
    @requires_user
    async def move_videos(self, user: User, payload: dict):
        """Drag and drop: {video_ids, chapter_id, before_id} (before_id null: at the end)."""
        payload = payload if isinstance(payload, dict) else {}
        ids, chapter_id, before = video_ids(payload.get("video_ids")), payload.get("chapter_id"), payload.get("before_id")
        if ids is None or not is_id(chapter_id) or not (before is None or is_id(before)):
            await show_error(self, "Those videos cannot move there.", "videos")
            return
        async for update in self._move(user, ids, chapter_id, before, target=ids[0]):
            yield update

    async def _move(self, user: User, ids: list[str], chapter_id: str, before: str | None, *, target: str):
        """Move videos into a chapter before ``before`` (or last): at once on the page,
        then in the database in one transaction."""
        chapters = await self._outline()
        if chapters._index(chapter_id) is None:
            await show_error(self, "That chapter is no longer in this course.", target)
            return
        if before in ids:
            return  # dropped onto itself
        moving = {i: row for i in ids if (row := self._row(i)) is not None}
        shown, counts = self._without(set(moving))
        arriving = [dataclasses.replace(moving[i], chapter_id=chapter_id) for i in ids if i in moving]
        counts[chapter_id] = (arriving, counts.get(chapter_id, ([], []))[1])
        if chapter_id in shown:
            rows = shown[chapter_id]
            at = next((n for n, r in enumerate(rows) if r.id == before), len(rows))
            shown[chapter_id] = rows[:at] + arriving + rows[at:]
        self._by_chapter = shown
        chapters._recount(counts)
        yield
        saved, layout = await persist(self, user, target, video_layout.move_recording_layout, video_ids=ids,
                                      chapter_id=chapter_id, before_id=before)
        if saved:
            from course_app.state.selection import SelectionState

            (await self.get_state(SelectionState))._forget(video_ids=set(ids))
            course_id = await self._course_id()
            await chapters._confirm_counts(user, course_id)
            label = "Video moved" if len(ids) == 1 else f"{len(ids)} videos moved"
            await offer_undo(self, label, "restore_layout", target, course_id=course_id, layout=layout)

    async def _delete(self, user: User, ids: list[str]):
        """Move videos to the course trash (after the confirmation): rows at once, then
        the database (files kept; uploads still open are cancelled through the outbox)."""
        from course_app.state.selection import SelectionState

        chapters = await self._outline()
        gone = set(ids)
        self._by_chapter, counts = self._without(gone)
        chapters._recount(counts)
        player = await self.get_state(PlayerState)
        if player.playing_id in gone:
            player.playing_id = player.playing_title = ""
        (await self.get_state(SelectionState))._forget(video_ids=gone)
        yield
        target = ids[0] if len(ids) == 1 else "videos"
        saved, result = await persist(self, user, target, undo.trash_videos_recording_layout, video_ids=ids)
        if saved:
            pending, layout = result
            course_id = await self._course_id()
            await chapters._confirm_counts(user, course_id)
            if pending:
                await outbox.carry_out(pending)
            label = "Video moved to trash" if len(ids) == 1 else f"{len(ids)} videos moved to trash"
            await offer_undo(self, label, "untrash", target, course_id=course_id, video_ids=ids, layout=layout)

    @rx.event
    @requires_user
    async def retry_processing(self, user: User, video_id: str):
        """Run a video's failed processing stage again: shown as processing at once."""
        found = self._find(video_id)
        if found is None:
            await show_error(self, GONE, "videos")
            return
        chapter_id, index = found
        row = self._by_chapter[chapter_id][index]
        if not row.can_retry:
            return
        self._by_chapter[chapter_id][index] = dataclasses.replace(
            row, status="processing", status_label=STAGE_LABELS.get(row.stage, "Processing…"), error="", can_retry=False)
        yield
        wait = timedelta(seconds=get_settings().processing_queue_wait_seconds)
        if (await persist(self, user, video_id, processing.retry, video_id=video_id, queue_wait=wait))[0]:
            await (await self._outline())._confirm_counts(user, await self._course_id())

    # A replacement of a video's file (services/replacements.py) -----------------------------------

    @rx.event
    @requires_user
    async def retry_replacement(self, user: User, video_id: str):
        """Run a failed replacement's processing again: shown as on its way at once."""
        row = self._row(video_id) if is_id(video_id) else None
        if row is None or not row.replacement_can_retry:
            return
        chapter_id, index = self._find(video_id)
        self._by_chapter[chapter_id][index] = dataclasses.replace(
            row, replacement="Replacing: trying again…", replacement_failed=False, replacement_can_retry=False)
        yield
        await persist(self, user, video_id, replacements.retry, video_id=video_id)

    @rx.event
    @requires_user
    async def dismiss_replacement(self, user: User, video_id: str):
        """Drop a failed replacement: the video keeps its file; the new one is deleted."""
        row = self._row(video_id) if is_id(video_id) else None
        if row is None or not row.replacement_failed:
            return
        chapter_id, index = self._find(video_id)
        self._by_chapter[chapter_id][index] = dataclasses.replace(
            row, replacement="", replacement_failed=False, replacement_can_retry=False)
        yield
        saved, pending = await persist(self, user, video_id, replacements.dismiss, video_id=video_id)
        if saved:
            await outbox.carry_out(ids=pending)

    # Results of uploads (from the uploads panel) ---------------------------------------------------

    @rx.event
    @requires_user
    async def upload_changed(self, user: User, payload: dict):
        """An upload finished, failed, started or was cancelled: show the database's truth."""
        chapter_id = payload.get("chapter_id") if isinstance(payload, dict) else None
        await self._refresh(user, [chapter_id] if is_id(chapter_id) else list(self._by_chapter))

    @rx.event
    @requires_user
    async def upload_retried(self, user: User, payload: dict):
        """After "Retry failed uploads" on the selection: say what could not be retried."""
        payload = payload if isinstance(payload, dict) else {}
        retried, missing = payload.get("retried"), payload.get("missing")
        if not isinstance(retried, int) or not isinstance(missing, list):
            return
        if missing:
            await show_error(self, f"{len(missing)} of the selected uploads cannot be retried from this tab: their files "
                                   "are not here any more. Choose the files again with Upload.", "videos")
        elif retried == 0:
            await show_error(self, "None of the selected videos has a failed upload to retry.", "videos")


class PlayerState(rx.State):
    """The video playing in the editor (apart: opening the player re-renders nothing else)."""

    playing_id: str = ""
    playing_title: str = ""
    playing_src: str = ""  # a short-lived signed link (services/playback.py)
    playing_poster: str = ""

    @rx.event
    @requires_user
    async def play(self, user: User, video_id: str):
        row = (await self.get_state(VideosState))._row(video_id)
        if row is None:
            await show_error(self, GONE, "videos")
            return
        if row.status != "ready":
            return
        try:
            links = await call_service(playback.playback_links, user=user, storage=get_storage(), video_id=row.id)
        except Exception as exc:
            await show_error(self, user_message(exc), row.id)
            return
        self.playing_id, self.playing_title = row.id, row.title
        self.playing_src, self.playing_poster = links.url, links.poster_url

    @rx.event
    def stop_playing(self):
        self.playing_id = self.playing_title = self.playing_src = self.playing_poster = ""
