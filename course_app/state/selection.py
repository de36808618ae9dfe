"""Batch work in the editor: the selected videos and chapters, and the two shared
dialogs (move to a chapter, confirm a deletion) that act on one row or on the
selection. One dialog each for the whole course, not one per row."""

from __future__ import annotations

import reflex as rx

from course_app.models import User
from course_app.settings import get_settings
from course_app.state.notice import show_error
from course_app.state.session import is_id, requires_user
from course_app.state.videos import GONE, VideosState, video_ids


class SelectionState(rx.State):
    videos: dict[str, bool] = {}
    chapters: dict[str, bool] = {}
    video_count: int = 0
    chapter_count: int = 0
    _anchor: str = ""  # the last video clicked: shift-click selects the range from it

    def _set(self, videos: dict[str, bool] | None = None, chapters: dict[str, bool] | None = None) -> None:
        if videos is not None:
            self.videos, self.video_count = videos, len(videos)
        if chapters is not None:
            self.chapters, self.chapter_count = chapters, len(chapters)

    def _forget(self, video_ids: set[str] = frozenset(), chapter_ids: set[str] = frozenset()) -> None:
        """Rows that moved or went away leave the selection."""
        if any(v in self.videos for v in video_ids):
            self._set(videos={k: True for k in self.videos if k not in video_ids})
        if any(c in self.chapters for c in chapter_ids):
            self._set(chapters={k: True for k in self.chapters if k not in chapter_ids})

    async def _visible_order(self) -> list[str]:
        """The video ids shown, in outline order."""
        from course_app.state.outline import OutlineState

        chapters = await self.get_state(OutlineState)
        shown = (await self.get_state(VideosState))._by_chapter
        return [row.id for chapter in chapters._chapters for row in shown.get(chapter.id, [])]

    @rx.event
    @requires_user
    async def toggle_video(self, user: User, video_id: str, shift: bool = False):
        order = await self._visible_order()
        if video_id not in order:
            await show_error(self, GONE, "videos")
            return
        selecting = video_id not in self.videos
        picked = [video_id]
        if shift is True and self._anchor in order:
            first, last = sorted((order.index(self._anchor), order.index(video_id)))
            picked = order[first:last + 1]
        chosen = dict(self.videos)
        for vid in picked:
            if selecting:
                chosen[vid] = True
            else:
                chosen.pop(vid, None)
        self._anchor = video_id
        self._set(videos=chosen)

    @rx.event
    @requires_user
    async def toggle_chapter_videos(self, user: User, chapter_id: str):
        """Select every video of an open chapter, or none when all are selected."""
        rows = (await self.get_state(VideosState))._by_chapter.get(chapter_id) if is_id(chapter_id) else None
        if rows is None:
            await show_error(self, "Open the chapter to select its videos.", "videos")
            return
        ids = [row.id for row in rows]
        if ids and all(i in self.videos for i in ids):
            self._set(videos={k: True for k in self.videos if k not in set(ids)})
        else:
            self._set(videos={**self.videos, **{i: True for i in ids}})

    @rx.event
    @requires_user
    async def toggle_chapter(self, user: User, chapter_id: str):
        from course_app.state.outline import OutlineState

        if (await self.get_state(OutlineState))._index(chapter_id) is None:
            await show_error(self, "That chapter is no longer in this course.", "chapters")
            return
        if chapter_id in self.chapters:
            self._set(chapters={k: True for k in self.chapters if k != chapter_id})
        else:
            self._set(chapters={**self.chapters, chapter_id: True})

    @rx.event
    def clear(self):
        self._set(videos={}, chapters={})
        self._anchor = ""


def _restorable(count: int) -> str:
    """What the delete confirmation promises (the trash keeps rows ``trash_days``)."""
    return f"{'It' if count == 1 else 'They'} can be restored from the course's Trash for {get_settings().trash_days} days."


class DialogState(rx.State):
    """The shared "Move to chapter" dialog and the shared delete confirmation."""

    move_open: bool = False
    move_what: str = ""  # "“Intro”" or "3 videos"
    confirm_open: bool = False
    confirm_title: str = ""
    confirm_text: str = ""
    confirm_label: str = ""
    _move_ids: list[str] = []
    _confirm_kind: str = ""  # "videos" or "chapters"
    _confirm_ids: list[str] = []

    async def _selection(self) -> SelectionState:
        return await self.get_state(SelectionState)

    async def _rows(self, ids: list[str]):
        shown = await self.get_state(VideosState)
        return [row for i in ids if (row := shown._row(i)) is not None]

    # Move -----------------------------------------------------------------------------------

    async def _open_move(self, ids: list[str]) -> None:
        rows = await self._rows(ids)
        if not rows:
            await show_error(self, GONE, "videos")
            return
        self._move_ids = [row.id for row in rows]
        self.move_what = f"“{rows[0].title}”" if len(rows) == 1 else f"{len(rows)} videos"
        self.move_open = True

    @rx.event
    @requires_user
    async def open_move(self, user: User, video_id: str):
        await self._open_move([video_id] if is_id(video_id) else [])

    @rx.event
    @requires_user
    async def open_move_selected(self, user: User):
        await self._open_move(list((await self._selection()).videos))

    @rx.event
    def close_move(self):
        self.move_open, self._move_ids = False, []

    @rx.event
    @requires_user
    async def move_to(self, user: User, chapter_id: str):
        ids = video_ids(self._move_ids)
        self.move_open, self._move_ids = False, []
        if ids is None:
            return
        async for update in (await self.get_state(VideosState))._move(user, ids, chapter_id, None, target=ids[0]):
            yield update

    # Delete -------------------------------------------------------------------------------------

    async def _ask(self, kind: str, ids: list[str], title: str, text: str, label: str) -> None:
        self._confirm_kind, self._confirm_ids = kind, ids
        self.confirm_title, self.confirm_text, self.confirm_label = title, text, label
        self.confirm_open = True

    async def _ask_videos(self, ids: list[str]) -> None:
        rows = await self._rows(ids)
        if not rows:
            await show_error(self, GONE, "videos")
            return
        what = f"“{rows[0].title}”" if len(rows) == 1 else f"{len(rows)} videos"
        await self._ask("videos", [r.id for r in rows],
                        "Move this video to the trash?" if len(rows) == 1 else f"Move {len(rows)} videos to the trash?",
                        f"{what} will leave the course. {_restorable(len(rows))}", "Move to trash")

    async def _ask_chapters(self, ids: list[str]) -> None:
        from course_app.state.outline import OutlineState

        outline = await self.get_state(OutlineState)
        rows = [outline._chapters[i] for c in ids if (i := outline._index(c)) is not None]
        if not rows:
            await show_error(self, "That chapter is no longer in this course.", "chapters")
            return
        videos = sum(row.count for row in rows)
        what = f"“{rows[0].title}”" if len(rows) == 1 else f"{len(rows)} chapters"
        also = f" and its {videos} videos" if videos and len(rows) == 1 else (f" and their {videos} videos" if videos else "")
        await self._ask("chapters", [r.id for r in rows],
                        "Move this chapter to the trash?" if len(rows) == 1 else f"Move {len(rows)} chapters to the trash?",
                        f"{what}{also} will leave the course. {_restorable(len(rows))}", "Move to trash")

    @rx.event
    @requires_user
    async def ask_delete_video(self, user: User, video_id: str):
        await self._ask_videos([video_id] if is_id(video_id) else [])

    @rx.event
    @requires_user
    async def ask_delete_selected_videos(self, user: User):
        await self._ask_videos(list((await self._selection()).videos))

    @rx.event
    @requires_user
    async def ask_delete_chapter(self, user: User, chapter_id: str):
        await self._ask_chapters([chapter_id] if is_id(chapter_id) else [])

    @rx.event
    @requires_user
    async def ask_delete_selected_chapters(self, user: User):
        await self._ask_chapters(list((await self._selection()).chapters))

    @rx.event
    def close_confirm(self):
        self.confirm_open, self._confirm_kind, self._confirm_ids = False, "", []

    @rx.event
    @requires_user
    async def confirm(self, user: User):
        kind, ids = self._confirm_kind, video_ids(self._confirm_ids)
        self.confirm_open, self._confirm_kind, self._confirm_ids = False, "", []
        if ids is None:
            return
        if kind == "videos":
            updates = (await self.get_state(VideosState))._delete(user, ids)
        elif kind == "chapters":
            from course_app.state.outline import OutlineState

            updates = (await self.get_state(OutlineState))._delete_chapters(user, ids)
        else:
            return
        async for update in updates:
            yield update
