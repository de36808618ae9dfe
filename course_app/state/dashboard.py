"""The dashboard's store: the instructor's courses with their counts."""

from __future__ import annotations

import dataclasses

import reflex as rx

from course_app.services import courses, outbox
from course_app.models import User
from course_app.state.session import call_service, requires_user, user_message


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
    @requires_user
    async def load(self, user: User):
        try:
            await self._reload(user)
            self.error = ""
        except Exception as exc:
            self.error = user_message(exc)
        self.loaded = True

    @rx.event
    @requires_user
    async def create_course(self, user: User, form_data: dict):
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
    @requires_user
    async def delete_course(self, user: User, course_id: str):
        if not isinstance(course_id, str):
            self.error = "That course does not exist."
            return
        self.courses = [card for card in self.courses if card.id != course_id]
        yield
        try:
            pending = await call_service(courses.delete_course, user=user, course_id=course_id)
            self.error = ""
        except Exception as exc:
            self.error = user_message(exc)
            await self._reload(user)
            return
        if pending:  # the stored files of its videos, now (the outbox retries what storage refuses)
            await outbox.carry_out(pending)

    @rx.event
    def dismiss_error(self):
        self.error = ""
