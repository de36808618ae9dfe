"""The course outline: ordered chapters with their counts, which are open, the filter.

A collapsed chapter costs one row (title, count, size, status summary); only open
chapters have their videos loaded (``VideosState``). Which chapters are open is a
view preference of this browser (kept in its local storage, per course), not data.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import reflex as rx

from course_app.models import User
from course_app.services import courses, outbox, outline, trash
from course_app.state.editor_store import (ChapterRow, VideoRow, Views, chapter_row, duration_text, grouped_rows, persist,
                                           recounted, view_fields)
from course_app.state.notice import show_error
from course_app.state.session import call_service, is_id, requires_user, user_message
from course_app.state.undo import offer_undo

FILTER_STATUSES = ("failed", "uploading")
REMEMBERED_COURSES = 20  # courses whose open chapters this browser remembers
FILTER_MAX = 200
OPEN_ALL_UP_TO = 100  # videos in a course shown all open on a first visit
PAGE = 8  # chapter rows per page var (see OutlineState)
PAGES = -(-courses.MAX_CHAPTERS // PAGE)


class OutlineState(Views, rx.State):
    # The chapters, in order (backend only): what the handlers change. The browser
    # gets them as pages of PAGE rows (page_0, page_1, ...: plain vars kept up to
    # date by ``Views``), and only the pages that changed: renaming or moving a
    # chapter, or a count changing, sends one or two pages whatever the course's size.
    _chapters: list[ChapterRow] = []
    _views_of: ClassVar[str] = "_chapters"
    vars().update(view_fields([f"page_{k}" for k in range(PAGES)], list[ChapterRow], list))
    chapter_count: int = 0
    total_duration: str = ""  # the course's duration: its processed videos' durations added up

    def _views(self) -> dict[str, Any]:
        rows = self._chapters
        return {
            **{f"page_{k}": rows[k * PAGE:(k + 1) * PAGE] for k in range(PAGES)},
            "chapter_count": len(rows),
            "total_duration": duration_text(sum(row.seconds for row in rows)),
        }

    open_ids: dict[str, bool] = {}
    # While a filter is on, the outline shows only chapters with matching videos, open.
    filter_text: str = ""
    filter_statuses: list[str] = []
    filtering: bool = False
    hits: dict[str, bool] = {}
    # {course id: [open chapter ids]}: survives a reload of the page.
    remembered: str = rx.LocalStorage("{}", name="course_studio_open_chapters")

    # Plumbing (backend only) -------------------------------------------------------------

    def _apply(self, rows: list[ChapterRow]) -> None:
        if rows != self._chapters:  # a reload that finds nothing new resends nothing
            self._chapters = rows
        known = {row.id for row in rows}
        if any(chapter_id not in known for chapter_id in self.open_ids):
            self.open_ids = {chapter_id: True for chapter_id in self.open_ids if chapter_id in known}

    def _open_list(self) -> list[str]:
        return list(self.open_ids)

    def _remembered(self) -> dict[str, list[str]]:
        try:
            value = json.loads(self.remembered or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _restore_open(self, course_id: str) -> bool:
        """on_load: the chapters this browser had open in this course (False when it
        remembers nothing of it); no filter."""
        ids = self._remembered().get(course_id)
        self.open_ids = {i: True for i in ids if is_id(i)} if isinstance(ids, list) else {}
        self.filter_text, self.filter_statuses, self.filtering, self.hits = "", [], False, {}
        return isinstance(ids, list)

    def _open_by_default(self) -> list[str]:
        """A course seen for the first time here: everything open when it is small,
        else its first chapter."""
        if sum(row.count for row in self._chapters) <= OPEN_ALL_UP_TO:
            ids = [row.id for row in self._chapters]
        else:
            ids = [row.id for row in self._chapters[:1]]
        self.open_ids = {i: True for i in ids}
        return ids

    def _remember(self, course_id: str) -> None:
        memory = {k: v for k, v in self._remembered().items() if k != course_id}
        memory[course_id] = list(self.open_ids)
        self.remembered = json.dumps(dict(list(memory.items())[-REMEMBERED_COURSES:]))

    def _index(self, chapter_id: object) -> int | None:
        if not is_id(chapter_id):
            return None
        return next((i for i, row in enumerate(self._chapters) if row.id == chapter_id), None)

    def _recount(self, moves: dict[str, tuple[list[VideoRow], list[VideoRow]]]) -> None:
        """Chapters' counts after videos came in or went out ({chapter id: (added,
        removed)}); the outline is resent only when a count really changed."""
        rows = list(self._chapters)
        for chapter_id, (added, removed) in moves.items():
            index = self._index(chapter_id)
            if index is not None:
                rows[index] = recounted(rows[index], added, removed)
        if rows != self._chapters:
            self._chapters = rows

    async def _confirm_counts(self, user: User, course_id: str) -> None:
        """The database's counts, sent only where they differ from the optimistic view."""
        try:
            rows = [chapter_row(s) for s in await call_service(outline.chapter_summaries, user=user, course_id=course_id)]
        except Exception:  # the next load shows the truth; the change itself was saved
            return
        mine = {row.id: row for row in self._chapters}
        if [r.id for r in rows] != [r.id for r in self._chapters] or any(
            dataclasses.replace(r, title=mine[r.id].title) != mine[r.id] for r in rows
        ):
            self._apply(rows)

    async def _course_id(self) -> str:
        from course_app.state.course import CourseState

        return (await self.get_state(CourseState)).course_id

    async def _videos(self):
        from course_app.state.videos import VideosState

        return await self.get_state(VideosState)

    # Open and closed ---------------------------------------------------------------------

    @rx.event
    @requires_user
    async def toggle_open(self, user: User, chapter_id: str):
        if self._index(chapter_id) is None:
            await show_error(self, "That chapter is no longer in this course.", "chapters")
            return
        course_id = await self._course_id()
        videos = await self._videos()
        if self.open_ids.get(chapter_id):
            self.open_ids = {k: v for k, v in self.open_ids.items() if k != chapter_id}
            if not self.filtering:
                videos._by_chapter = {k: v for k, v in videos._by_chapter.items() if k != chapter_id}
            self._remember(course_id)
            return
        self.open_ids = {**self.open_ids, chapter_id: True}
        self._remember(course_id)
        # One update with the videos (a query of a few ms) costs the page one redraw, not two.
        await self._load_videos(user, course_id, [chapter_id])

    @rx.event
    @requires_user
    async def expand_all(self, user: User):
        course_id = await self._course_id()
        self.open_ids = {row.id: True for row in self._chapters if not row.saving}
        self._remember(course_id)
        await self._load_videos(user, course_id, list(self.open_ids))

    @rx.event
    @requires_user
    async def collapse_all(self, user: User):
        self.open_ids = {}
        self._remember(await self._course_id())
        if not self.filtering:
            (await self._videos())._by_chapter = {}

    async def _load_videos(self, user: User, course_id: str, chapter_ids: list[str]) -> bool:
        """The database's videos of these chapters into the shown ones; False (and why,
        on the page) when they could not be read."""
        if self.filtering:
            return True  # the filter shows its own matches
        try:
            grouped = await call_service(outline.videos_of_chapters, user=user, course_id=course_id,
                                         chapter_ids=chapter_ids)
        except Exception as exc:
            await show_error(self, user_message(exc), "chapters")
            return False
        videos = await self._videos()
        loaded = await grouped_rows(grouped)
        videos._by_chapter = {**videos._by_chapter, **{i: loaded.get(i, []) for i in chapter_ids}}
        return True

    # Find ------------------------------------------------------------------------------------

    @rx.event
    @requires_user
    async def apply_filter(self, user: User, text: str):
        if not isinstance(text, str):
            return
        self.filter_text = text[:FILTER_MAX]
        await self._run_filter(user)

    @rx.event
    @requires_user
    async def toggle_status_filter(self, user: User, status: str):
        if status not in FILTER_STATUSES:
            return
        self.filter_statuses = ([s for s in self.filter_statuses if s != status] if status in self.filter_statuses
                                else [*self.filter_statuses, status])
        await self._run_filter(user)

    @rx.event
    @requires_user
    async def clear_filter(self, user: User):
        self.filter_text, self.filter_statuses = "", []
        await self._run_filter(user)

    async def _run_filter(self, user: User) -> None:
        course_id = await self._course_id()
        videos = await self._videos()
        text = self.filter_text.strip()
        if not text and not self.filter_statuses:
            self.filtering, self.hits = False, {}
            videos._by_chapter = {}
            await self._load_videos(user, course_id, list(self.open_ids))
            return
        try:
            found = await call_service(outline.find_videos, user=user, course_id=course_id, text=text,
                                       statuses=list(self.filter_statuses))
        except Exception as exc:
            await show_error(self, user_message(exc), "chapters")
            return
        self.filtering = True
        videos._by_chapter = await grouped_rows(found)
        self.hits = {chapter_id: True for chapter_id in videos._by_chapter}

    # Chapters ----------------------------------------------------------------------------------

    @rx.event
    @requires_user
    async def add_chapter(self, user: User, form_data: dict):
        title = form_data.get("title") if isinstance(form_data, dict) else None
        if not isinstance(title, str) or not title.strip():
            await show_error(self, "Give the new chapter a title.", "new-chapter")
            return
        course_id = await self._course_id()
        self._chapters.append(ChapterRow(id=f"pending-{len(self._chapters)}", title=title.strip(), saving=True))
        yield
        saved, chapter = await persist(self, user, "new-chapter", courses.add_chapter, course_id=course_id, title=title)
        if saved:
            self._chapters = [row for row in self._chapters if not row.saving] + [
                ChapterRow(id=str(chapter.id), title=chapter.title)]
            # A new chapter opens, ready for its first videos.
            self.open_ids = {**self.open_ids, str(chapter.id): True}
            (await self._videos())._by_chapter[str(chapter.id)] = []
            self._remember(course_id)

    @rx.event
    @requires_user
    async def rename_chapter(self, user: User, chapter_id: str, title: str):
        index = self._index(chapter_id)
        if index is None or not isinstance(title, str):
            await show_error(self, "That chapter is no longer in this course.", "chapters")
            return
        old = self._chapters[index].title
        if title.strip() == old:
            return
        self._chapters[index] = dataclasses.replace(self._chapters[index], title=title.strip())
        yield
        saved, _ = await persist(self, user, chapter_id, courses.rename_chapter, chapter_id=chapter_id, title=title)
        if saved:
            await offer_undo(self, "Chapter renamed", "rename_chapter", chapter_id, chapter_id=chapter_id,
                             title=old)

    async def _save_order(self, user: User, order: list[ChapterRow]):
        before = [row.id for row in self._chapters]
        self._chapters = order
        yield
        course_id = await self._course_id()
        saved, _ = await persist(self, user, "chapters", courses.reorder_chapters, course_id=course_id,
                                 chapter_ids=[row.id for row in order])
        if saved:
            await offer_undo(self, "Chapter moved", "reorder_chapters", "chapters", course_id=course_id,
                             chapter_ids=before)

    @rx.event
    @requires_user
    async def move_chapter(self, user: User, chapter_id: str, offset: int):
        """Keyboard reorder: the move up / move down buttons."""
        index = self._index(chapter_id)
        if index is None or offset not in (-1, 1) or isinstance(offset, bool):
            await show_error(self, "That chapter cannot move there.", "chapters")
            return
        target = index + offset
        if not 0 <= target < len(self._chapters):
            return
        order = list(self._chapters)
        order[index], order[target] = order[target], order[index]
        async for update in self._save_order(user, order):
            yield update

    @rx.event
    @requires_user
    async def drop_chapter(self, user: User, payload: dict):
        """Drag and drop: the dragged chapter takes the target's place."""
        payload = payload if isinstance(payload, dict) else {}
        source, target = self._index(payload.get("chapter_id")), self._index(payload.get("target_id"))
        if source is None or target is None:
            await show_error(self, "That chapter cannot move there.", "chapters")
            return
        if source == target:
            return
        order = list(self._chapters)
        order.insert(target, order.pop(source))
        async for update in self._save_order(user, order):
            yield update

    async def _delete_chapters(self, user: User, chapter_ids: list[str]):
        """Move chapters and their videos to the course trash (after the confirmation):
        rows at once, then the database (files kept)."""
        from course_app.state.selection import SelectionState

        gone = set(chapter_ids)
        videos = await self._videos()
        before = [row.id for row in self._chapters]
        self._chapters = [row for row in self._chapters if row.id not in gone]
        self.open_ids = {k: v for k, v in self.open_ids.items() if k not in gone}
        videos._by_chapter = {k: v for k, v in videos._by_chapter.items() if k not in gone}
        (await self.get_state(SelectionState))._forget(chapter_ids=gone)
        yield
        saved, pending = await persist(self, user, "chapters", trash.trash_chapters, chapter_ids=list(chapter_ids))
        if saved:
            course_id = await self._course_id()
            self._remember(course_id)
            if pending:
                await outbox.carry_out(pending)
            label = "Chapter moved to trash" if len(chapter_ids) == 1 else f"{len(chapter_ids)} chapters moved to trash"
            await offer_undo(self, label, "untrash", "chapters", course_id=course_id,
                             chapter_ids=list(chapter_ids), chapter_order=before)
