"""Undo: after a rename, move, reorder or delete in the editor, a toast offers to
revert it for ``UNDO_SECONDS``.

The browser hides the toast when its time is up (a CSS animation restarted for each
offer), and the server refuses an Undo that comes later: no second socket event per
edit just to hide it.

The revert goes through the same services as every edit, checked against the
revision the action produced: if the course changed since (here or in another
window), the undo is refused rather than applied over a change its author has
not seen. What the revert needs (the old title, the old order) is kept on the
server (a backend var); the browser only sees the toast's text.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import reflex as rx

from course_app.models import User
from course_app.services import courses, undo, video_layout, videos
from course_app.state.editor_store import load_editor, persist
from course_app.state.notice import show_error
from course_app.state.session import requires_user

UNDO_SECONDS = 10  # also when the toast fades out (pages/editor_dialogs.py)
TOO_LATE = "This can no longer be undone: the course has changed since."
EXPIRED = "This can no longer be undone: the time to undo it has passed."
GRACE_SECONDS = 2  # an Undo clicked as the toast faded is still taken

# What each kind of revert calls (kept here: the browser never names a service).
REVERTS = {
    "rename_video": videos.rename_video,
    "rename_chapter": courses.rename_chapter,
    "update_course": courses.update_course,
    "reorder_chapters": courses.reorder_chapters,
    "restore_layout": video_layout.restore_layout,
    "untrash": undo.untrash,
}


class UndoState(rx.State):
    label: str = ""  # the toast's text ("Chapter renamed"); empty: no toast
    offer: str = ""  # this offer's id: the toast's key, so that a new offer starts its time again
    _revert: dict[str, Any] = {}
    _after: int = -1  # the course revision the action produced
    _offered_at: float = 0.0  # time.time() of the offer

    def _clear(self) -> None:
        if self.label:
            self.label = ""
        self._revert = {}

    @rx.event
    @requires_user
    async def undo(self, user: User):
        from course_app.state.course import CourseState

        revert, after, offered_at = self._revert, self._after, self._offered_at
        self._clear()
        if not revert:
            return
        yield
        if time.time() - offered_at > UNDO_SECONDS + GRACE_SECONDS:
            await show_error(self, EXPIRED, revert["target"])
            return
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


async def offer_undo(state: rx.State, label: str, kind: str, target: str, **args: Any) -> None:
    """After an edit was saved: show the toast that reverts it with ``kind`` (the
    browser hides it after UNDO_SECONDS)."""
    from course_app.state.course import CourseState

    undo = await state.get_state(UndoState)
    course = await state.get_state(CourseState)
    undo.label = label
    undo._revert = {"kind": kind, "target": target, "args": args}
    undo._after = course._revision
    undo._offered_at = time.time()
    undo.offer = uuid.uuid4().hex
