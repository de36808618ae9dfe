"""What an anonymous visitor can cost through Reflex's socket (/_event), capped
before Reflex sees the connection:

- at most ``socket_connections_per_ip`` open sockets per client IP, counted in Redis
  across every app process when ``COURSE_REDIS_URL`` is set, else in this process
  (api/socket_counts.py; the address is the one behind ``COURSE_TRUSTED_PROXY_HOPS``
  reverse proxies: api/client_address.py); one more is refused at the handshake: a 429
  with the API's JSON error where the server speaks ASGI's WebSocket denial answer
  (Granian does), else closed before it is accepted;
- only the WebSocket transport: the app's front end never polls, and an engine.io
  polling session would be a socket this count does not see.

What a connection leaves behind when it closes is course_app/state/socket_sessions.py's
part (States that never logged in are forgotten soon after)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from course_app.api.client_address import client_address
from course_app.api.errors import error_response
from course_app.api.socket_counts import SocketCounts
from course_app.socket_tabs import tab_connected

SOCKET_PATH = "/_event"
TOO_MANY_SOCKETS = "Too many open connections from your address. Close a tab and try again."


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
                await error_response(400, "The socket speaks WebSocket only.")(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        place = await self.counts.take(client_address(scope))
        if place is None:
            await receive()  # websocket.connect
            await _refuse_socket(scope, send)
            return
        tab_connected((parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0])
        try:
            await self.app(scope, receive, send)
        finally:
            await self.counts.give_back(place)


async def _refuse_socket(scope: Scope, send: Send) -> None:
    """Refuse the handshake before it is accepted: with a 429 and the API's JSON error
    where the server offers the denial answer, else by closing it (HTTP 403)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    refusal = error_response(429, TOO_MANY_SOCKETS, retryable=True)
    await send({"type": "websocket.http.response.start", "status": refusal.status_code,
                "headers": refusal.raw_headers})
    await send({"type": "websocket.http.response.body", "body": refusal.body})


def with_socket_guard(app: ASGIApp) -> ASGIApp:
    """For rx.App(api_transformer=[...]): caps the socket's connections."""
    return SocketGuard(app)
