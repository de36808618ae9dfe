"""``GET /api/health``: can this process reach what it needs? The database, storage,
Redis (when configured) and the job queue, each with its latency; 200 when all
answer, else 503. No log-in (load balancers and uptime checks call it), rate
limited per address like the other routes open to anyone, and it names no host,
key or URL: a failed check gives only the kind of error."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from course_app.api.deps import client_ip, enforce_rate_limit
from course_app.settings import get_settings

router = APIRouter(prefix="/api", tags=["operations"])

CHECK_TIMEOUT_SECONDS = 5.0
PROBE_KEY = "health/probe"


def check_database() -> None:
    from course_app.db import get_engine

    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def check_storage() -> None:
    """One round trip to storage: looking up a key that is never written (on local
    disk, also that the folder is there and writable)."""
    from course_app.storage import get_storage

    storage = get_storage()
    root = getattr(storage, "root", None)
    if root is not None and not (os.path.isdir(root) and os.access(root, os.W_OK)):
        raise OSError("storage folder missing or read-only")
    storage.stat(PROBE_KEY, "")


def check_redis() -> None:
    import redis

    client = redis.Redis.from_url(get_settings().redis_url, socket_timeout=CHECK_TIMEOUT_SECONDS,
                                  socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


def check_queue() -> None:
    from course_app.jobs import huey

    huey.pending_count()


def checks() -> dict[str, Callable[[], None]]:
    found = {"database": check_database, "storage": check_storage}
    if get_settings().redis_url:
        found["redis"] = check_redis
    found["queue"] = check_queue
    return found


async def run_check(check: Callable[[], None]) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.to_thread(check), timeout=CHECK_TIMEOUT_SECONDS)
        result: dict = {"ok": True}
    except asyncio.TimeoutError:
        result = {"ok": False, "error": "timeout"}
    except Exception as error:  # the kind only: messages may hold hosts or keys
        result = {"ok": False, "error": type(error).__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


async def health_report() -> tuple[bool, dict[str, dict]]:
    named = checks()
    results = await asyncio.gather(*(run_check(check) for check in named.values()))
    report = dict(zip(named, results))
    return all(r["ok"] for r in results), report


@router.get("/health", summary="Database, storage, Redis and queue: each ok or not, with its latency (no log-in)")
async def health(request: Request) -> JSONResponse:
    enforce_rate_limit(get_settings().api_rate_limit, f"ip:{client_ip(request)}", what="health check")
    ok, report = await health_report()
    return JSONResponse({"status": "ok" if ok else "error", "checks": report}, status_code=200 if ok else 503,
                        headers={"Cache-Control": "no-store"})
