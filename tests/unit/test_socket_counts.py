"""Open sockets per address (course_app/api/socket_counts.py): in memory by default;
in Redis when COURSE_REDIS_URL is set, so two processes (here two SocketCounts, as
each app process holds one) share one cap, renew their claims while the sockets are
open, and the claims of a process that died run out. Two real app processes over one
Redis: tests/security/test_shared_limits.py."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis

from course_app.api.socket_counts import SocketCounts
from tests.polling import wait_for_async
from tests.unit.conftest import REDIS_URL


def _address() -> str:
    return f"203.0.113.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"


def test_without_redis_each_process_counts_its_own(configure):
    configure(redis_url="", socket_connections_per_ip="2")

    async def scenario():
        one, other = SocketCounts(), SocketCounts()
        address = _address()
        places = [await one.take(address), await one.take(address)]
        refused = await one.take(address)
        elsewhere = await other.take(address)  # another process: its own count
        await one.give_back(places[0])
        again = await one.take(address)
        return places, refused, elsewhere, again, one.memory

    places, refused, elsewhere, again, memory = asyncio.run(scenario())

    assert all(place and not place.in_redis for place in places)
    assert refused is None and elsewhere is not None and again is not None
    assert sum(memory.values()) == 2


def test_with_redis_two_processes_share_one_cap(configure, redis_prefix):
    configure(redis_url=REDIS_URL, rate_limit_key_prefix=redis_prefix, socket_connections_per_ip="3")

    async def scenario():
        a, b = SocketCounts(), SocketCounts()
        address = _address()
        held = [await a.take(address), await a.take(address), await b.take(address)]
        refused = (await a.take(address), await b.take(address))
        await a.give_back(held[0])
        freed = await b.take(address)
        for place in (*held[1:], freed):
            await (b if place in b.claims else a).give_back(place)
        return held, refused, freed, address

    held, refused, freed, address = asyncio.run(scenario())

    assert all(place and place.in_redis for place in held)
    assert refused == (None, None)
    assert freed is not None, "a closed socket frees its place for the other process too"
    assert redis.Redis.from_url(REDIS_URL).zcard(f"{redis_prefix}:sockets:{address}") == 0


def test_with_redis_open_sockets_are_renewed_and_a_dead_process_places_run_out(configure, redis_prefix):
    """Claims last a second: A's stay while A runs (it renews them), B's run out once
    B stops renewing (as when its process dies), and then the place is free again."""
    configure(redis_url=REDIS_URL, rate_limit_key_prefix=redis_prefix, socket_connections_per_ip="2",
              socket_claim_seconds="1")
    client = redis.Redis.from_url(REDIS_URL)

    async def scenario():
        a, b = SocketCounts(), SocketCounts()
        address = _address()
        key = f"{redis_prefix}:sockets:{address}"
        kept = await a.take(address)
        dead = await b.take(address)
        b._renewer.cancel()  # B dies: nothing renews its claim, nothing gives it back
        assert await a.take(address) is None

        async def freed():
            return await a.take(address) is not None

        started = time.monotonic()
        await wait_for_async(freed, "the dead process's place to be free", timeout=10)
        waited = time.monotonic() - started
        gone = client.zscore(key, dead.connection) is None
        still_held = client.zscore(key, kept.connection) is not None
        return waited, gone, still_held, client.ttl(key)

    waited, gone, still_held, ttl = asyncio.run(scenario())

    assert 0.5 < waited < 3, waited
    assert gone
    assert still_held, "renewed: A's claim, made before B's, would have run out first"
    assert 0 < ttl <= 1, "the set itself expires when nothing renews it"


def test_while_redis_does_not_answer_the_process_counts_in_memory(configure, redis_prefix):
    configure(redis_url="redis://127.0.0.1:1/0", rate_limit_key_prefix=redis_prefix,
              socket_connections_per_ip="1")

    async def scenario():
        counts = SocketCounts()
        address = _address()
        first = await counts.take(address)
        second = await counts.take(address)
        await counts.give_back(first)
        return first, second, counts.memory

    first, second, memory = asyncio.run(scenario())

    assert first is not None and not first.in_redis
    assert second is None
    assert not memory
