"""The log-in and sign-up pages' store: the message and e-mail a failed attempt
sent back in the redirect (messages are signed, so a crafted link shows nothing)."""

from __future__ import annotations

import reflex as rx

from course_app.auth.tokens import notice_is_authentic, safe_next
from course_app.settings import get_settings

LOGIN_REQUIRED = "Log in to continue."


class AuthFormState(rx.State):
    message: str = ""
    email: str = ""
    next_path: str = ""
    # Supabase sign-in (public values: the project's URL and the hosted sign-in's provider).
    supabase_url: str = ""
    supabase_provider: str = ""

    @rx.event
    def load(self):
        params = self.router.url.query_parameters
        message, signature = params.get("message", ""), params.get("sig", "")
        self.message = message if message and notice_is_authentic(message, signature) else ""
        if not self.message and params.get("next"):
            self.message = LOGIN_REQUIRED
        self.email = params.get("email", "")[:254]
        self.next_path = safe_next(params.get("next", ""))
        settings = get_settings()
        self.supabase_url = settings.supabase_url
        self.supabase_provider = settings.supabase_provider
