"""The student preview (/courses/[course_id]/preview): the course's outline, sent
once when the page loads, and the lesson playing, in a State of its own so that
moving between lessons sends a few short strings, never the outline again."""

from __future__ import annotations

import dataclasses

import reflex as rx

from course_app.errors import Forbidden, NotFound
from course_app.models import User
from course_app.services import playback, preview
from course_app.state.editor_store import duration_text
from course_app.state.session import call_service, is_id, requires_user, route_course_id, user_message
from course_app.storage import get_storage

NO_ACCESS = "This course does not exist, or it is not published and only its owner can preview it."


@dataclasses.dataclass
class LessonRow:
    id: str
    title: str
    duration: str  # "4:05"
    number: int  # 1-based, across the course


@dataclasses.dataclass
class ChapterOutline:
    id: str
    title: str
    duration: str
    lessons: list[LessonRow]


class PreviewState(rx.State):
    """The outline: set by ``load`` and not touched while the student watches."""

    course_id: str = ""
    title: str = ""
    description: str = ""
    status: str = ""
    is_owner: bool = False
    chapters: list[ChapterOutline] = []
    lesson_count: int = 0
    left_out: int = 0  # videos not ready (told to the owner)
    loaded: bool = False
    load_error: str = ""

    @rx.event
    @requires_user
    async def load(self, user: User):
        self.loaded = False
        self.course_id = route_course_id(self)
        player = await self.get_state(PreviewPlayerState)
        player.reset()
        try:
            seen = await call_service(preview.course_preview, user=user, course_id=self.course_id)
        except Exception as exc:
            self.chapters, self.title, self.description, self.lesson_count = [], "", "", 0
            self.load_error = NO_ACCESS if isinstance(exc, (NotFound, Forbidden)) or getattr(
                exc, "status_code", 0) == 400 else user_message(exc)
            self.loaded = True
            return
        chapters, order, number = [], [], 0
        for chapter in seen.chapters:
            rows = []
            for lesson in chapter.lessons:
                number += 1
                rows.append(LessonRow(str(lesson.id), lesson.title, duration_text(lesson.duration_seconds), number))
                order.append((str(lesson.id), lesson.title, chapter.title))
            total = sum(lesson.duration_seconds or 0 for lesson in chapter.lessons)
            chapters.append(ChapterOutline(str(chapter.id), chapter.title, duration_text(total), rows))
        for name, value in (("title", seen.course.title), ("description", seen.course.description),
                            ("status", seen.course.status), ("is_owner", seen.is_owner), ("left_out", seen.left_out),
                            ("lesson_count", number), ("chapters", chapters), ("load_error", "")):
            if getattr(self, name) != value:  # a reload of the same course resends nothing of the outline
                setattr(self, name, value)
        self.loaded = True
        player._lessons = order
        if order:
            async for update in player._show(user, 0):
                yield update


class PreviewPlayerState(rx.State):
    """The lesson playing: its id, title, signed links and place in the course."""

    current_id: str = ""
    current_title: str = ""
    chapter_title: str = ""
    src: str = ""
    poster: str = ""
    position: str = ""  # "Lesson 2 of 14"
    has_previous: bool = False
    has_next: bool = False
    error: str = ""
    # The course's lessons in order, as (id, title, chapter title): backend only.
    _lessons: list[tuple[str, str, str]] = []

    def _index(self) -> int | None:
        return next((i for i, (lesson_id, _, _) in enumerate(self._lessons) if lesson_id == self.current_id), None)

    async def _show(self, user: User, index: int):
        lesson_id, title, chapter_title = self._lessons[index]
        try:
            links = await call_service(playback.playback_links, user=user, storage=get_storage(), video_id=lesson_id)
        except Exception as exc:
            self.error = user_message(exc)
            return
        self.current_id, self.current_title, self.chapter_title = lesson_id, title, chapter_title
        self.src, self.poster = links.url, links.poster_url
        self.position = f"Lesson {index + 1} of {len(self._lessons)}"
        self.has_previous, self.has_next = index > 0, index + 1 < len(self._lessons)
        self.error = ""
        yield

    @rx.event
    @requires_user
    async def play(self, user: User, video_id: str):
        index = next((i for i, (lesson_id, _, _) in enumerate(self._lessons) if lesson_id == video_id), None) \
            if is_id(video_id) else None
        if index is None:
            self.error = "That lesson is not part of this course."
            return
        async for update in self._show(user, index):
            yield update

    @rx.event
    @requires_user
    async def next_lesson(self, user: User):
        index = self._index()
        if index is not None and index + 1 < len(self._lessons):
            async for update in self._show(user, index + 1):
                yield update

    @rx.event
    @requires_user
    async def previous_lesson(self, user: User):
        index = self._index()
        if index:
            async for update in self._show(user, index - 1):
                yield update
