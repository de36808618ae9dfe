"""The editor's one error message, shown next to what caused it.

Kept in a State of its own: a message appearing or going away re-renders only the
places that show it, never the course outline."""

from __future__ import annotations

import reflex as rx


class NoticeState(rx.State):
    error: str = ""
    # Where the message shows: "course", "chapters", "new-chapter", "videos", a chapter id or a video id.
    error_target: str = ""

    @rx.event
    def dismiss(self):
        self.error = self.error_target = ""


async def show_error(state: rx.State, message: str, target: str) -> None:
    notice = await state.get_state(NoticeState)
    notice.error, notice.error_target = message, target


async def clear_error(state: rx.State) -> None:
    """Forget the last message (a later action succeeded); sends nothing when there is none."""
    notice = await state.get_state(NoticeState)
    if notice.error or notice.error_target:
        notice.error = notice.error_target = ""
