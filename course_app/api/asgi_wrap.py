"""The one shape of the pure ASGI middleware here (body_limit.py, request_log.py,
security_headers.py) that look at or change the messages passing through: a
``receive`` that shows each incoming message to a callback before the app gets it,
and a ``send`` that lets a callback change the start of the answer (its status and
headers) before it goes out. Bodies stream through untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Send

RESPONSE_START = ("http.response.start",)


def watched_receive(receive: Receive, see: Callable[[Message], None]) -> Receive:
    """``receive`` that passes each message to ``see`` first (which may raise to refuse it)."""

    async def wrapped() -> Message:
        message = await receive()
        see(message)
        return message

    return wrapped


def edited_send(send: Send, edit: Callable[[Message], Awaitable[Message]],
                types: tuple[str, ...] = RESPONSE_START) -> Send:
    """``send`` that sends each message of ``types`` as ``edit`` returns it, the others as they are."""

    async def wrapped(message: Message) -> None:
        if message["type"] in types:
            message = await edit(message)
        await send(message)

    return wrapped


def body_bytes(message: Message) -> int:
    """How many bytes of the request's body a received message carries."""
    return len(message.get("body", b"")) if message["type"] == "http.request" else 0
