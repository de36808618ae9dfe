"""The instructor's courses, with counts and a "New course" action."""

from __future__ import annotations

import reflex as rx

from course_app.components.layout import confirm_delete, error_callout, loading, page
from course_app.models import TITLE_MAX
from course_app.state.dashboard import CourseCard, DashboardState


def _status_badge(status: rx.Var) -> rx.Component:
    return rx.badge(status, color_scheme=rx.cond(status == "published", "green", "gray"))


def _course_card(course: CourseCard) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.vstack(
                rx.link(rx.heading(course.title, size="4", as_="h2"), href="/courses/" + course.id),
                rx.text(
                    course.chapter_count.to_string() + " chapters · " + course.video_count.to_string() + " videos",
                    size="2",
                    color_scheme="gray",
                ),
                spacing="1",
            ),
            rx.spacer(),
            _status_badge(course.status),
            rx.link(rx.button("Open", variant="soft"), href="/courses/" + course.id),
            confirm_delete(
                trigger_label="Delete",
                aria_label="Delete course " + course.title,
                title="Delete this course?",
                description="“" + course.title + "” and its chapters will be removed for good.",
                confirm_label="Delete course",
                on_confirm=DashboardState.delete_course(course.id),
            ),
            align="center",
            width="100%",
        ),
        width="100%",
        data_testid="course-card",
    )


def _new_course_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(
                name="title",
                placeholder="Course title, e.g. Python for beginners",
                aria_label="New course title",
                required=True,
                max_length=TITLE_MAX,
                width="100%",
            ),
            rx.button("New course", type="submit", loading=DashboardState.creating),
            width="100%",
        ),
        error_callout(DashboardState.create_error, margin_top="8px"),
        on_submit=DashboardState.create_course,
        reset_on_submit=True,
        width="100%",
    )


def dashboard_page() -> rx.Component:
    return page(
        rx.heading("My courses", size="7", as_="h1"),
        _new_course_form(),
        error_callout(DashboardState.error, on_dismiss=DashboardState.dismiss_error),
        rx.cond(
            ~DashboardState.loaded,
            loading("Loading your courses…"),
            rx.cond(
                DashboardState.courses.length() > 0,
                rx.vstack(rx.foreach(DashboardState.courses, _course_card), width="100%", spacing="3"),
                rx.callout.root(
                    rx.callout.text("You have no courses yet. Type a title above and press “New course” to start one."),
                    color_scheme="blue",
                    width="100%",
                ),
            ),
        ),
    )
