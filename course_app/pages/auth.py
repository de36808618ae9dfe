"""Log-in and sign-up: plain forms that post to /api/auth and follow its redirect."""

from __future__ import annotations

import reflex as rx

from course_app.components.elements import post_form
from course_app.components.layout import error_callout, page
from course_app.components.supabase import supabase_sign_in
from course_app.services.users import PASSWORD_MIN
from course_app.state.auth_forms import AuthFormState


def _field(label: str, name: str, **props) -> rx.Component:
    return rx.vstack(
        rx.el.label(label, html_for=name, style={"font_weight": "500"}),
        rx.input(id=name, name=name, width="100%", size="3", **props),
        spacing="1",
        width="100%",
    )


def _supabase_door() -> rx.Component:
    return rx.cond(AuthFormState.supabase_url != "",
                   supabase_sign_in(supabase_url=AuthFormState.supabase_url, provider=AuthFormState.supabase_provider))


def _auth_form(*, heading: str, action: str, submit: str, password_hint: str, footer: rx.Component,
               extra: rx.Component | None = None) -> rx.Component:
    return page(
        rx.center(
            rx.card(
                rx.vstack(
                    rx.heading(heading, size="6", as_="h1"),
                    error_callout(AuthFormState.message),
                    post_form(
                        rx.vstack(
                            _field("E-mail", "email", type="email", required=True, auto_complete="email",
                                   default_value=AuthFormState.email, key=AuthFormState.email),
                            _field("Password", "password", type="password", required=True,
                                   auto_complete=password_hint, min_length=PASSWORD_MIN if password_hint == "new-password" else None),
                            rx.el.input(type="hidden", name="next", value=AuthFormState.next_path),
                            rx.button(submit, type="submit", size="3", width="100%"),
                            spacing="4",
                            width="100%",
                        ),
                        action=action,
                        method="post",
                    ),
                    extra if extra is not None else rx.fragment(),
                    footer,
                    spacing="4",
                    width="100%",
                ),
                width="100%",
                max_width="420px",
                padding="24px",
            ),
            width="100%",
        )
    )


def login_page() -> rx.Component:
    return _auth_form(
        heading="Log in",
        action="/api/auth/login",
        submit="Log in",
        password_hint="current-password",
        footer=rx.text("New here? ", rx.link("Create an account", href="/signup"), size="2"),
        extra=_supabase_door(),
    )


def signup_page() -> rx.Component:
    return _auth_form(
        heading="Create your instructor account",
        action="/api/auth/signup",
        submit="Sign up",
        password_hint="new-password",
        footer=rx.text("Already have an account? ", rx.link("Log in", href="/login"), size="2"),
    )
