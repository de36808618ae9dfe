"""The videos of one chapter inside the editor: list, edit, play, upload."""

from __future__ import annotations

import reflex as rx

from course_app.components.elements import BLUR_ON_ENTER
from course_app.components.layout import confirm_delete, error_callout
from course_app.models import TITLE_MAX
from course_app.state.editor import ChapterRow, EditorState
from course_app.state.videos import VideoRow, VideosState

STATUS_COLORS = {"ready": "green", "uploading": "blue", "failed": "red"}


def _error_for(target: rx.Var) -> rx.Component:
    return error_callout(
        rx.cond(VideosState.error_target == target, VideosState.error, ""), on_dismiss=VideosState.dismiss_error
    )


def _status_badge(video: VideoRow) -> rx.Component:
    return rx.badge(
        video.status_label,
        color_scheme=rx.match(video.status, ("ready", "green"), ("uploading", "blue"), ("failed", "red"), "gray"),
        aria_label="Status: " + video.status_label,
    )


def _move_to_chapter(video: VideoRow) -> rx.Component:
    return rx.select.root(
        rx.select.trigger(placeholder="Move to…", aria_label="Move " + video.title + " to chapter"),
        rx.select.content(
            rx.foreach(EditorState.chapters, lambda chapter: rx.select.item(chapter.title, value=chapter.id)),
        ),
        value=video.chapter_id,
        on_change=lambda chapter_id: VideosState.move_to_chapter(video.id, chapter_id),
        size="1",
    )


def _video_row(video: VideoRow, index: rx.Var[int], count: rx.Var[int]) -> rx.Component:
    return rx.el.li(
        rx.hstack(
            rx.icon("film", size=16, aria_hidden="true", color="var(--gray-9)"),
            rx.input(
                default_value=video.title,
                key=video.id + video.title,
                aria_label="Title of " + video.filename,
                max_length=TITLE_MAX,
                on_blur=lambda value: VideosState.rename(video.id, value),
                on_key_down=BLUR_ON_ENTER,
                size="1",
                flex="1",
            ),
            _status_badge(video),
            rx.text(video.size, size="1", color_scheme="gray"),
            rx.cond(video.duration != "", rx.text(video.duration, size="1", color_scheme="gray")),
            rx.button(
                "Play",
                on_click=VideosState.play(video.id),
                disabled=video.status != "ready",
                aria_label="Play " + video.title,
                size="1",
                variant="soft",
            ),
            rx.icon_button(
                rx.icon("arrow_up", size=14),
                on_click=VideosState.move(video.id, -1),
                disabled=index == 0,
                aria_label="Move video " + video.title + " up",
                size="1",
                variant="ghost",
            ),
            rx.icon_button(
                rx.icon("arrow_down", size=14),
                on_click=VideosState.move(video.id, 1),
                disabled=index == count - 1,
                aria_label="Move video " + video.title + " down",
                size="1",
                variant="ghost",
            ),
            _move_to_chapter(video),
            confirm_delete(
                trigger_label="Delete",
                aria_label="Delete video " + video.title,
                title="Delete this video?",
                description="“" + video.title + "” and its stored file will be removed for good.",
                confirm_label="Delete video",
                on_confirm=VideosState.delete(video.id),
                size="1",
            ),
            align="center",
            width="100%",
            spacing="2",
        ),
        rx.cond(video.error != "", rx.text(video.error, color_scheme="red", size="1")),
        _error_for(video.id),
        data_testid="video-row",
        style={"list_style": "none", "padding": "4px 0"},
    )


def chapter_videos(chapter: ChapterRow, uploader: rx.Component) -> rx.Component:
    rows = VideosState.by_chapter.get(chapter.id, []).to(list[VideoRow])
    return rx.vstack(
        rx.cond(
            rows.length() > 0,
            rx.el.ul(
                rx.foreach(rows, lambda video, index: _video_row(video, index, rows.length())),
                aria_label="Videos of " + chapter.title,
                style={"padding": "0", "margin": "0", "width": "100%"},
            ),
            rx.text("No videos yet. Drop video files below or choose them.", size="2", color_scheme="gray"),
        ),
        _error_for(chapter.id),
        uploader,
        width="100%",
        padding_left="36px",
        spacing="2",
    )


def player() -> rx.Component:
    return rx.cond(
        VideosState.playing_id != "",
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.heading("Now playing: " + VideosState.playing_title, size="3", as_="h3"),
                    rx.spacer(),
                    rx.button("Close player", on_click=VideosState.stop_playing, size="1", variant="soft"),
                    width="100%",
                ),
                rx.el.video(
                    src="/api/videos/" + VideosState.playing_id + "/stream",
                    controls=True,
                    auto_play=True,
                    aria_label="Video player",
                    key=VideosState.playing_id,
                    style={"width": "100%", "max_height": "420px", "background": "black"},
                ),
                width="100%",
            ),
            width="100%",
        ),
    )
