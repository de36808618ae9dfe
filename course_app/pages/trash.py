"""A course's Trash (/courses/[course_id]/trash): deleted videos and chapters with
their size and dates, Restore, and "Delete forever" after a confirmation."""

from __future__ import annotations

import reflex as rx

from course_app.components.layout import confirm_delete, error_callout, loading, page
from course_app.state.trash import TrashRow, TrashState


def _row(row: TrashRow) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.vstack(
                rx.hstack(
                    rx.badge(row.kind, color_scheme=rx.cond(row.kind == "chapter", "violet", "gray")),
                    rx.text(row.title, weight="medium"),
                    align="center",
                ),
                rx.text(row.where + " · " + row.size, size="2", color_scheme="gray"),
                rx.text("Deleted " + row.deleted + " · deleted for good on " + row.expires, size="1",
                        color_scheme="gray"),
                spacing="1",
            ),
            rx.spacer(),
            rx.button("Restore", on_click=TrashState.restore(row.kind, row.id), variant="soft",
                      aria_label="Restore " + row.title),
            confirm_delete(
                trigger_label="Delete forever",
                aria_label="Delete forever " + row.title,
                title="Delete forever?",
                description=rx.cond(
                    row.kind == "chapter",
                    "“" + row.title + "” and every video of it in the trash will be deleted for good, with their "
                    "stored files. This cannot be undone.",
                    "“" + row.title + "” will be deleted for good, with its stored file. This cannot be undone.",
                ),
                confirm_label="Delete forever",
                on_confirm=TrashState.purge(row.kind, row.id),
            ),
            align="center",
            width="100%",
        ),
        width="100%",
        data_testid="trash-item",
    )


def _done() -> rx.Component:
    return rx.cond(
        TrashState.done != "",
        rx.callout.root(rx.callout.text(TrashState.done), color_scheme="green", role="status", width="100%"),
    )


def _contents() -> rx.Component:
    return rx.vstack(
        rx.heading("Trash · " + TrashState.course_title, size="7", as_="h1"),
        rx.link("← Back to the course", href="/courses/" + TrashState.course_id, size="2"),
        rx.callout.root(
            rx.callout.text(
                "Deleted videos and chapters stay here for " + TrashState.keep_days.to_string() + " days, then they "
                "are deleted for good. Their files are kept until then, so they still count toward your storage "
                "quota: " + TrashState.trashed_size + " in this course's trash."
            ),
            color_scheme="blue",
            width="100%",
            data_testid="trash-quota-note",
        ),
        error_callout(TrashState.error, on_dismiss=TrashState.dismiss),
        _done(),
        rx.cond(
            TrashState.rows.length() > 0,
            rx.vstack(rx.foreach(TrashState.rows, _row), width="100%", spacing="2"),
            rx.text("The trash is empty.", color_scheme="gray"),
        ),
        width="100%",
        spacing="4",
    )


def trash_page() -> rx.Component:
    return page(
        rx.cond(
            ~TrashState.loaded,
            loading("Loading the trash…"),
            rx.cond(TrashState.load_error != "", error_callout(TrashState.load_error), _contents()),
        ),
    )
