"""Undo: after a rename, move, reorder or delete in the editor, a toast offers to
revert it for ``UNDO_SECONDS``.

The revert goes through the same services as every edit, checked against the
revision the action produced: if the course changed since (here or in another
window), the undo is refused rather than applied over a change its author has
not seen. What the revert needs (the old title, the old order) is kept on the
server (a backend var); the browser only sees the toast's text.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import reflex as rx

from course_app.models import User
from course_app.services import courses, video_layout, videos
from course_app.state.editor_store import load_editor, persist
from course_app.state.notice import show_error
from course_app.state.session import requires_user

UNDO_SECONDS = 10
TOO_LATE = "This can no longer be undone: the course has changed since."

# What each kind of revert calls (kept here: the browser never names a service).
REVERTS = {
    "rename_video": videos.rename_video,
    "rename_chapter": courses.rename_chapter,
    "update_course": courses.update_course,
    "reorder_chapters": courses.reorder_chapters,
    "restore_layout": video_layout.restore_layout,
}


class UndoState(rx.State):
    label: str = ""  # the toast's text ("Chapter renamed"); empty: no toast
    _revert: dict[str, Any] = {}
    _after: int = -1  # the course revision the action produced
    _offer: str = ""

    def _clear(self) -> None:
        if self.label:
            self.label = ""
        self._revert, self._offer = {}, ""

    @rx.event
    @requires_user
    async def undo(self, user: User):
        from course_app.state.course import CourseState

        revert, after = self._revert, self._after
        self._clear()
        if not revert:
            return
        yield
        course = await self.get_state(CourseState)
        if course._revision != after:
            await show_error(self, TOO_LATE, revert["target"])
            return
        saved, _ = await persist(self, user, revert["target"], REVERTS[revert["kind"]], **revert["args"])
        if saved:
            await load_editor(self, user)

    @rx.event
    @requires_user
    async def dismiss(self, user: User):
        self._clear()

    @rx.event(background=True)
    @requires_user
    async def expire(self, user: User, offer: str):
        """Hide the toast once its time is up (unless a newer one replaced it)."""
        await asyncio.sleep(UNDO_SECONDS)
        async with self:
            if offer and self._offer == offer:
                self._clear()


async def offer_undo(state: rx.State, label: str, kind: str, target: str, **args: Any) -> rx.event.EventSpec:
    """After an edit was saved: show the toast that reverts it with ``kind``. Returns
    the event that hides it later (yield it from the handler)."""
    from course_app.state.course import CourseState

    undo = await state.get_state(UndoState)
    course = await state.get_state(CourseState)
    undo.label = label
    undo._revert = {"kind": kind, "target": target, "args": args}
    undo._after = course._revision
    undo._offer = uuid.uuid4().hex
    return UndoState.expire(undo._offer)
