"""Forget one tab's States now, in whichever state manager the app runs: the files
and memory of the disk manager (the embedded default), the memory manager's dict,
or the Redis keys. Used for tabs that never logged in, shortly after their socket
closed (course_app/state/socket_sessions.py), instead of after Reflex's one-hour
token lifetime.

Reflex offers no public call for this; the disk manager's bookkeeping
(``_write_queue``, ``_purge_token``, ``_is_locked``) is used as Reflex 0.10.1 has
it (the version is pinned; tests/security/test_socket_limits.py proves the files go)."""

from __future__ import annotations

import asyncio

import reflex as rx
from reflex.istate.manager.disk import StateManagerDisk
from reflex.istate.manager.memory import StateManagerMemory
from reflex.istate.manager.token import BaseStateToken


def all_state_classes() -> list[type[rx.State]]:
    found, pending = [], [rx.State]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.get_substates())
    return found


async def forget_tabs(app, tokens: list[str]) -> set[str]:
    """Drop these tabs' States; returns the tokens done (one an event holds right now
    is left for later). The disk manager's files go in one pass off the event loop."""
    manager = app.state_manager
    roots = [BaseStateToken(ident=token, cls=rx.State) for token in tokens]
    if isinstance(manager, StateManagerDisk):
        roots = [root for root in roots if not manager._is_locked(root)]
        idents = {root.ident for root in roots}
        for queued in [t for t in manager._write_queue if t.ident in idents]:
            manager._write_queue.pop(queued, None)
        classes = all_state_classes()
        paths = [manager.token_path(root.with_cls(cls)) for root in roots for cls in classes]
        for root in roots:
            manager._purge_token(root)
        await asyncio.to_thread(lambda: [path.unlink(missing_ok=True) for path in paths])
        return idents
    if isinstance(manager, StateManagerMemory):
        done = set()
        for root in roots:
            lock = manager._states_locks.get(root.lock_key)
            if lock is None or not lock.locked():
                manager.states.pop(root.cache_key, None)
                manager._states_locks.pop(root.lock_key, None)
                done.add(root.ident)
        return done
    redis = getattr(manager, "redis", None)
    if redis is not None and roots:
        await redis.delete(*[str(root.with_cls(cls)) for root in roots for cls in all_state_classes()])
        return {root.ident for root in roots}
    return set()
