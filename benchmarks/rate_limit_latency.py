"""What a rate-limit check on the event loop costs other requests, with Redis.

Run from the repository root (a Redis at COURSE_TEST_REDIS_URL, default
redis://127.0.0.1:6379/0):

    .venv/bin/python benchmarks/rate_limit_latency.py                     # 200 at once, 0 and 2 ms added
    .venv/bin/python benchmarks/rate_limit_latency.py --concurrent 500 --delays 0 1 5

``--concurrent`` requests start at once on one event loop (as an app process's loop
serves them), each one check of the shared limiter (course_app/rate_limits.py, a
moving window in Redis under a key prefix of its own, removed afterwards), then
done. Two ways, each in a loop of its own:

- "blocking": ``enforce_rate_limit`` called on the loop, as the async routes and
  State handlers did: the loop waits for each Redis round trip;
- "async": ``await enforce_rate_limit_async``, what they do now.

Each request's latency is from the start of the burst to its check's end (p50,
p95, max), and "loop stall" is the longest the loop went without running a 1 ms
ticker. ``--delays`` adds that many milliseconds each way between the limiter and
Redis (a local proxy in this process, so its own work slows both ways a little),
standing in for Redis on another machine. Writes JSON to
``benchmarks/results/rate_limit_latency.json`` (``--output``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.delay_proxy import DelayProxy

REDIS_URL = os.environ.get("COURSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def burst(concurrent: int, *, blocking: bool) -> dict[str, float]:
    from course_app import rate_limits

    spec = f"{concurrent * 10}/minute"
    key = uuid.uuid4().hex
    stall = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal stall
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stall, last = max(stall, now - last), now

    async def one(started: float) -> float:
        await asyncio.sleep(0)
        if blocking:
            rate_limits.enforce_rate_limit(spec, key, what="bench")
        else:
            await rate_limits.enforce_rate_limit_async(spec, key, what="bench")
        return time.perf_counter() - started

    # Warm up: the connections of this loop (as a busy process has them open).
    await asyncio.gather(*(one(time.perf_counter()) for _ in range(concurrent)))
    if rate_limits.limiter().shared_down_until:
        raise SystemExit("Redis did not answer in time: the checks fell back to memory; figures void")
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    latencies = await asyncio.gather(*(one(started) for _ in range(concurrent)))
    done.set()
    await tick
    return {"p50_ms": statistics.median(latencies) * 1000, "p95_ms": _percentile(latencies, 0.95) * 1000,
            "max_ms": max(latencies) * 1000, "loop_stall_ms": stall * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 2], help="milliseconds added each way")
    parser.add_argument("--rounds", type=int, default=3, help="best p95 of this many bursts per row")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/rate_limit_latency.json"))
    args = parser.parse_args()

    import redis

    from course_app import rate_limits
    from course_app.settings import get_settings

    prefix = f"bench-limits-{uuid.uuid4().hex}"
    host, port = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs["host"], \
        redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs["port"]
    print(f"{args.concurrent} concurrent checks on one loop, Redis {REDIS_URL}")
    results = []
    print(f"{'added delay':>12} {'way':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'loop stall ms':>14}")
    try:
        for delay in args.delays:
            proxy = DelayProxy((host, port), delay / 1000) if delay else None
            url = f"redis://127.0.0.1:{proxy.port}/0" if proxy else REDIS_URL
            os.environ.update(COURSE_REDIS_URL=url, COURSE_RATE_LIMIT_KEY_PREFIX=prefix)
            get_settings.cache_clear()
            rate_limits.limiter.cache_clear()
            for blocking in (True, False):
                rows = [asyncio.run(burst(args.concurrent, blocking=blocking)) for _ in range(args.rounds)]
                row = min(rows, key=lambda r: r["p95_ms"])
                results.append({"added_delay_ms": delay, "way": "blocking" if blocking else "async", **row})
                print(f"{delay:>10.1f}ms {'blocking' if blocking else 'async':>9} {row['p50_ms']:>8.1f} "
                      f"{row['p95_ms']:>8.1f} {row['max_ms']:>8.1f} {row['loop_stall_ms']:>14.1f}")
            if proxy:
                proxy.close()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"concurrent": args.concurrent, "rows": results}, indent=2))
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


if __name__ == "__main__":
    main()
