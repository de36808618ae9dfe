"""Security headers on every answer of the backend: pages and static assets (the
built front end is served from the same ASGI app in production), API routes,
Reflex's own routes and CORS preflight answers (the middleware wraps the whole
backend: course_app/secured_app.py), and the socket's handshake as far as the server
lets an app shape it: a refused handshake (the denial answer of
api/socket_guard.py) carries them; the 101 that accepts a socket does not under
Granian, the production server, which writes that answer itself and drops the
headers of the app's ``websocket.accept`` (the headers are offered all the same;
a browser applies none of them to a socket anyway). And HEAD on an API route answers
like GET without a body (FastAPI routes know no HEAD, so it fell through to the
front end's HTML 404 page).

The Content-Security-Policy allows only what the app needs:
- scripts from the app itself, plus the inline scripts of the built pages (React
  Router's hydration context and stream, Reflex's colour-mode and scroll scripts),
  each by its SHA-256, read from the build when the first answer is made: no
  'unsafe-inline' and no 'unsafe-eval' for scripts;
- styles from the app and inline: Emotion (Reflex's styling) and Radix insert
  <style> elements and style attributes at run time, which no hash can name;
- the socket (ws/wss to the page's own host) and the API (same origin);
- images and fonts from the app and data: URLs (icons), video from the app, blob:
  and, with B2 storage, the short-lived download links B2 serves (videos, and
  thumbnails as posters);
- no frames of it anywhere (frame-ancestors 'none'), no plugins, forms and <base>
  only to the app itself.
The Swagger UI page (/api/docs) loads its script and styles from its CDN and
runs one inline script: it gets a policy of its own that allows just that."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course_app.api.asgi_wrap import edited_send
from course_app.settings import get_settings

INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
DOCS_PATHS = ("/api/docs", "/docs/oauth2-redirect")
SWAGGER_CDN = "https://cdn.jsdelivr.net"
B2_DOWNLOADS = "https://*.backblazeb2.com"

_DISCONNECT: Message = {"type": "http.disconnect"}
WEBSOCKET_START = ("websocket.accept", "websocket.http.response.start")
PERMISSIONS_POLICY = ("accelerometer=(), autoplay=(self), camera=(), display-capture=(), fullscreen=(self), "
                      "geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), "
                      "usb=(), browsing-topics=()")


def _frontend_dir() -> Path | None:
    try:
        from reflex.utils.prerequisites import get_web_dir
        from reflex_base import constants
    except ImportError:  # pragma: no cover - Reflex is always installed with the app
        return None
    return get_web_dir() / constants.Dirs.STATIC


def script_hashes(html: bytes) -> set[str]:
    """'sha256-…' of each inline script of an HTML page."""
    return {"'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
            for body in INLINE_SCRIPT.findall(html) if body.strip()}


@lru_cache(maxsize=1)
def inline_script_hashes() -> tuple[str, ...]:
    """The inline scripts of every built page (none before a build)."""
    folder = _frontend_dir()
    if folder is None or not folder.is_dir():
        return ()
    found: set[str] = set()
    for page in folder.rglob("*.html"):
        found |= script_hashes(page.read_bytes())
    return tuple(sorted(found))


def content_security_policy(host: str) -> str:
    socket = f"ws://{host} wss://{host}" if host else ""
    b2 = f" {B2_DOWNLOADS}" if get_settings().storage_backend == "b2" else ""  # signed links and posters
    media = "'self' blob:" + b2
    directives = {
        "default-src": "'self'",
        "script-src": " ".join(["'self'", *inline_script_hashes()]),
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:" + b2,
        "font-src": "'self' data:",
        "media-src": media,
        "connect-src": f"'self' {socket}".strip(),
        "worker-src": "'self' blob:",
        "manifest-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def docs_policy(page: bytes) -> str:
    """The Swagger UI page's own policy: its CDN, and its inline script by hash."""
    scripts = " ".join(sorted(script_hashes(page)))
    return (f"default-src 'self'; script-src 'self' {SWAGGER_CDN} {scripts}; style-src 'self' {SWAGGER_CDN}; "
            "img-src 'self' data: https://fastapi.tiangolo.com; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'")


def security_headers(path: str, host: str, policy: str | None = None) -> list[tuple[bytes, bytes]]:
    settings = get_settings()
    headers = [
        (b"content-security-policy", (policy or content_security_policy(host)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"permissions-policy", PERMISSIONS_POLICY.encode()),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if settings.is_production and settings.hsts_max_age_seconds > 0:
        headers.append((b"strict-transport-security", f"max-age={settings.hsts_max_age_seconds}; includeSubDomains".encode()))
    return headers


def _host(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1")
            return host if re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,255}", host) else ""
    return ""


def _with(headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus those of ``extra`` it does not already carry (a route's own wins)."""
    present = {name.lower() for name, _ in headers}
    return list(headers) + [(name, value) for name, value in extra if name not in present]


class SecurityHeaders:
    """Pure ASGI middleware (streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""), _host(scope))
        if scope["type"] == "websocket":
            await self.app(scope, receive, edited_send(send, _adding(extra), WEBSOCKET_START))
            return
        if scope["method"] == "HEAD" and scope.get("path", "").startswith("/api/"):
            await _head_as_get(self.app, scope, receive, send, extra)
            return
        if scope.get("path", "").startswith(DOCS_PATHS):
            await _docs_page(self.app, scope, receive, send)
            return

        await self.app(scope, receive, edited_send(send, _adding(extra)))


async def _docs_page(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """The Swagger UI page is small: hold it, then send it with a policy naming its inline script."""
    start: Message | None = None
    body = bytearray()

    async def hold(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        body.extend(message.get("body", b""))
        if not message.get("more_body") and start is not None:
            extra = security_headers(scope["path"], _host(scope), docs_policy(bytes(body)))
            await send({**start, "headers": _with(start.get("headers", []), extra)})
            await send({"type": "http.response.body", "body": bytes(body), "more_body": False})

    await app(scope, receive, hold)


def _adding(extra: list[tuple[bytes, bytes]]) -> Callable[[Message], Awaitable[Message]]:
    """For edited_send: the answer's start with the ``extra`` headers it lacks."""

    async def add(message: Message) -> Message:
        return {**message, "headers": _with(message.get("headers") or [], extra)}

    return add


async def _head_as_get(app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                       extra: list[tuple[bytes, bytes]]) -> None:
    """Run the GET route, send its status and headers, drop its body. Once the headers
    are out the route is told the client left, so a stream (a video) stops reading
    instead of reading the whole file for nothing (Starlette's StreamingResponse
    listens for that with ASGI spec versions before 2.4, hence the version below)."""
    started = asyncio.Event()
    finished = False

    async def head_receive() -> Message:
        if started.is_set():
            return _DISCONNECT
        incoming, headers_out = asyncio.ensure_future(receive()), asyncio.ensure_future(started.wait())
        await asyncio.wait({incoming, headers_out}, return_when=asyncio.FIRST_COMPLETED)
        if incoming.done():
            headers_out.cancel()
            return incoming.result()
        incoming.cancel()
        return _DISCONNECT

    async def head_send(message: Message) -> None:
        nonlocal finished
        if message["type"] == "http.response.start":
            await send({**message, "headers": _with(message.get("headers", []), extra)})
            started.set()
        elif message["type"] == "http.response.body" and not finished:
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    asgi = {**scope.get("asgi", {}), "spec_version": "2.3"}
    await app({**scope, "method": "GET", "asgi": asgi}, head_receive, head_send)


def inline_disposition(filename: str, fallback: str = "video") -> str:
    """Content-Disposition for media played in the page: inline, with a file name that
    cannot break out of the header (ASCII letters, digits, dot, dash, underscore and
    space; the original name in RFC 5987 form beside it)."""
    name = Path(filename.replace("\\", "/")).name if filename else ""
    safe = re.sub(r"[^A-Za-z0-9._\- ]+", "_", name).strip(" ._")[:120] or fallback
    encoded = quote(name[:255], safe="")
    return f'inline; filename="{safe}"' + (f"; filename*=UTF-8''{encoded}" if encoded and encoded != safe else "")


def with_security_headers(app: ASGIApp) -> ASGIApp:
    """Wraps the whole backend (course_app/secured_app.py)."""
    return SecurityHeaders(app)
