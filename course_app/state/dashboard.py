"""The dashboard's store: the instructor's courses with their counts."""

from __future__ import annotations

import dataclasses

import reflex as rx

from course_app.services import courses
from course_app.state.session import call_service, current_user, login_redirect, user_message


@dataclasses.dataclass
class CourseCard:
    id: str
    title: str
    status: str
    chapter_count: int
    video_count: int


class DashboardState(rx.State):
    courses: list[CourseCard] = []
    loaded: bool = False
    error: str = ""
    create_error: str = ""
    creating: bool = False

    async def _reload(self, user) -> None:
        summaries = await call_service(courses.list_courses, user=user)
        self.courses = [
            CourseCard(
                id=str(s.course.id),
                title=s.course.title,
                status=s.course.status,
                chapter_count=s.chapter_count,
                video_count=s.video_count,
            )
            for s in summaries
        ]

    @rx.event
    async def load(self):
        user = await current_user(self)
        if user is None:
            return login_redirect(self.router.url.path)
        try:
            await self._reload(user)
            self.error = ""
        except Exception as exc:
            self.error = user_message(exc)
        self.loaded = True

    @rx.event
    async def create_course(self, form_data: dict):
        user = await current_user(self)
        if user is None:
            yield login_redirect(self.router.url.path)
            return
        title = form_data.get("title") if isinstance(form_data, dict) else None
        self.creating = True
        self.create_error = ""
        yield
        try:
            course = await call_service(courses.create_course, user=user, title=title, description="")
        except Exception as exc:
            self.create_error = user_message(exc)
            self.creating = False
            return
        self.creating = False
        yield rx.redirect(f"/courses/{course.id}")

    @rx.event
    async def delete_course(self, course_id: str):
        user = await current_user(self)
        if user is None:
            yield login_redirect(self.router.url.path)
            return
        if not isinstance(course_id, str):
            self.error = "That course does not exist."
            return
        self.courses = [card for card in self.courses if card.id != course_id]
        yield
        try:
            await call_service(courses.delete_course, user=user, course_id=course_id)
            self.error = ""
        except Exception as exc:
            self.error = user_message(exc)
            await self._reload(user)

    @rx.event
    def dismiss_error(self):
        self.error = ""
