"""A cap on request bodies for every API route that does not stream its body.

FastAPI and Starlette read a JSON or form body whole into memory before the
route runs, with no limit of their own: without this cap anyone, logged in or
not, could make the server hold gigabytes (a log-in with a 1 GiB password). The
two upload routes stream and count their bytes themselves, so they are exempt.
"""

from __future__ import annotations

import asyncio
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course_app.api.asgi_wrap import body_bytes, edited_send, watched_receive
from course_app.api.errors import error_response

MAX_BODY_BYTES = 1024 * 1024
DRAIN_FACTOR = 8  # a body up to 8x the cap is read and dropped, so its client sees the 413
DRAIN_SECONDS = 10  # at most this long, for a refusal of a streamed route (below)
STREAMED_ROUTES = re.compile(r"^/api/upload$|^/api/uploads/[^/]+/parts/[^/]+$")
TOO_LARGE = "The request body is too large."


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413, detail=TOO_LARGE)


class BodyLimit:
    """Refuse a body over ``max_bytes``: at once when Content-Length says so,
    else as soon as that many bytes have arrived (chunked bodies)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        if STREAMED_ROUTES.match(path):
            await self.app(scope, *_draining_if_unread(scope, receive, send))
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            if length.isdigit() and int(length) <= self.max_bytes * DRAIN_FACTOR:
                await _drop_body(receive)
            response = error_response(413, TOO_LARGE)
            await response(scope, receive, send)
            return
        received = 0

        def count(message: Message) -> None:
            nonlocal received
            received += body_bytes(message)
            if received > self.max_bytes:
                raise BodyTooLarge()

        await self.app(scope, watched_receive(receive, count), send)


def _draining_if_unread(scope: Scope, receive: Receive, send: Send) -> tuple[Receive, Send]:
    """A streamed route may answer (a refusal: 401, 403, 429 ...) before it has read
    the body. The rest of the body would still be on the connection, so the server
    would close it, and a client that sends its next request on that connection
    meets a closed socket. A body up to the JSON routes' drain size is read and
    dropped before the answer goes out, so the connection stays usable."""
    length = dict(scope.get("headers", [])).get(b"content-length", b"")
    unread = length.isdigit() and 0 < int(length) <= MAX_BODY_BYTES * DRAIN_FACTOR

    def seen(message: Message) -> None:
        nonlocal unread
        if message["type"] != "http.request" or not message.get("more_body", False):
            unread = False

    async def drained_first(message: Message) -> Message:
        nonlocal unread
        # Not for a 413: it is sent before the body on purpose, to a client that may
        # wait for it before sending more. And never longer than DRAIN_SECONDS.
        if unread and message["status"] != 413:
            unread = False
            try:
                async with asyncio.timeout(DRAIN_SECONDS):
                    await _drop_body(receive)
            except TimeoutError:
                pass
        return message

    return watched_receive(receive, seen), edited_send(send, drained_first)


async def _drop_body(receive: Receive) -> None:
    """Read the rest of the request's body and drop it."""
    while (await receive()).get("more_body", False):
        pass
