"""Rate limits on the socket door, the same as on the API door.

Two limits: the per-user budget the API routes spend (``enforce_user_rate_limit_async``,
one budget for both doors, checked in ``requires_user``), and a per-connection
limit on events of any kind (``SocketEventLimit``, before anything else runs, so a
flood costs neither a database query nor a State handler). A refused event is not
processed; the tab shows the API's own 429 message in the banner every page has."""

from __future__ import annotations

import reflex as rx
from reflex.istate.delta import _resolve_delta
from reflex.istate.proxy import StateProxy
from reflex.middleware import Middleware
from reflex.state import StateUpdate

from course_app.rate_limits import enforce_rate_limit_async, enforce_user_rate_limit_async
from course_app.errors import RateLimited
from course_app.settings import get_settings


class RateLimitState(rx.State):
    """The one message a refused event leaves (shown by components/layout.py)."""

    message: str = ""

    @rx.event
    def dismiss(self):
        self.message = ""


async def _show(state: rx.State, error: RateLimited) -> None:
    if isinstance(state, StateProxy):  # a background handler: change State under its lock
        async with state:
            await _set_message(state, str(error))
    else:
        await _set_message(state, str(error))


async def _set_message(state: rx.State, message: str) -> None:
    notice = await state.get_state(RateLimitState)
    if notice.message != message:
        notice.message = message


async def user_over_limit(state: rx.State, user_id: int) -> bool:
    """Spend one of the user's requests; when none is left, say so in the tab and answer True."""
    try:
        await enforce_user_rate_limit_async(user_id)
    except RateLimited as error:
        await _show(state, error)
        return True
    return False


class SocketEventLimit(Middleware):
    """Refuses a connection's events past ``socket_event_rate_limit`` (per socket id)."""

    async def preprocess(self, app, state, event):
        connection = state.router.session.session_id or state.router.session.client_token
        try:
            await enforce_rate_limit_async(get_settings().socket_event_rate_limit, "socket", connection, what="API")
        except RateLimited as error:
            await _show(state, error)
            delta = await _resolve_delta(state.get_delta())
            state._clean()
            return StateUpdate(delta=delta, events=[])
        return None
