"""The editor's shared widgets: one "Move to chapter" dialog, one delete
confirmation, the selection toolbars, the filter bar and the player. Each exists
once per page and acts on the row it was opened for or on the selection."""

from __future__ import annotations

import reflex as rx
from reflex_base.vars.function import FunctionStringVar

from course_app.components.player import signed_video
from course_app.pages.editor_outline import each_chapter
from course_app.state.editor_store import ChapterRow
from course_app.state.outline import OutlineState
from course_app.state.selection import DialogState, SelectionState
from course_app.state.undo import UNDO_SECONDS, UndoState
from course_app.state.videos import PlayerState

TOOLBAR_STYLE = {"padding": "6px 10px", "border": "1px solid var(--accent-a6)", "border_radius": "8px",
                 "background": "var(--accent-a2)", "width": "100%"}


def _target(chapter: ChapterRow, index: rx.Var[int]) -> rx.Component:
    # A plain button: the dialog lists every chapter, so each costs as little as possible.
    number = (index + 1).to_string()
    return rx.el.button(
        number + ". " + chapter.title,
        on_click=DialogState.move_to(chapter.id),
        aria_label="Move to chapter " + number + ": " + chapter.title,
        auto_focus=index == 0,  # keyboard users start in the list
        type="button",
        class_name="cs-target",
    )


# Escape in the move dialog presses its Cancel button (in the browser; no round trip).
CANCEL_ON_ESCAPE = FunctionStringVar.create(
    "(event) => { if (event.key === 'Escape') { event.preventDefault(); "
    "event.currentTarget.querySelector('[data-dialog-cancel]')?.click(); } }"
)
BACKDROP_STYLE = {"position": "fixed", "inset": "0", "background": "var(--black-a6)", "z_index": "50"}
PANEL_STYLE = {
    "position": "fixed", "top": "10vh", "left": "50%", "transform": "translateX(-50%)", "z_index": "51",
    "width": "min(520px, 92vw)", "max_height": "80vh", "display": "flex", "flex_direction": "column", "gap": "10px",
    "padding": "20px", "border_radius": "var(--radius-4)", "background": "var(--color-panel-solid)",
    "box_shadow": "var(--shadow-6)", "outline": "none",
}


def move_dialog() -> rx.Component:
    """A light modal (no animation, no portal): it lists every chapter, so it must
    open and close in a few milliseconds at 200 chapters."""
    return rx.cond(
        DialogState.move_open,
        rx.fragment(
            rx.el.div(on_click=DialogState.close_move, style=BACKDROP_STYLE, aria_hidden="true"),
            rx.el.div(
                rx.heading("Move to chapter", size="4", as_="h2", id="move-dialog-title"),
                rx.text("Choose the chapter for " + DialogState.move_what + ". It goes to the end.", size="2"),
                rx.el.div(
                    *each_chapter(_target),
                    style={"overflow_y": "auto", "display": "flex", "flex_direction": "column", "gap": "4px"},
                ),
                rx.hstack(
                    rx.button("Cancel", on_click=DialogState.close_move, variant="soft", color_scheme="gray",
                              custom_attrs={"data-dialog-cancel": "true"}),
                    justify="end",
                ),
                role="dialog",
                aria_modal="true",
                aria_labelledby="move-dialog-title",
                custom_attrs={"onKeyDown": CANCEL_ON_ESCAPE},
                style=PANEL_STYLE,
            ),
        ),
    )


def confirm_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title(DialogState.confirm_title),
            rx.alert_dialog.description(DialogState.confirm_text),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button(DialogState.confirm_label, color_scheme="red",
                                                 on_click=DialogState.confirm)),
                spacing="3",
                justify="end",
                margin_top="16px",
            ),
        ),
        open=DialogState.confirm_open,
        on_open_change=lambda _open: DialogState.close_confirm(),
    )


def _toolbar(count: rx.Var[int], label: str, text: rx.Var[str], *buttons: rx.Component) -> rx.Component:
    return rx.cond(
        count > 0,
        rx.hstack(rx.text(text, weight="medium"), rx.spacer(), *buttons, role="toolbar", aria_label=label,
                  align="center", style=TOOLBAR_STYLE),
    )


def selection_toolbars() -> rx.Component:
    return rx.fragment(
        _toolbar(
            SelectionState.video_count, "Selected videos", SelectionState.video_count.to_string() + " selected",
            rx.button("Move to chapter…", on_click=DialogState.open_move_selected, size="1",
                      aria_label="Move selected videos"),
            rx.button("Delete", on_click=DialogState.ask_delete_selected_videos, size="1", color_scheme="red",
                      aria_label="Delete selected videos"),
            rx.button("Retry failed uploads", size="1", variant="soft", custom_attrs={"data-retry-selected": "true"},
                      aria_label="Retry the selected videos' failed uploads"),
            rx.button("Clear", on_click=SelectionState.clear, size="1", variant="soft", aria_label="Clear selection"),
        ),
        _toolbar(
            SelectionState.chapter_count, "Selected chapters",
            SelectionState.chapter_count.to_string() + " chapters selected",
            rx.button("Delete", on_click=DialogState.ask_delete_selected_chapters, size="1", color_scheme="red",
                      aria_label="Delete selected chapters"),
            rx.button("Clear", on_click=SelectionState.clear, size="1", variant="soft",
                      aria_label="Clear chapter selection"),
        ),
    )


def _status_filter(status: str, label: str) -> rx.Component:
    on = OutlineState.filter_statuses.contains(status)
    return rx.button(label, on_click=OutlineState.toggle_status_filter(status), aria_pressed=rx.cond(on, "true", "false"),
                     variant=rx.cond(on, "solid", "outline"), size="1")


def filter_bar() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.button("Expand all", on_click=OutlineState.expand_all, size="1", variant="soft"),
            rx.button("Collapse all", on_click=OutlineState.collapse_all, size="1", variant="soft"),
            rx.spacer(),
            rx.input(
                value=OutlineState.filter_text,
                on_change=OutlineState.apply_filter,
                debounce_timeout=250,
                placeholder="Filter by title or file name",
                aria_label="Filter videos",
                size="1",
                width="16em",
            ),
            _status_filter("failed", "Failed"),
            _status_filter("uploading", "Uploading"),
            rx.cond(OutlineState.filtering,
                    rx.button("Clear filter", on_click=OutlineState.clear_filter, size="1", variant="ghost")),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.cond(
            OutlineState.filtering,
            rx.text(
                rx.cond(OutlineState.hits.length() > 0, "Showing only the videos that match.",
                        "No video matches the filter."),
                size="2", color_scheme="gray", role="status",
            ),
        ),
        width="100%",
        spacing="1",
    )


def player() -> rx.Component:
    return rx.cond(
        PlayerState.playing_id != "",
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.heading("Now playing: " + PlayerState.playing_title, size="3", as_="h3"),
                    rx.spacer(),
                    rx.button("Close player", on_click=PlayerState.stop_playing, size="1", variant="soft"),
                    width="100%",
                ),
                signed_video(PlayerState.playing_id, PlayerState.playing_src, PlayerState.playing_poster,
                             label="Video player", auto_play=True,
                             style={"width": "100%", "max_height": "420px", "background": "black"}),
                width="100%",
            ),
            width="100%",
        ),
    )


def undo_toast() -> rx.Component:
    """The last edit's "Undo", for a few seconds (its own State: appearing re-renders nothing else)."""
    return rx.cond(
        UndoState.label != "",
        rx.hstack(
            rx.text(UndoState.label, size="2"),
            rx.button("Undo", on_click=UndoState.undo, size="1", variant="soft"),
            rx.icon_button(rx.icon("x", size=14), on_click=UndoState.dismiss, aria_label="Dismiss", size="1",
                           variant="ghost", color_scheme="gray"),
            role="status",
            key=UndoState.offer,  # a new offer is a new element: its fade-out starts again
            class_name="undo-toast",
            style={"animation_delay": f"{UNDO_SECONDS}s"},
            align="center",
            spacing="3",
        ),
    )
