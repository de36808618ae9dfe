"""Who is at the keyboard: resolved from the HttpOnly session cookie on every
sensitive event, never from a value cached in State."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from urllib.parse import quote

import reflex as rx
from reflex.middleware import Middleware

from course_app.auth.tokens import live_session_and_user, session_token_from_cookie_header, user_for_session_token
from course_app.db import run_in_session, session_scope
from course_app.errors import DomainError
from course_app.models import User
from course_app.socket_tabs import tab_identity
from course_app.state.socket_limits import user_over_limit

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong while saving. Your last change was undone; try again."


def _user_for_cookie(cookie_header: str) -> User | None:
    with session_scope() as session:
        return user_for_session_token(session=session, token=session_token_from_cookie_header(cookie_header))


call_service = run_in_session  # a service function in its own transaction, off the event loop


MAX_ID_LENGTH = 64


def is_id(value: object) -> bool:
    """A handler argument that can be an id (ids are checked again by the services)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def route_course_id(state: rx.State) -> str:
    """The course id in the page's URL (/courses/[course_id])."""
    return str(state.router.page.params.get("course_id", ""))[:MAX_ID_LENGTH]


def requires_user(handler):
    """An event handler that needs a logged-in user (the one guard of every door in
    State): the user is resolved from the socket's session cookie on each call and
    handed to the handler as its first argument; without one the tab goes to log in
    and the handler does not run. Each call spends one of the user's requests, the
    same budget the API routes spend; past the limit the tab says so and the
    handler does not run. Put it under ``@rx.event``."""

    @functools.wraps(handler)
    async def guarded(self, *args, **kwargs):
        user = await current_user(self)
        if user is None:
            yield login_redirect(self.router.url.path)
            return
        if await user_over_limit(self, user.id):
            return
        result = handler(self, user, *args, **kwargs)
        if inspect.isasyncgen(result):
            async for update in result:
                yield update
            return
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            yield result

    # Reflex reads the event's arguments from the signature: hide ``user`` from it.
    signature = inspect.signature(handler)
    params = list(signature.parameters.values())
    guarded.__signature__ = signature.replace(parameters=[params[0], *params[2:]])
    guarded.__annotations__ = {k: v for k, v in handler.__annotations__.items() if k != "user"}
    return guarded


def login_redirect(path: str) -> rx.event.EventSpec:
    return rx.redirect(f"/login?next={quote(path or '/dashboard', safe='/')}")


# The user IdentityGuard resolved for the event being processed, with the cookie it
# came from: the event's first ``current_user`` takes it instead of asking the
# database again (one lookup per event); any later call asks the database.
_resolved_for_event: contextvars.ContextVar[tuple[str, User | None] | None] = contextvars.ContextVar(
    "resolved_for_event", default=None)


async def current_user(state: rx.State) -> User | None:
    """Resolve the user from the socket's session cookie (fixed at connect time)."""
    cookie = state.router.headers.cookie
    resolved = _resolved_for_event.get()
    if resolved is not None:
        _resolved_for_event.set(None)
        if resolved[0] == cookie:
            return resolved[1]
    return await asyncio.to_thread(_user_for_cookie, cookie)


class SessionState(rx.State):
    """The header's view of the user. Only display data: never trusted for access."""

    user_email: str = ""
    user_role: str = ""
    # Which session cookie this tab's States were filled for (a hash; see IdentityGuard).
    _identity: str = ""

    async def _refresh_identity(self) -> User | None:
        user = await current_user(self)
        self.user_email = user.email if user else ""
        self.user_role = user.role if user else ""
        return user

    @rx.event
    async def require_login(self):
        """on_load of every private page: go to the log-in page without a session."""
        if await self._refresh_identity() is None:
            return login_redirect(self.router.url.path)

    @rx.event
    async def session_ended(self):
        """Sent by the server (course_app/state/socket_sessions.py) to a tab whose
        log-in ended while it was open: IdentityGuard has already emptied its States
        (and sent that) before this runs; the tab goes to the log-in page."""
        if await self._refresh_identity() is None and self.router.url.path not in ("/login", "/signup"):
            return login_redirect(self.router.url.path)

    @rx.event
    async def redirect_if_logged_in(self):
        """on_load of the log-in and sign-up pages."""
        if await self._refresh_identity() is not None:
            return rx.redirect("/dashboard")


def user_message(error: Exception) -> str:
    """The text to show for a failed action; details of unexpected errors stay in the log."""
    if isinstance(error, DomainError):
        return str(error)
    log.exception("Unexpected error in a State handler", exc_info=error)
    return UNEXPECTED


# One tab, one identity ------------------------------------------------------------


def _session_identity(cookie_header: str | None) -> tuple[str, User | None]:
    """Which log-in a socket's cookie stands for right now (the session's row, or
    "anonymous" once it no longer resolves: logged out, expired, revoked), and its user."""
    with session_scope() as session:
        found = live_session_and_user(session=session, token=session_token_from_cookie_header(cookie_header))
    return (f"session:{found[0]}", found[1]) if found is not None else ("anonymous", None)


def _app_states() -> list[type[rx.State]]:
    found, pending = [], list(rx.State.get_substates())
    while pending:
        cls = pending.pop()
        pending.extend(cls.get_substates())
        if cls.__module__.startswith("course_app."):
            found.append(cls)
    return found


class IdentityGuard(Middleware):
    """Empties every course_app State of a tab whose log-in is not the one its
    States were filled for.

    The server keeps a tab's States under the tab's client token, which survives
    log-out and log-in in the same tab; the next page load's hydration sends the
    whole stored tree before any on_load runs. Without this, the page after
    log-out (or another user's log-in in the same tab) received the previous
    user's e-mail, courses, videos and even a just-created API token value.

    The identity is the session as the database holds it now, not the socket's
    cookie: that cookie is fixed when the socket connects and outlives a log-out,
    so a still-open tab's next hydrate would otherwise get the whole snapshot.
    Runs before every event (hydrate included), with the cookie of the socket
    that sent it; one indexed lookup, whose user the event's handler gets
    (``current_user``)."""

    async def preprocess(self, app, state, event):
        cookie = state.router.headers.cookie
        identity, user = await asyncio.to_thread(_session_identity, cookie)
        _resolved_for_event.set((cookie, user))
        tab_identity(state.router.session.client_token, logged_in=identity != "anonymous")
        session = await state.get_state(SessionState)
        if session._identity != identity:
            for cls in _app_states():
                (await state.get_state(cls)).reset()
            session._identity = identity
        return None
