"""The rate limits of both doors (API routes and State handlers), counted by one
limiter per process.

With ``COURSE_REDIS_URL`` set the counts live in Redis (``limits``' Redis storage),
so every process on every machine spends the same budgets; without it each process
counts in its own memory (the embedded default, right for one process). Should Redis
stop answering, the process counts in memory until it answers again: the limits then
hold per process, and requests are still served.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

import redis.asyncio as aioredis
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindowRateLimiter
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from course_app.loop_local import LoopLocal

from course_app.errors import RateLimited
from course_app.settings import get_settings

log = logging.getLogger(__name__)

# How long a Redis call may take before the request is counted in memory instead.
REDIS_TIMEOUT_SECONDS = 0.5
# Connections to Redis per process and event loop: a burst of requests waits for one
# (up to the timeout) instead of opening as many connections as there are requests.
REDIS_CONNECTIONS = 16
# After a Redis failure, how long to count in memory before trying Redis again.
REDIS_RETRY_SECONDS = 5.0


class _Limiter:
    """A moving-window limiter over the shared storage, with a memory fallback."""

    def __init__(self) -> None:
        settings = get_settings()
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        self.shared_async: LoopLocal[AsyncMovingWindowRateLimiter] | None = None
        if settings.redis_url:
            storage = {"key_prefix": settings.rate_limit_key_prefix, "wrap_exceptions": True}
            timeouts = {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
            self.shared = MovingWindowRateLimiter(RedisStorage(settings.redis_url, **storage, **timeouts))
            self.shared_async = LoopLocal(lambda: AsyncMovingWindowRateLimiter(AsyncRedisStorage(
                f"async+{settings.redis_url}", implementation="redispy", **storage,
                connection_pool=aioredis.BlockingConnectionPool.from_url(
                    settings.redis_url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_TIMEOUT_SECONDS, **timeouts))))
        self.shared_down_until = 0.0

    def _shared_up(self) -> bool:
        return self.shared is not None and time.monotonic() >= self.shared_down_until

    def _shared_failed(self) -> None:
        self.shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.exception("Rate limits: Redis is not answering; counting in this process for %.0f s",
                      REDIS_RETRY_SECONDS)

    def hit(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, float]:
        """Spend one request; answers (allowed, when the window frees a request). Blocks
        for a Redis round trip: call it off the event loop (or use ``hit_async``)."""
        if self._shared_up():
            try:
                allowed = self.shared.hit(item, *identifiers)
                reset = self.shared.get_window_stats(item, *identifiers).reset_time if not allowed else 0.0
                return allowed, reset
            except Exception:
                self._shared_failed()
        return self._memory_hit(item, *identifiers)

    async def hit_async(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, float]:
        """``hit`` for the event loop: the same counts, awaited."""
        if self._shared_up():
            try:
                shared = self.shared_async.get()
                allowed = await shared.hit(item, *identifiers)
                reset = (await shared.get_window_stats(item, *identifiers)).reset_time if not allowed else 0.0
                return allowed, reset
            except Exception:
                self._shared_failed()
        return self._memory_hit(item, *identifiers)

    def _memory_hit(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, float]:
        allowed = self.memory.hit(item, *identifiers)
        return allowed, self.memory.get_window_stats(item, *identifiers).reset_time if not allowed else 0.0


@lru_cache(maxsize=1)
def limiter() -> _Limiter:
    return _Limiter()


@lru_cache(maxsize=32)
def _items(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


def _refused(what: str, reset_time: float) -> RateLimited:
    retry_after = max(1, int(reset_time - time.time()))
    return RateLimited(f"Too many {what} attempts. Wait {retry_after} seconds and try again.", retry_after)


def enforce_rate_limit(spec: str, *keys: str, what: str) -> None:
    """Raise RateLimited when any of the limits in ``spec`` is spent for ``keys``.
    Blocks for Redis: on the event loop, await ``enforce_rate_limit_async``."""
    for item in _items(spec):
        allowed, reset_time = limiter().hit(item, what, *keys)
        if not allowed:
            raise _refused(what, reset_time)


async def enforce_rate_limit_async(spec: str, *keys: str, what: str) -> None:
    """``enforce_rate_limit`` for code on the event loop."""
    for item in _items(spec):
        allowed, reset_time = await limiter().hit_async(item, what, *keys)
        if not allowed:
            raise _refused(what, reset_time)


def enforce_user_rate_limit(user_id: int) -> None:
    """The per-user limit of both doors, API routes and State handlers: one budget, one message."""
    enforce_rate_limit(get_settings().api_rate_limit, f"user:{user_id}", what="API")


async def enforce_user_rate_limit_async(user_id: int) -> None:
    await enforce_rate_limit_async(get_settings().api_rate_limit, f"user:{user_id}", what="API")


def enforce_anonymous_rate_limit(ip: str) -> None:
    """Requests without valid credentials (none, a bogus token, an ended session),
    counted per client address: guessing tokens costs the guesser, not the server."""
    enforce_rate_limit(get_settings().anonymous_rate_limit, "ip", ip, what="unauthenticated")
