"""The course editor: the course's details, its uploads, and an outline that stays
fast at any size (collapsible chapters, memoized rows, shared dialogs)."""

from __future__ import annotations

import reflex as rx

from course_app.components.elements import BLUR_ON_ENTER
from course_app.components.layout import error_callout, loading, page
from course_app.components.uploads import outline_dnd, uploads_panel
from course_app.models import DESCRIPTION_MAX, TITLE_MAX
from course_app.pages.editor_dialogs import (
    confirm_dialog, filter_bar, move_dialog, player, selection_toolbars, undo_toast,
)
from course_app.pages.editor_outline import all_chapters, outline_list
from course_app.settings import get_settings
from course_app.state.course import CourseState
from course_app.state.notice import NoticeState
from course_app.state.outline import OutlineState
from course_app.state.videos import VideosState


def _error_for(*targets: str) -> rx.Component:
    shown = NoticeState.error_target == targets[0]
    for target in targets[1:]:
        shown = shown | (NoticeState.error_target == target)
    return error_callout(rx.cond(shown, NoticeState.error, ""), on_dismiss=NoticeState.dismiss)


def _course_details() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.el.label("Course title", html_for="course-title", style={"font_weight": "500"}),
            rx.spacer(),
            rx.badge(CourseState.status, color_scheme=rx.cond(CourseState.status == "published", "green", "gray")),
            rx.button(
                rx.cond(CourseState.status == "published", "Unpublish", "Publish"),
                on_click=CourseState.toggle_published,
                variant="soft",
            ),
            width="100%",
            align="center",
        ),
        rx.input(
            id="course-title",
            default_value=CourseState.title,
            key="title-" + CourseState.title,
            on_blur=CourseState.save_title,
            on_key_down=BLUR_ON_ENTER,
            max_length=TITLE_MAX,
            size="3",
            width="100%",
        ),
        rx.el.label("Description", html_for="course-description", style={"font_weight": "500"}),
        rx.text_area(
            id="course-description",
            default_value=CourseState.description,
            key="description-" + CourseState.description,
            on_blur=CourseState.save_description,
            placeholder="What will students learn?",
            max_length=DESCRIPTION_MAX,
            rows="3",
            width="100%",
        ),
        _error_for("course"),
        width="100%",
        spacing="2",
    )


def _uploads() -> rx.Component:
    return uploads_panel(
        course_id=CourseState.course_id,
        max_bytes=get_settings().max_upload_bytes,  # a limit, not a secret: fine in the bundle
        # Reflex checks prop types: the dataclasses arrive in the browser as plain objects.
        chapters=all_chapters(),
        pending=VideosState.pending.to(list[dict]),
        on_uploaded=VideosState.upload_changed,
        on_failed=VideosState.upload_changed,
        on_changed=VideosState.upload_changed,
        width="100%",
    )


def _chapters() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading("Chapters", size="5", as_="h2"),
            rx.cond(OutlineState.total_duration != "",
                    rx.text("Total duration " + OutlineState.total_duration, size="2", color_scheme="gray")),
            align="baseline",
            spacing="3",
        ),
        rx.text(
            "Open a chapter to see its videos. Drag chapters and videos by their handles (videos also onto another "
            "chapter), or use the arrow and Move buttons; drop video files onto a chapter to upload them there.",
            size="2", color_scheme="gray",
        ),
        filter_bar(),
        _error_for("chapters", "videos"),
        player(),
        rx.cond(
            OutlineState.chapter_count > 0,
            outline_dnd(
                selection_toolbars(),
                outline_list(),
                course_id=CourseState.course_id,
                max_bytes=get_settings().max_upload_bytes,
                on_move_videos=VideosState.move_videos,
                on_move_chapter=OutlineState.drop_chapter,
                on_retried=VideosState.upload_retried,
                style={"width": "100%", "display": "flex", "flex_direction": "column", "gap": "8px"},
            ),
            rx.callout.root(
                rx.callout.text("No chapters yet. Add the first one below."), color_scheme="blue", width="100%"
            ),
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="title",
                    placeholder="Chapter title, e.g. Getting started",
                    aria_label="New chapter title",
                    max_length=TITLE_MAX,
                    width="100%",
                ),
                rx.button("Add chapter", type="submit"),
                width="100%",
            ),
            on_submit=OutlineState.add_chapter,
            reset_on_submit=True,
            width="100%",
        ),
        _error_for("new-chapter"),
        width="100%",
        spacing="3",
    )


def editor_page() -> rx.Component:
    return page(
        rx.hstack(
            rx.link("← My courses", href="/dashboard", size="2"),
            rx.spacer(),
            rx.link(rx.hstack(rx.icon("eye", size=16), rx.text("Preview as a student"), align="center", spacing="1"),
                    href="/courses/" + CourseState.course_id + "/preview", size="2"),
            rx.link(rx.hstack(rx.icon("trash-2", size=16), rx.text("Trash"), align="center", spacing="1"),
                    href="/courses/" + CourseState.course_id + "/trash", size="2", aria_label="Trash of this course"),
            width="100%",
        ),
        rx.cond(
            ~CourseState.loaded,
            loading("Loading the course…"),
            rx.cond(
                CourseState.load_error != "",
                rx.callout.root(
                    rx.callout.icon(rx.icon("triangle_alert")),
                    rx.callout.text(CourseState.load_error),
                    color_scheme="red",
                    role="alert",
                    width="100%",
                ),
                rx.vstack(
                    rx.heading(CourseState.title, size="7", as_="h1"),
                    _course_details(),
                    rx.divider(),
                    _uploads(),
                    _chapters(),
                    width="100%",
                    spacing="4",
                ),
            ),
        ),
        move_dialog(),
        confirm_dialog(),
        undo_toast(),
    )
