"""The course editor's store: the open course and its ordered chapters.

Every edit is optimistic: the vars change and the handler yields so the page
redraws at once; then a service persists the change; on failure the store is
reloaded from the database (the single source of truth) and the error shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import reflex as rx

from course_app.errors import NotFound
from course_app.models import User
from course_app.services import courses
from course_app.services.courses import CourseTree
from course_app.services.uploads import run_pending_deletions
from course_app.state.session import (
    call_service,
    current_user,
    is_id,
    login_redirect,
    route_course_id,
    user_message,
    user_or_redirect,
)
from course_app.state.videos import VideosState
from course_app.storage import get_storage



@dataclasses.dataclass
class ChapterRow:
    id: str
    title: str
    saving: bool = False  # shown before the database has given the row its id


class EditorState(rx.State):
    course_id: str = ""
    title: str = ""
    description: str = ""
    status: str = "draft"
    chapters: list[ChapterRow] = []
    loaded: bool = False
    load_error: str = ""
    error: str = ""
    error_target: str = ""  # "course", "chapters" or a chapter id: where the message shows

    _drag_id: str = ""

    # Loading ----------------------------------------------------------------

    def _apply(self, tree: CourseTree) -> None:
        self.course_id = str(tree.course.id)
        self.title = tree.course.title
        self.description = tree.course.description
        self.status = tree.course.status
        self.chapters = [ChapterRow(id=str(c.id), title=c.title) for c in tree.chapters]

    async def _reload(self, user: User) -> None:
        try:
            self._apply(await call_service(courses.course_tree, user=user, course_id=self.course_id))
        except Exception as exc:  # the course vanished or the database is down
            self.load_error = user_message(exc)
            self.chapters = []

    @rx.event
    async def load(self):
        """on_load: mirror the course named in the URL (idempotent)."""
        self.loaded = False
        self.load_error = ""
        self.error = ""
        self.course_id = route_course_id(self)
        user = await current_user(self)
        if user is None:
            return login_redirect(self.router.url.path)
        try:
            self._apply(await call_service(courses.course_tree, user=user, course_id=self.course_id))
        except Exception as exc:
            self.chapters = []
            self.title = ""
            self.load_error = (
                "This course does not exist or you do not have access to it."
                if isinstance(exc, NotFound) or getattr(exc, "status_code", 0) in (400, 403)
                else user_message(exc)
            )
        self.loaded = True

    # Shared plumbing ---------------------------------------------------------

    async def _persist(self, user: User, target: str, fn: Callable[..., Any], **kwargs: Any) -> bool:
        """Save through a service; on failure reload from the database and show why."""
        try:
            await call_service(fn, user=user, **kwargs)
        except Exception as exc:
            await self._reload(user)
            self.error = user_message(exc)
            self.error_target = target
            return False
        self.error = ""
        self.error_target = ""
        return True

    def _index(self, chapter_id: object) -> int | None:
        if not is_id(chapter_id):
            return None
        return next((i for i, row in enumerate(self.chapters) if row.id == chapter_id), None)

    def _reject(self, message: str, target: str = "chapters") -> None:
        self.error = message
        self.error_target = target

    @rx.event
    def dismiss_error(self):
        self.error = ""
        self.error_target = ""

    # Course -----------------------------------------------------------------

    @rx.event
    async def save_title(self, value: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        if not isinstance(value, str):
            self._reject("The course title must be text.", "course")
            return
        if value.strip() == self.title:
            return
        self.title = value.strip()
        yield
        await self._persist(user, "course", courses.update_course, course_id=self.course_id, title=value)

    @rx.event
    async def save_description(self, value: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        if not isinstance(value, str):
            self._reject("The description must be text.", "course")
            return
        if value.strip() == self.description:
            return
        self.description = value.strip()
        yield
        await self._persist(user, "course", courses.update_course, course_id=self.course_id, description=value)

    @rx.event
    async def toggle_published(self):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        new_status = "draft" if self.status == "published" else "published"
        self.status = new_status
        yield
        await self._persist(user, "course", courses.set_course_status, course_id=self.course_id, status=new_status)

    # Chapters ---------------------------------------------------------------

    @rx.event
    async def add_chapter(self, form_data: dict):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        title = form_data.get("title") if isinstance(form_data, dict) else None
        if not isinstance(title, str) or not title.strip():
            self._reject("Give the new chapter a title.", "new-chapter")
            return
        placeholder = ChapterRow(id=f"pending-{len(self.chapters)}", title=title.strip(), saving=True)
        self.chapters.append(placeholder)
        self.error = ""
        yield
        try:
            await call_service(courses.add_chapter, user=user, course_id=self.course_id, title=title)
        except Exception as exc:
            self._reject(user_message(exc), "new-chapter")
        await self._reload(user)  # the new row's id comes from the database

    @rx.event
    async def rename_chapter(self, chapter_id: str, title: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        index = self._index(chapter_id)
        if index is None or not isinstance(title, str):
            self._reject("That chapter is no longer in this course.")
            return
        if title.strip() == self.chapters[index].title:
            return
        self.chapters[index] = dataclasses.replace(self.chapters[index], title=title.strip())
        yield
        await self._persist(user, chapter_id, courses.rename_chapter, chapter_id=chapter_id, title=title)

    @rx.event
    async def delete_chapter(self, chapter_id: str):
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        index = self._index(chapter_id)
        if index is None:
            self._reject("That chapter is no longer in this course.")
            return
        self.chapters.pop(index)
        yield
        if await self._persist(user, "chapters", courses.delete_chapter, chapter_id=chapter_id):
            # The chapter's videos went with it, their files through the outbox.
            yield VideosState.refresh
            await run_pending_deletions(get_storage())

    async def _save_order(self, user: User, new_order: list[ChapterRow]):
        self.chapters = new_order
        yield
        await self._persist(
            user, "chapters", courses.reorder_chapters, course_id=self.course_id, chapter_ids=[r.id for r in new_order]
        )

    @rx.event
    async def move_chapter(self, chapter_id: str, offset: int):
        """Keyboard reorder: the move up / move down buttons."""
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        index = self._index(chapter_id)
        if index is None or offset not in (-1, 1) or isinstance(offset, bool):
            self._reject("That chapter cannot move there.")
            return
        target = index + offset
        if not 0 <= target < len(self.chapters):
            return
        order = list(self.chapters)
        order[index], order[target] = order[target], order[index]
        async for update in self._save_order(user, order):
            yield update

    @rx.event
    def drag_start(self, chapter_id: str):
        self._drag_id = chapter_id if is_id(chapter_id) else ""

    @rx.event
    async def drop_on(self, target_id: str):
        """Drag-and-drop reorder: the dragged chapter takes the target's place."""
        user, redirect = await user_or_redirect(self)
        if user is None:
            yield redirect
            return
        source, target = self._index(self._drag_id), self._index(target_id)
        self._drag_id = ""
        if source is None or target is None or source == target:
            return
        order = list(self.chapters)
        order.insert(target, order.pop(source))
        async for update in self._save_order(user, order):
            yield update
