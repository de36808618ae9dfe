"""How many sockets each client address holds open, for the socket guard's cap
(course_app/api/socket_guard.py).

Counted in this process's memory by default. With ``COURSE_REDIS_URL`` set, counted
in Redis, so the cap holds across every app process and machine: one sorted set per
address (``<rate_limit_key_prefix>:sockets:<address>``) whose members are the open
connections and whose scores say when each connection's claim runs out (Redis's own
clock). The process that holds a connection renews its claim every
``socket_claim_seconds / 3`` and removes it when the connection closes; a process
that dies renews nothing, so its claims run out within ``socket_claim_seconds`` and
are dropped at the next count (the set itself expires once every claim has).

Should Redis stop answering (a call may take ``REDIS_TIMEOUT_SECONDS``), the process
counts in memory for ``REDIS_RETRY_SECONDS``, like the rate limits do: the cap then
holds per process, and sockets are still served."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import redis.asyncio as aioredis

from course_app.loop_local import LoopLocal
from course_app.rate_limits import REDIS_RETRY_SECONDS, REDIS_TIMEOUT_SECONDS
from course_app.settings import get_settings

log = logging.getLogger(__name__)

# Drop the claims that ran out, count the rest, and claim a place when one is free.
# KEYS[1] the address's set; ARGV: the cap, the connection, the claim's lifetime (s).
CLAIM = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""
# Renew one open connection's claim (and the set's lifetime). KEYS[1], ARGV[1], ARGV[2]
# as above; a claim that already ran out (a stalled process) is made again: it is open.
RENEW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""


@dataclass(frozen=True)
class Place:
    """One open socket's place in the count of its address."""

    address: str
    connection: str
    in_redis: bool


class SocketCounts:
    """Open sockets per address: in Redis when configured, else (or while Redis is
    down) in this process's memory."""

    def __init__(self) -> None:
        self.memory: Counter[str] = Counter()
        self.claims: set[Place] = set()  # this process's places in Redis, renewed
        self._redis = LoopLocal(lambda: aioredis.Redis.from_url(
            get_settings().redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS))
        self._renewer: asyncio.Task | None = None
        self.redis_down_until = 0.0

    def _client(self) -> aioredis.Redis | None:
        if not get_settings().redis_url or time.monotonic() < self.redis_down_until:
            return None
        return self._redis.get()

    def _redis_failed(self) -> None:
        self.redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        log.exception("Socket counts: Redis is not answering; counting in this process for %.0f s",
                      REDIS_RETRY_SECONDS)

    async def take(self, address: str) -> Place | None:
        """A place for one more socket of ``address``, or None when it holds the most allowed."""
        settings = get_settings()
        client = self._client()
        if client is not None:
            place = Place(address, uuid.uuid4().hex, in_redis=True)
            try:
                taken = await client.eval(CLAIM, 1, _key(address), settings.socket_connections_per_ip,
                                          place.connection, settings.socket_claim_seconds)
            except Exception:
                self._redis_failed()
            else:
                if not taken:
                    return None
                self.claims.add(place)
                self._renew_while_open()
                return place
        if self.memory[address] >= settings.socket_connections_per_ip:
            return None
        self.memory[address] += 1
        return Place(address, "", in_redis=False)

    async def give_back(self, place: Place) -> None:
        if not place.in_redis:
            self.memory[place.address] -= 1
            if self.memory[place.address] <= 0:
                del self.memory[place.address]
            return
        self.claims.discard(place)
        client = self._client()
        if client is None:
            return  # Redis is down: the claim runs out by itself
        try:
            await client.zrem(_key(place.address), place.connection)
        except Exception:
            self._redis_failed()

    def _renew_while_open(self) -> None:
        loop = asyncio.get_running_loop()
        if self._renewer is None or self._renewer.done() or self._renewer.get_loop() is not loop:
            self._renewer = loop.create_task(self._renew())

    async def _renew(self) -> None:
        """Every third of a claim's lifetime, renew the claims of the sockets still open."""
        while self.claims:
            seconds = get_settings().socket_claim_seconds
            await asyncio.sleep(seconds / 3)
            client = self._client()
            if client is None:
                continue
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for place in list(self.claims):
                        pipe.eval(RENEW, 1, _key(place.address), place.connection, seconds)
                    await pipe.execute()
            except Exception:
                self._redis_failed()


def _key(address: str) -> str:
    return f"{get_settings().rate_limit_key_prefix}:sockets:{address}"
