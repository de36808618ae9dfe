"""Open tabs follow their log-in: when a session ends (log-out, log-out everywhere,
expiry, a row deleted by hand), every socket still open with that session's cookie
is reset and sent to the log-in page within a second.

Design: each app process watches only the sockets it holds itself. Every
WATCH_INTERVAL it asks the database which of their session cookies still belong
to an unexpired session (one indexed query per 500 distinct sessions) and sends
each socket whose session is gone one server-side event, SessionState.session_ended.
That event passes through IdentityGuard like any other, which empties the tab's
States (the session no longer resolves) before anything is sent; the handler then
redirects to /login. A log-out in this process wakes the watcher at once
(course_app/auth/session_events.py).

Why the database and not a message bus: the sessions live there, so an ending is
seen however it happened (a log-out in another process, expiry, the CLI, a row
deleted by hand) with nothing else running, which the embedded default requires;
with several processes (the Redis state manager) each still reaches its own
sockets, and the cost is one small query per process per interval, whatever the
number of users. A Redis publish on log-out would only save the wait for the
next round (at most WATCH_INTERVAL) and would miss expiry and direct deletes.

The same watch sees sockets close: a tab that was not logged in when its socket
closed (no session cookie, or one whose session had ended) has its States
forgotten ``anonymous_state_seconds`` later unless it connected again, instead of
being kept for Reflex's one-hour token lifetime (course_app/state/forget_states.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from reflex_base.event import Event

from course_app.auth.session_events import wait_for_ended_sessions
from course_app.auth.tokens import live_session_hashes, session_token_from_cookie_header, token_hash
from course_app.db import session_scope
from course_app.settings import get_settings
from course_app.socket_tabs import is_seen, take_closed
from course_app.state.forget_states import forget_tabs

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.4  # seconds; a session's end reaches its open tabs within about this
# A forgotten tab is swept once more this much later: a write the disk manager had
# already started when the States were forgotten lands within its 2 s delay.
SWEEP_AGAIN_SECONDS = 5


@dataclass
class _Socket:
    token: str  # the tab's client token
    session_hash: str  # the hash of the session cookie it connected with


class SocketSessions:
    """This process's open sockets and their session cookies; which were already told
    that their session ended; and the tabs whose States are to be forgotten."""

    def __init__(self) -> None:
        self._known: dict[str, _Socket | None] = {}  # sid -> socket (None: no session cookie)
        self._told: set[str] = set()  # sids sent session_ended
        self._forget_at: dict[str, tuple[float, bool]] = {}  # client token -> (when its States go, swept once)

    def open_sockets(self, app) -> dict[str, _Socket]:
        """The open sockets that carry a session cookie; notes the ones that closed."""
        namespace = app.event_namespace
        if namespace is None or app.sio is None:
            return {}
        linked = dict(namespace.sid_to_token)
        for sid, token in linked.items():
            if sid not in self._known:
                environ = app.sio.get_environ(sid, namespace.namespace) or {}
                cookie_token = session_token_from_cookie_header(environ.get("HTTP_COOKIE"))
                has_session = cookie_token is not None and len(cookie_token) <= 200
                self._known[sid] = _Socket(token=token, session_hash=token_hash(cookie_token)) if has_session else None
        for gone in set(self._known) - set(linked):
            self._known.pop(gone, None)
            self._told.discard(gone)
        self._note_closed_tabs(set(linked.values()))
        return {sid: socket for sid, socket in self._known.items() if socket is not None}

    def _note_closed_tabs(self, connected: set[str]) -> None:
        due = time.monotonic() + get_settings().anonymous_state_seconds
        for token, logged_in in take_closed(connected).items():
            if not logged_in:
                self._forget_at.setdefault(token, (due, False))
        for token in connected & set(self._forget_at):
            del self._forget_at[token]  # the tab came back

    async def check(self, app) -> int:
        """Send session_ended to every open socket whose session ended; how many were told."""
        sockets = {sid: s for sid, s in self.open_sockets(app).items() if sid not in self._told}
        await self._forget_due(app)
        if not sockets:
            return 0
        hashes = sorted({s.session_hash for s in sockets.values()})
        live = await asyncio.to_thread(_live, hashes)
        ended = {sid: s for sid, s in sockets.items() if s.session_hash not in live}
        from course_app.state.session import SessionState

        name = SessionState.get_full_name() + ".session_ended"
        for sid, socket in ended.items():
            self._told.add(sid)
            await app.event_processor.enqueue(socket.token, Event(name=name))
        return len(ended)

    async def _forget_due(self, app) -> None:
        now = time.monotonic()
        for token in [token for token in self._forget_at if is_seen(token)]:
            del self._forget_at[token]  # on a socket again
        due = [token for token, (when, _) in self._forget_at.items() if when <= now]
        for token in await forget_tabs(app, due) if due else ():
            if self._forget_at[token][1]:
                del self._forget_at[token]
            else:
                self._forget_at[token] = (now + SWEEP_AGAIN_SECONDS, True)


def _live(hashes: list[str]) -> set[str]:
    with session_scope() as session:
        return live_session_hashes(session=session, hashes=hashes)


async def watch_socket_sessions(app) -> None:
    """Lifespan task: reset this process's tabs whose session ended."""
    sessions = SocketSessions()
    while True:
        try:
            await sessions.check(app)
        except Exception:
            log.exception("Checking the sessions of open sockets failed; trying again")
        await wait_for_ended_sessions(WATCH_INTERVAL)
