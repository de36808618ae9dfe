"""Account settings: personal API tokens for scripts, and log-out everywhere."""

from __future__ import annotations

import reflex as rx

from course_app.models import TOKEN_NAME_MAX
from course_app.components.layout import confirm_delete, error_callout, loading, log_out_form, page
from course_app.state.settings_page import TokenRow, TokensState


def _token_row(token: TokenRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(token.name),
        rx.table.cell(rx.code(token.prefix + "…")),
        rx.table.cell(token.created),
        rx.table.cell(token.last_used),
        rx.table.cell(
            confirm_delete(
                trigger_label="Revoke",
                aria_label="Revoke token " + token.name,
                title="Revoke this token?",
                description="Scripts using “" + token.name + "” will stop working at once.",
                confirm_label="Revoke token",
                on_confirm=TokensState.revoke_token(token.id),
            )
        ),
    )


def _new_token_notice() -> rx.Component:
    return rx.cond(
        TokensState.new_token != "",
        rx.callout.root(
            rx.vstack(
                rx.callout.text("Copy your new token now: it will not be shown again."),
                rx.code(TokensState.new_token, id="new-token", style={"word_break": "break-all"}),
                rx.button("Done", on_click=TokensState.clear_new_token, size="1"),
                spacing="2",
            ),
            color_scheme="green",
            width="100%",
        ),
    )


def _sessions_section() -> rx.Component:
    """A plain form (the route deletes this browser's HttpOnly cookie too); every open
    tab of every session is reset within a second."""
    return rx.vstack(
        rx.heading("Sessions", size="5", as_="h2"),
        rx.text("Log out on every browser and device where you are logged in, this one included. "
                "API tokens keep working.", size="2", color_scheme="gray"),
        log_out_form("Log out everywhere", "/api/auth/logout-everywhere", color_scheme="red"),
        spacing="3",
        width="100%",
    )


def settings_page() -> rx.Component:
    return page(
        rx.heading("Settings", size="7", as_="h1"),
        rx.heading("API tokens", size="5", as_="h2"),
        rx.text(
            "Scripts send a token as 'Authorization: Bearer <token>'. Give each script its own token and revoke it when done.",
            size="2",
            color_scheme="gray",
        ),
        _new_token_notice(),
        error_callout(TokensState.error),
        rx.form(
            rx.hstack(
                rx.input(
                    name="name",
                    placeholder="Token name, e.g. upload script",
                    aria_label="Token name",
                    max_length=TOKEN_NAME_MAX,
                    required=True,
                    width="100%",
                ),
                rx.button("Create token", type="submit"),
                width="100%",
            ),
            on_submit=TokensState.create_token,
            reset_on_submit=True,
            width="100%",
        ),
        rx.cond(
            ~TokensState.loaded,
            loading(),
            rx.cond(
                TokensState.tokens.length() > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *(rx.table.column_header_cell(h) for h in ("Name", "Starts with", "Created", "Last used", ""))
                        )
                    ),
                    rx.table.body(rx.foreach(TokensState.tokens, _token_row)),
                    width="100%",
                ),
                rx.text("You have no API tokens.", color_scheme="gray"),
            ),
        ),
        _sessions_section(),
    )
