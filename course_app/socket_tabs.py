"""Which tabs (client tokens) this process's socket has seen, and whether each was
logged in the last time it was looked at. The socket guard notes every token at the
handshake (course_app/api/socket_guard.py), IdentityGuard notes each event's log-in
(course_app/state/session.py), and the socket watcher
(course_app/state/socket_sessions.py) takes the tokens whose sockets closed: the
States of those that were not logged in are forgotten soon after. A connection
that lives for a moment is seen all the same (the watcher itself only looks every
fraction of a second)."""

from __future__ import annotations

MAX_TOKEN_LENGTH = 64

_seen: dict[str, bool] = {}  # client token -> logged in


def tab_connected(token: str) -> None:
    if 0 < len(token) <= MAX_TOKEN_LENGTH:
        _seen.setdefault(token, False)


def tab_identity(token: str, *, logged_in: bool) -> None:
    if 0 < len(token) <= MAX_TOKEN_LENGTH:
        _seen[token] = logged_in


def is_seen(token: str) -> bool:
    """Whether the tab is on a socket of this process (or was until the watcher's last look)."""
    return token in _seen


def take_closed(connected: set[str]) -> dict[str, bool]:
    """The tabs seen whose sockets are no longer connected (token -> logged in), forgotten here."""
    closed = {token: logged_in for token, logged_in in _seen.items() if token not in connected}
    for token in closed:
        _seen.pop(token, None)
    return closed
