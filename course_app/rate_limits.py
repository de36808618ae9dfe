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

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from course_app.errors import RateLimited
from course_app.settings import get_settings

log = logging.getLogger(__name__)

# How long a Redis call may take before the request is counted in memory instead.
REDIS_TIMEOUT_SECONDS = 0.5
# After a Redis failure, how long to count in memory before trying Redis again.
REDIS_RETRY_SECONDS = 5.0


class _Limiter:
    """A moving-window limiter over the shared storage, with a memory fallback."""

    def __init__(self) -> None:
        settings = get_settings()
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        if settings.redis_url:
            storage = RedisStorage(settings.redis_url, key_prefix=settings.rate_limit_key_prefix,
                                   wrap_exceptions=True, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                   socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
            self.shared = MovingWindowRateLimiter(storage)
        self.shared_down_until = 0.0

    def hit(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, float]:
        """Spend one request; answers (allowed, when the window frees a request)."""
        if self.shared is not None and time.monotonic() >= self.shared_down_until:
            try:
                allowed = self.shared.hit(item, *identifiers)
                reset = self.shared.get_window_stats(item, *identifiers).reset_time if not allowed else 0.0
                return allowed, reset
            except Exception:
                self.shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.exception("Rate limits: Redis is not answering; counting in this process for %.0f s",
                              REDIS_RETRY_SECONDS)
        allowed = self.memory.hit(item, *identifiers)
        return allowed, self.memory.get_window_stats(item, *identifiers).reset_time if not allowed else 0.0


@lru_cache(maxsize=1)
def limiter() -> _Limiter:
    return _Limiter()


@lru_cache(maxsize=32)
def _items(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


def enforce_rate_limit(spec: str, *keys: str, what: str) -> None:
    """Raise RateLimited when any of the limits in ``spec`` is spent for ``keys``."""
    for item in _items(spec):
        allowed, reset_time = limiter().hit(item, what, *keys)
        if not allowed:
            retry_after = max(1, int(reset_time - time.time()))
            raise RateLimited(f"Too many {what} attempts. Wait {retry_after} seconds and try again.", retry_after)


def enforce_user_rate_limit(user_id: int) -> None:
    """The per-user limit of both doors, API routes and State handlers: one budget, one message."""
    enforce_rate_limit(get_settings().api_rate_limit, f"user:{user_id}", what="API")


def enforce_anonymous_rate_limit(ip: str) -> None:
    """Requests without valid credentials (none, a bogus token, an ended session),
    counted per client address: guessing tokens costs the guesser, not the server."""
    enforce_rate_limit(get_settings().anonymous_rate_limit, "ip", ip, what="unauthenticated")
