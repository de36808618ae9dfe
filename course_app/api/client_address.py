"""Who is asking, by network address: the socket peer, or, behind
``COURSE_TRUSTED_PROXY_HOPS`` reverse proxies, the address the outermost trusted
proxy saw (the n-th entry from the right of ``X-Forwarded-For``). Entries further
left are written by the client and never trusted. The same rule as Reflex's own
``router.session.client_ip`` (rxconfig.py passes the setting on)."""

from __future__ import annotations

from starlette.types import Scope

from course_app.settings import get_settings

UNKNOWN = "unknown"


def client_address(scope: Scope) -> str:
    """The client's address for an ASGI HTTP or WebSocket scope."""
    ip = (scope.get("client") or (UNKNOWN,))[0] or UNKNOWN
    hops = get_settings().trusted_proxy_hops
    if hops:
        forwarded = ",".join(value.decode("latin-1") for name, value in scope.get("headers", [])
                             if name == b"x-forwarded-for")
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            ip = chain[-hops][:64]
    return ip
