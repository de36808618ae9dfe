"""The course editor: title, description, publishing and ordered chapters."""

from __future__ import annotations

import reflex as rx

from course_app.components.elements import BLUR_ON_ENTER, drag_item
from course_app.components.layout import confirm_delete, error_callout, loading, page
from course_app.models import DESCRIPTION_MAX, TITLE_MAX
from course_app.components.uploader import video_uploader
from course_app.pages.editor_videos import chapter_videos, player
from course_app.state.editor import ChapterRow, EditorState
from course_app.settings import get_settings
from course_app.state.videos import VideosState


def _error_for(target: str | rx.Var) -> rx.Component:
    return error_callout(
        rx.cond(EditorState.error_target == target, EditorState.error, ""), on_dismiss=EditorState.dismiss_error
    )


def _course_details() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.el.label("Course title", html_for="course-title", style={"font_weight": "500"}),
            rx.spacer(),
            rx.badge(EditorState.status, color_scheme=rx.cond(EditorState.status == "published", "green", "gray")),
            rx.button(
                rx.cond(EditorState.status == "published", "Unpublish", "Publish"),
                on_click=EditorState.toggle_published,
                variant="soft",
            ),
            width="100%",
            align="center",
        ),
        rx.input(
            id="course-title",
            default_value=EditorState.title,
            key="title-" + EditorState.title,
            on_blur=EditorState.save_title,
            on_key_down=BLUR_ON_ENTER,
            max_length=TITLE_MAX,
            size="3",
            width="100%",
        ),
        rx.el.label("Description", html_for="course-description", style={"font_weight": "500"}),
        rx.text_area(
            id="course-description",
            default_value=EditorState.description,
            key="description-" + EditorState.description,
            on_blur=EditorState.save_description,
            placeholder="What will students learn?",
            max_length=DESCRIPTION_MAX,
            rows="3",
            width="100%",
        ),
        _error_for("course"),
        width="100%",
        spacing="2",
    )


def _uploader(chapter: ChapterRow, index: rx.Var[int]) -> rx.Component:
    return video_uploader(
        course_id=EditorState.course_id,
        chapter_id=chapter.id,
        max_bytes=get_settings().max_upload_bytes,  # a limit, not a secret: fine in the bundle
        label="Upload videos to chapter " + (index + 1).to_string() + ": " + chapter.title,
        # Reflex checks prop types: the dataclasses arrive in the browser as plain objects.
        pending=VideosState.pending_by_chapter.get(chapter.id, []).to(list[dict]),
        on_uploaded=VideosState.refresh,
        on_failed=VideosState.refresh,
        on_changed=VideosState.refresh,
        width="100%",
    )


def _chapter_row(chapter: ChapterRow, index: rx.Var[int]) -> rx.Component:
    number = (index + 1).to_string()
    return drag_item(
        rx.hstack(
            rx.icon("grip_vertical", aria_hidden="true", color="var(--gray-9)", cursor="grab"),
            rx.text(number + ".", weight="bold", min_width="2em"),
            rx.input(
                default_value=chapter.title,
                key=chapter.id + chapter.title,
                aria_label="Chapter " + number + " title",
                max_length=TITLE_MAX,
                read_only=chapter.saving,
                on_blur=lambda value: EditorState.rename_chapter(chapter.id, value),
                on_key_down=BLUR_ON_ENTER,
                flex="1",
            ),
            rx.text(
                VideosState.by_chapter.get(chapter.id, []).to(list).length().to_string() + " videos",
                size="2",
                color_scheme="gray",
            ),
            rx.icon_button(
                rx.icon("arrow_up"),
                on_click=EditorState.move_chapter(chapter.id, -1),
                disabled=(index == 0) | chapter.saving,
                aria_label="Move " + chapter.title + " up",
                variant="ghost",
            ),
            rx.icon_button(
                rx.icon("arrow_down"),
                on_click=EditorState.move_chapter(chapter.id, 1),
                disabled=(index == EditorState.chapters.length() - 1) | chapter.saving,
                aria_label="Move " + chapter.title + " down",
                variant="ghost",
            ),
            confirm_delete(
                trigger_label="Delete",
                aria_label="Delete " + chapter.title,
                title="Delete this chapter?",
                description="“" + chapter.title + "” will be removed from the course.",
                confirm_label="Delete chapter",
                on_confirm=EditorState.delete_chapter(chapter.id),
            ),
            align="center",
            width="100%",
            spacing="3",
        ),
        _error_for(chapter.id),
        rx.cond(~chapter.saving, chapter_videos(chapter, _uploader(chapter, index))),
        draggable=~chapter.saving,
        aria_busy=chapter.saving,
        on_drag_start=EditorState.drag_start(chapter.id),
        on_drag_over=rx.prevent_default,
        on_drop=[rx.prevent_default, EditorState.drop_on(chapter.id)],
        data_testid="chapter-row",
        style={
            "list_style": "none",
            "padding": "8px 12px",
            "border": "1px solid var(--gray-a5)",
            "border_radius": "8px",
            "background": "var(--color-panel-solid)",
        },
    )


def _chapters() -> rx.Component:
    return rx.vstack(
        rx.heading("Chapters", size="5", as_="h2"),
        rx.text("Drag a chapter by its handle, or use the arrow buttons, to change the order.", size="2", color_scheme="gray"),
        _error_for("chapters"),
        player(),
        rx.cond(
            EditorState.chapters.length() > 0,
            rx.el.ol(
                rx.foreach(EditorState.chapters, _chapter_row),
                aria_label="Chapters",
                style={"display": "flex", "flex_direction": "column", "gap": "8px", "padding": "0", "width": "100%"},
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
            on_submit=EditorState.add_chapter,
            reset_on_submit=True,
            width="100%",
        ),
        _error_for("new-chapter"),
        width="100%",
        spacing="3",
    )


def editor_page() -> rx.Component:
    return page(
        rx.link("← My courses", href="/dashboard", size="2"),
        rx.cond(
            ~EditorState.loaded,
            loading("Loading the course…"),
            rx.cond(
                EditorState.load_error != "",
                rx.callout.root(
                    rx.callout.icon(rx.icon("triangle_alert")),
                    rx.callout.text(EditorState.load_error),
                    color_scheme="red",
                    role="alert",
                    width="100%",
                ),
                rx.vstack(
                    rx.heading(EditorState.title, size="7", as_="h1"),
                    _course_details(),
                    rx.divider(),
                    _chapters(),
                    width="100%",
                    spacing="4",
                ),
            ),
        ),
    )
