"""The limiter both doors share (course_app/rate_limits.py): counted in Redis when
COURSE_REDIS_URL is set, so two processes spend one budget; in each process's
memory otherwise, and while Redis does not answer. And who the client is
(api/client_address.py): X-Forwarded-For only behind trusted proxies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import pytest
import redis

from course_app import rate_limits
from course_app.api.client_address import client_address
from course_app.errors import RateLimited
from tests.delay_proxy import DelayProxy
from tests.server import ROOT, free_port
from tests.unit.conftest import REDIS_URL


def _spend(spec: str, key: str, times: int) -> list[bool]:
    allowed = []
    for _ in range(times):
        try:
            rate_limits.enforce_rate_limit(spec, key, what="test")
            allowed.append(True)
        except RateLimited:
            allowed.append(False)
    return allowed


# Client address --------------------------------------------------------------------------


def _scope(peer: str, *forwarded: str) -> dict:
    return {"type": "http", "client": (peer, 5000),
            "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded]}


def test_x_forwarded_for_is_ignored_without_trusted_proxies(configure):
    configure(trusted_proxy_hops="0")
    assert client_address(_scope("10.0.0.1", "203.0.113.9")) == "10.0.0.1"


def test_one_trusted_proxy_names_the_address_it_saw(configure):
    configure(trusted_proxy_hops="1")
    # The client wrote "1.2.3.4" itself; the proxy appended the address it saw.
    assert client_address(_scope("10.0.0.1", "1.2.3.4, 203.0.113.9")) == "203.0.113.9"
    assert client_address(_scope("10.0.0.1", "1.2.3.4", "203.0.113.9")) == "203.0.113.9"  # two header lines
    assert client_address(_scope("10.0.0.1")) == "10.0.0.1"  # no header: the peer


def test_two_trusted_proxies_skip_the_nearer_one(configure):
    configure(trusted_proxy_hops="2")
    assert client_address(_scope("10.0.0.1", "1.2.3.4, 203.0.113.9, 10.0.0.2")) == "203.0.113.9"
    assert client_address(_scope("10.0.0.1", "203.0.113.9")) == "10.0.0.1"  # shorter than the chain of trust


# Memory (the embedded default) -------------------------------------------------------------


def test_without_redis_each_limit_is_counted_in_memory(configure):
    configure(redis_url="")
    assert rate_limits.limiter().shared is None
    key = uuid.uuid4().hex
    assert _spend("3/minute", key, 4) == [True, True, True, False]
    assert _spend("3/minute", uuid.uuid4().hex, 1) == [True]  # another key, its own budget


def test_a_refusal_says_when_to_come_back(configure):
    configure(redis_url="")
    key = uuid.uuid4().hex
    _spend("1/minute", key, 1)
    with pytest.raises(RateLimited) as refused:
        rate_limits.enforce_rate_limit("1/minute", key, what="test")
    assert 1 <= refused.value.retry_after <= 60
    assert "Too many test attempts" in str(refused.value)


# Redis: one budget for every process ---------------------------------------------------------


def test_with_redis_the_counts_live_in_redis_under_the_prefix(configure, redis_prefix):
    configure(redis_url=REDIS_URL, rate_limit_key_prefix=redis_prefix)
    key = uuid.uuid4().hex
    assert _spend("2/minute", key, 3) == [True, True, False]
    keys = [k.decode() for k in redis.Redis.from_url(REDIS_URL).scan_iter(f"{redis_prefix}*")]
    assert keys and all(key in k for k in keys)


SPEND_IN_ANOTHER_PROCESS = """
import sys
from course_app import rate_limits
from course_app.errors import RateLimited
spec, key, times = sys.argv[1], sys.argv[2], int(sys.argv[3])
refused = 0
for _ in range(times):
    try:
        rate_limits.enforce_rate_limit(spec, key, what="test")
    except RateLimited:
        refused += 1
print(refused)
"""


def _spend_in_another_process(spec: str, key: str, times: int, env: dict[str, str]) -> int:
    result = subprocess.run([sys.executable, "-c", SPEND_IN_ANOTHER_PROCESS, spec, key, str(times)],
                            cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def test_two_processes_on_one_redis_spend_one_budget(configure, redis_prefix):
    env = {"COURSE_REDIS_URL": REDIS_URL, "COURSE_RATE_LIMIT_KEY_PREFIX": redis_prefix}
    configure(redis_url=REDIS_URL, rate_limit_key_prefix=redis_prefix)
    key = uuid.uuid4().hex

    assert _spend_in_another_process("5/minute", key, 3, env) == 0
    assert _spend("5/minute", key, 3) == [True, True, False]  # 3 + 2 = 5: the other process's hits count here
    assert _spend_in_another_process("5/minute", key, 1, env) == 1  # and ours there


def test_two_processes_without_redis_count_apart(configure):
    """The difference Redis makes: in memory, each process has the whole budget."""
    configure(redis_url="")
    key = uuid.uuid4().hex
    assert _spend_in_another_process("5/minute", key, 5, {"COURSE_REDIS_URL": ""}) == 0
    assert _spend("5/minute", key, 5) == [True] * 5


def test_while_redis_does_not_answer_the_process_counts_in_memory(configure):
    configure(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    key = uuid.uuid4().hex
    assert _spend("2/minute", key, 3) == [True, True, False]


# The socket's per-address cap (api/socket_guard.py) reads the same address ------------------------


def _open_sockets(forwarded_for: list[str]) -> list[str]:
    """Open one socket per X-Forwarded-For value from one peer; answers, for each,
    "open" (it reached the app) or "refused" (closed at the handshake)."""
    import asyncio

    from course_app.api.socket_guard import SocketGuard

    async def scenario() -> list[str]:
        release = asyncio.Event()
        outcomes: dict[int, str] = {}

        async def app(scope, receive, send):
            outcomes[scope["client"][1] - 4000] = "open"
            await release.wait()

        guard = SocketGuard(app)
        tasks = []
        for number, value in enumerate(forwarded_for):
            scope = {"type": "websocket", "path": "/_event/", "client": ("10.0.0.1", 4000 + number),
                     "query_string": b"EIO=4&transport=websocket", "headers": [(b"x-forwarded-for", value.encode())]}

            async def receive():
                return {"type": "websocket.connect"}

            async def send(message, number=number):
                if message["type"] == "websocket.close":
                    outcomes[number] = "refused"

            tasks.append(asyncio.create_task(guard(scope, receive, send)))
            while number not in outcomes:  # this socket reached the app or was refused
                await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks)
        return [outcomes.get(number, "?") for number in range(len(forwarded_for))]

    return asyncio.run(scenario())


def test_the_socket_cap_counts_the_peer_without_trusted_proxies(configure):
    configure(trusted_proxy_hops="0", socket_connections_per_ip="2")
    assert _open_sockets(["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == ["open", "open", "refused"]


def test_the_socket_cap_counts_the_forwarded_address_behind_a_trusted_proxy(configure):
    configure(trusted_proxy_hops="1", socket_connections_per_ip="2")
    assert _open_sockets(["1.1.1.1", "1.1.1.1", "1.1.1.1", "2.2.2.2"]) == ["open", "open", "refused", "open"]


# On the event loop: the same limiter, awaited --------------------------------------------------


def _spend_async(spec: str, key: str, times: int) -> list[bool]:
    async def spend() -> list[bool]:
        allowed = []
        for _ in range(times):
            try:
                await rate_limits.enforce_rate_limit_async(spec, key, what="test")
                allowed.append(True)
            except RateLimited:
                allowed.append(False)
        return allowed

    return asyncio.run(spend())


def test_the_async_checks_spend_the_same_redis_budget(configure, redis_prefix):
    """Code on the loop and code in threads count together (two loops one after the other, too)."""
    configure(redis_url=REDIS_URL, rate_limit_key_prefix=redis_prefix)
    key = uuid.uuid4().hex
    assert _spend_async("4/minute", key, 2) == [True, True]
    assert _spend("4/minute", key, 1) == [True]
    assert _spend_async("4/minute", key, 2) == [True, False]
    assert rate_limits.limiter().shared_down_until == 0.0, "counted in Redis throughout"


def test_the_async_checks_count_in_memory_while_redis_does_not_answer(configure, redis_prefix):
    configure(redis_url="redis://127.0.0.1:1/0", rate_limit_key_prefix=redis_prefix)
    key = uuid.uuid4().hex
    assert _spend_async("2/minute", key, 3) == [True, True, False]
    assert _spend("2/minute", key, 1) == [False], "one memory budget for both ways in"


def test_an_async_check_does_not_hold_up_the_loop(configure, redis_prefix):
    """As many checks at once as the pool has connections (so none waits for one, and
    none runs into the 0.5 s Redis timeout on a busy machine), over a Redis 20 ms
    away each way: awaited, they overlap; called on the loop (as before), they would
    take at least 16 x 2 x 40 ms = 1.28 s."""
    client = redis.Redis.from_url(REDIS_URL)
    proxy = DelayProxy((client.connection_pool.connection_kwargs["host"],
                        client.connection_pool.connection_kwargs["port"]), 0.02)
    try:
        configure(redis_url=f"redis://127.0.0.1:{proxy.port}/0", rate_limit_key_prefix=redis_prefix)

        async def burst() -> float:
            key = uuid.uuid4().hex
            await rate_limits.enforce_rate_limit_async("1000/minute", key, what="test")  # connected
            started = time.perf_counter()
            await asyncio.gather(*(rate_limits.enforce_rate_limit_async("1000/minute", key, what="test")
                                   for _ in range(rate_limits.REDIS_CONNECTIONS)))
            return time.perf_counter() - started

        elapsed = asyncio.run(burst())
    finally:
        proxy.close()
    assert rate_limits.limiter().shared_down_until == 0.0, "every check was counted in Redis"
    assert elapsed < 0.8, elapsed
