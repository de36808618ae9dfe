"""What an anonymous visitor can cost through Reflex's socket (/_event), capped
before Reflex sees the connection:

- at most ``socket_connections_per_ip`` open sockets per client IP, counted in Redis
  across every app process when ``COURSE_REDIS_URL`` is set, else in this process
  (api/socket_counts.py; the address is the one behind ``COURSE_TRUSTED_PROXY_HOPS``
  reverse proxies: api/client_address.py); one more is refused at the handshake;
- only the WebSocket transport: the app's front end never polls, and an engine.io
  polling session would be a socket this count does not see.

What a connection leaves behind when it closes is course_app/state/socket_sessions.py's
part (States that never logged in are forgotten soon after)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from course_app.api.client_address import client_address
from course_app.api.socket_counts import SocketCounts
from course_app.socket_tabs import tab_connected

SOCKET_PATH = "/_event"


class SocketGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counts = SocketCounts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope.get("path", "").startswith(SOCKET_PATH):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            transport = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("transport")
            if transport != ["websocket"]:
                await _refuse_polling(send)
                return
            await self.app(scope, receive, send)
            return
        place = await self.counts.take(client_address(scope))
        if place is None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake is refused
            return
        tab_connected((parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0])
        try:
            await self.app(scope, receive, send)
        finally:
            await self.counts.give_back(place)


async def _refuse_polling(send: Send) -> None:
    body = json.dumps({"error": "The socket speaks WebSocket only.", "code": "invalid_input",
                       "retryable": False}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def with_socket_guard(app: ASGIApp) -> ASGIApp:
    """For rx.App(api_transformer=[...]): caps the socket's connections."""
    return SocketGuard(app)
