"""A nudge from whoever ends a session in this process (log-out, log-out everywhere)
to the watcher of open sockets (course_app/state/socket_sessions.py), so this
process's tabs of that session are reset at once instead of at the watcher's next
round. Other processes find out from the database on their next round."""

from __future__ import annotations

import asyncio

_ended = asyncio.Event()


def sessions_ended() -> None:
    _ended.set()


async def wait_for_ended_sessions(timeout: float) -> None:
    """Return when a session ended in this process, or after ``timeout`` seconds."""
    try:
        await asyncio.wait_for(_ended.wait(), timeout)
    except TimeoutError:
        pass
    _ended.clear()
