"""The course as a student sees it (/courses/[course_id]/preview): the player with
the lesson's thumbnail as its poster, Previous and Next, and the chapters with
their lessons and durations, the current lesson highlighted. Only ready videos.

Lesson rows are ``rx.memo`` components with primitive props: moving to the next
lesson changes two rows' ``current`` prop and React skips the rest."""

from __future__ import annotations

import reflex as rx

from course_app.components.layout import error_callout, loading, page
from course_app.components.player import signed_video
from course_app.state.preview import ChapterOutline, LessonRow, PreviewPlayerState, PreviewState


@rx.memo
def lesson_row(lesson_id: rx.Var[str], title: rx.Var[str], duration: rx.Var[str], number: rx.Var[int],
               current: rx.Var[bool]) -> rx.Component:
    return rx.el.li(
        rx.el.button(
            rx.el.span(number.to_string() + ".", class_name="cs-lesson-number"),
            rx.el.span(title, class_name="cs-lesson-title"),
            rx.el.span(duration, class_name="cs-lesson-duration"),
            on_click=PreviewPlayerState.play(lesson_id),
            aria_current=rx.cond(current, "true", "false"),
            aria_label="Lesson " + number.to_string() + ": " + title,
            type="button",
            class_name="cs-lesson",
        ),
        custom_attrs={"data-testid": "lesson"},
    )


def _lesson(lesson: LessonRow) -> rx.Component:
    return lesson_row(lesson_id=lesson.id, title=lesson.title, duration=lesson.duration, number=lesson.number,
                      current=lesson.id == PreviewPlayerState.current_id, key=lesson.id)


def _chapter(chapter: ChapterOutline, index: rx.Var[int]) -> rx.Component:
    return rx.el.li(
        rx.hstack(
            rx.heading((index + 1).to_string() + ". " + chapter.title, size="3", as_="h3"),
            rx.text(chapter.duration, size="1", color_scheme="gray"),
            align="baseline", justify="between", width="100%",
        ),
        rx.el.ol(rx.foreach(chapter.lessons, _lesson), class_name="cs-lessons"),
        class_name="cs-preview-chapter",
    )


def _player() -> rx.Component:
    return rx.vstack(
        rx.text(PreviewPlayerState.chapter_title, size="2", color_scheme="gray"),
        rx.heading(PreviewPlayerState.current_title, size="5", as_="h2"),
        rx.cond(
            PreviewPlayerState.src != "",
            signed_video(PreviewPlayerState.current_id, PreviewPlayerState.src, PreviewPlayerState.poster,
                         label="Lesson video: " + PreviewPlayerState.current_title, next_on_end=True,
                         style={"width": "100%", "max_height": "480px", "background": "black",
                                "aspect_ratio": "16 / 9"}),
        ),
        error_callout(PreviewPlayerState.error),
        rx.hstack(
            rx.button(rx.icon("chevron-left", size=16), "Previous lesson", on_click=PreviewPlayerState.previous_lesson,
                      disabled=~PreviewPlayerState.has_previous, variant="soft"),
            rx.text(PreviewPlayerState.position, size="2", color_scheme="gray", role="status"),
            rx.button("Next lesson", rx.icon("chevron-right", size=16), on_click=PreviewPlayerState.next_lesson,
                      disabled=~PreviewPlayerState.has_next, custom_attrs={"data-next-lesson": "true"}),
            justify="between", align="center", width="100%",
        ),
        width="100%",
        spacing="2",
    )


def _banner() -> rx.Component:
    return rx.cond(
        PreviewState.is_owner,
        rx.callout.root(
            rx.callout.text(
                rx.cond(PreviewState.status == "published", "Published: students see the course like this.",
                        "Draft: only you can see this preview until you publish the course."),
                rx.cond(PreviewState.left_out > 0,
                        " " + PreviewState.left_out.to_string() + " video(s) not ready yet are left out.", ""),
            ),
            color_scheme=rx.cond(PreviewState.status == "published", "green", "amber"),
            width="100%",
        ),
    )


def preview_page() -> rx.Component:
    return page(
        rx.hstack(
            rx.cond(PreviewState.is_owner,
                    rx.link("← Back to the editor", href="/courses/" + PreviewState.course_id, size="2"),
                    rx.link("← My courses", href="/dashboard", size="2")),
            width="100%",
        ),
        rx.cond(
            ~PreviewState.loaded,
            loading("Loading the course…"),
            rx.cond(
                PreviewState.load_error != "",
                error_callout(PreviewState.load_error),
                rx.vstack(
                    rx.heading(PreviewState.title, size="7", as_="h1"),
                    rx.cond(PreviewState.description != "", rx.text(PreviewState.description, color_scheme="gray")),
                    _banner(),
                    rx.cond(
                        PreviewState.lesson_count > 0,
                        rx.fragment(
                            _player(),
                            rx.el.nav(
                                rx.heading("Lessons", size="4", as_="h2"),
                                rx.el.ol(rx.foreach(PreviewState.chapters, _chapter), class_name="cs-preview-outline"),
                                aria_label="Course outline",
                                style={"width": "100%"},
                            ),
                        ),
                        rx.callout.root(rx.callout.text("This course has no lesson ready to watch yet."),
                                        color_scheme="blue", width="100%"),
                    ),
                    width="100%",
                    spacing="4",
                ),
            ),
        ),
    )
