"""The app class: Reflex's own, with the security headers (api/security_headers.py)
wrapped around the whole backend it makes. Reflex puts its CORS middleware outside
every ``api_transformer``, and that middleware answers a CORS preflight (OPTIONS with
Origin and Access-Control-Request-Method) itself; wrapped here, outside it, those
answers carry the headers too, like every other."""

from __future__ import annotations

import reflex as rx
from starlette.types import ASGIApp

from course_app.api.security_headers import with_security_headers


class SecuredApp(rx.App):
    def __call__(self) -> ASGIApp:
        return with_security_headers(super().__call__())
