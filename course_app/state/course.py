"""The course's own details in the editor: title, description, publishing.

Apart from the outline, so publishing or renaming the course re-renders neither the
chapters nor the videos. ``load`` (the page's on_load) fills every editor State."""

from __future__ import annotations

import reflex as rx

from course_app.models import Course, User
from course_app.services import courses
from course_app.state.editor_store import load_editor, persist
from course_app.state.live import LiveState
from course_app.state.undo import offer_undo
from course_app.state.notice import show_error
from course_app.state.session import requires_user, route_course_id


class CourseState(rx.State):
    course_id: str = ""
    title: str = ""
    description: str = ""
    status: str = "draft"
    loaded: bool = False
    load_error: str = ""
    # What the view was built from (backend only): the revision every edit is
    # checked against, and the pulse live sync compares with the database's.
    _revision: int = 0
    _pulse: int = 0

    def _apply(self, course: Course) -> None:
        for field, value in (("course_id", str(course.id)), ("title", course.title),
                             ("description", course.description), ("status", course.status)):
            if getattr(self, field) != value:  # unchanged vars are not resent
                setattr(self, field, value)
        self._revision, self._pulse = course.revision, course.pulse

    def _clear(self) -> None:
        self.title = self.description = ""
        self.status = "draft"

    @rx.event
    @requires_user
    async def load(self, user: User):
        """on_load: mirror the course named in the URL (idempotent)."""
        from course_app.state.outline import OutlineState
        from course_app.state.selection import DialogState, SelectionState
        from course_app.state.undo import UndoState
        from course_app.state.videos import PlayerState

        self.loaded = False
        self.course_id = route_course_id(self)
        for cls in (SelectionState, DialogState, PlayerState, UndoState):
            (await self.get_state(cls)).reset()
        remembered = (await self.get_state(OutlineState))._restore_open(self.course_id)
        opened = await load_editor(self, user, first_visit=not remembered)
        self.loaded = True
        if opened:
            return LiveState.follow

    async def _save(self, user: User, field: str, label: str, value: object):
        if not isinstance(value, str):
            await show_error(self, f"The {label} must be text.", "course")
            return
        old = getattr(self, field)
        if value.strip() == old:
            return
        setattr(self, field, value.strip())
        yield
        saved, _ = await persist(self, user, "course", courses.update_course, course_id=self.course_id,
                                 **{field: value})
        if saved:
            await offer_undo(self, f"{label.capitalize()} changed", "update_course", "course",
                             course_id=self.course_id, **{field: old})

    @rx.event
    @requires_user
    async def save_title(self, user: User, value: str):
        async for update in self._save(user, "title", "course title", value):
            yield update

    @rx.event
    @requires_user
    async def save_description(self, user: User, value: str):
        async for update in self._save(user, "description", "description", value):
            yield update

    @rx.event
    @requires_user
    async def toggle_published(self, user: User):
        self.status = "draft" if self.status == "published" else "published"
        yield
        await persist(self, user, "course", courses.set_course_status, course_id=self.course_id, status=self.status)
