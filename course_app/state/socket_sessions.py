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
next round (at most WATCH_INTERVAL) and would miss expiry and direct deletes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from reflex_base.event import Event

from course_app.auth.session_events import wait_for_ended_sessions
from course_app.auth.tokens import live_session_hashes, session_token_from_cookie_header, token_hash
from course_app.db import session_scope

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.4  # seconds; a session's end reaches its open tabs within about this


@dataclass
class _Socket:
    token: str  # the tab's client token
    session_hash: str  # the hash of the session cookie it connected with


class SocketSessions:
    """This process's open sockets that carry a session cookie, and which of them
    were already told that their session ended."""

    def __init__(self) -> None:
        self._known: dict[str, str | None] = {}  # sid -> session hash (None: no session cookie)
        self._told: set[str] = set()  # sids sent session_ended

    def open_sockets(self, app) -> dict[str, _Socket]:
        namespace = app.event_namespace
        if namespace is None or app.sio is None:
            return {}
        sockets: dict[str, _Socket] = {}
        for sid, token in list(namespace.sid_to_token.items()):
            if sid not in self._known:
                environ = app.sio.get_environ(sid, namespace.namespace) or {}
                cookie_token = session_token_from_cookie_header(environ.get("HTTP_COOKIE"))
                self._known[sid] = token_hash(cookie_token) if cookie_token and len(cookie_token) <= 200 else None
            if (session_hash := self._known[sid]) is not None:
                sockets[sid] = _Socket(token=token, session_hash=session_hash)
        for gone in set(self._known) - set(namespace.sid_to_token):
            self._known.pop(gone, None)
            self._told.discard(gone)
        return sockets

    async def check(self, app) -> int:
        """Send session_ended to every open socket whose session ended; how many were told."""
        sockets = {sid: s for sid, s in self.open_sockets(app).items() if sid not in self._told}
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
