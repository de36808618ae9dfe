"""The frame every page shares: header with the user and log-out, and a body."""

from __future__ import annotations

import reflex as rx

from course_app.components.elements import post_form
from course_app.state.session import SessionState
from course_app.state.socket_limits import RateLimitState


def hydration_marker() -> rx.Component:
    """Tells end-to-end tests that the page is connected and live."""
    return rx.el.span(rx.cond(rx.State.is_hydrated, "true", "false"), id="hydrated", hidden=True)


def log_out_form(label: str, action: str, **button_props) -> rx.Component:
    """A plain form posting to a log-out route: the route deletes the HttpOnly cookie."""
    return post_form(rx.button(label, type="submit", variant="soft", **button_props), action=action, method="post")


def header() -> rx.Component:
    return rx.el.header(
        rx.hstack(
            rx.link(
                rx.hstack(rx.image(src="/logo.svg", alt="", width="28px", height="28px"),
                          rx.heading("Course Studio", size="5"), align="center", spacing="2"),
                href="/dashboard",
                underline="none",
            ),
            rx.spacer(),
            rx.cond(
                SessionState.user_email != "",
                rx.hstack(
                    rx.link("My courses", href="/dashboard"),
                    rx.link("Settings", href="/settings"),
                    rx.text(SessionState.user_email, size="2", color_scheme="gray", aria_label="Signed in as"),
                    log_out_form("Log out", "/api/auth/logout", size="2"),
                    spacing="4",
                    align="center",
                ),
            ),
            align="center",
            width="100%",
        ),
        style={"padding": "12px 24px", "border_bottom": "1px solid var(--gray-a5)"},
    )


def page(*children: rx.Component, title: str | rx.Var = "") -> rx.Component:
    return rx.fragment(
        header(),
        rx.el.main(
            rx.container(rx.vstack(error_callout(RateLimitState.message, on_dismiss=RateLimitState.dismiss),
                                   *children, spacing="5", width="100%"), size="3", padding_y="24px"),
        ),
        hydration_marker(),
    )


def error_callout(message: rx.Var, on_dismiss=None, **props) -> rx.Component:
    """A visible, dismissable error next to what caused it."""
    children = [rx.callout.text(message)]
    if on_dismiss is not None:
        children.append(rx.button("Dismiss", on_click=on_dismiss, size="1", variant="ghost", margin_left="auto"))
    return rx.cond(
        message != "",
        rx.callout.root(
            rx.callout.icon(rx.icon("triangle_alert")),
            *children,
            color_scheme="red",
            role="alert",
            width="100%",
            **props,
        ),
    )


def loading(label: str = "Loading…") -> rx.Component:
    return rx.hstack(rx.spinner(), rx.text(label, color_scheme="gray"), align="center", role="status")


def confirm_delete(
    *,
    trigger_label: str,
    aria_label: rx.Var | str,
    title: str,
    description: rx.Var | str,
    confirm_label: str,
    on_confirm,
    size: str = "2",
) -> rx.Component:
    """A delete button that asks first."""
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(trigger_label, color_scheme="red", variant="soft", aria_label=aria_label, size=size)
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(description),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button(confirm_label, color_scheme="red", on_click=on_confirm)),
                spacing="3",
                justify="end",
                margin_top="16px",
            ),
        ),
    )
