"""Around every HTTP request (pages, assets, API, Reflex's routes): a request id,
one log line and the Prometheus counts.

The id is the incoming ``X-Request-ID`` when it looks sane (1-128 letters, digits,
``.``, ``_``, ``-``, ``:``), else a new one; it is echoed on the answer, set for the
request's log records (logs.request_id) and written in the request's line:
``{"message": "request", "method", "path", "route", "status", "ms", "request_id"}``.
The route is the API route's template (``/api/uploads/{upload_id}/parts/{number}``)
or a fixed name, so metrics labels stay few. A pure ASGI middleware: bodies stream
through untouched (uploads are counted as they pass)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course_app import logs, metrics
from course_app.api.asgi_wrap import body_bytes, edited_send, watched_receive
from course_app.settings import get_settings

log = logging.getLogger("course_app.access")

HEADER = b"x-request-id"
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REFLEX_ROUTES = ("/_event", "/_upload", "/ping", "/_health", "/_all_routes")


def incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            text = value.decode("latin-1")
            return text if SANE_ID.fullmatch(text) else None
    return None


def route_name(scope: Scope) -> str:
    """A bounded name for metrics: the API route's template, else a fixed word."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str) and template.startswith("/api"):
        return template
    path = scope.get("path", "")
    for prefix in REFLEX_ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    if path.startswith("/api/"):
        return "/api (no route)"
    return "pages"


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app  # the wrapped app stays reachable (tests/security/route_table.py walks it)
        self.json_lines = get_settings().json_logs
        if self.json_lines:
            logs.configure(get_settings())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_id(scope) or uuid.uuid4().hex
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        status = 500  # unless an answer starts
        received = 0

        def count(message: Message) -> None:
            nonlocal received
            received += body_bytes(message)

        async def with_id(message: Message) -> Message:
            nonlocal status
            status = message["status"]
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
            return {**message, "headers": [*headers, (HEADER, request_id.encode())]}

        try:
            await self.app(scope, watched_receive(receive, count), edited_send(send, with_id))
        finally:
            self._record(scope, status, time.perf_counter() - started, received, request_id)
            logs.request_id.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float, received: int, request_id: str) -> None:
        route = route_name(scope)
        method = scope.get("method", "")
        try:
            metrics.observe_request(method=method, route=route, status=status, seconds=seconds, body_bytes=received)
        except Exception:  # counting must never break an answer
            log.warning("Could not count a request", exc_info=True)
        if self.json_lines:
            log.info("request", extra={logs.FIELDS_ATTRIBUTE: {
                "method": method, "path": scope.get("path", ""), "route": route, "status": status,
                "ms": round(seconds * 1000, 1), "request_id": request_id}})


def with_request_log(app: ASGIApp) -> ASGIApp:
    """For rx.App(api_transformer=[...]): outermost, around every request."""
    return RequestLog(app)
