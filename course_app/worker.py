"""``course-app worker``: a Huey consumer that processes videos, with a reaper that
queues again (or fails) videos whose lease ran out. The app starts one itself
(``COURSE_EMBEDDED_WORKERS``, ``embedded``); production runs them apart, as many as
wanted, on any machine that reaches the database, the queue and storage."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)


def _reap_forever(stop: threading.Event, interval: float) -> None:
    from course_app.db import session_scope
    from course_app.jobs import processing_options
    from course_app.services import processing

    options = processing_options()
    while True:  # at once (a worker that stopped may have released its leases), then every interval
        try:
            processing.reap(session_factory=session_scope, max_attempts=options["max_attempts"],
                            queue_wait=options["queue_wait"])
        except Exception:
            log.exception("Reaping expired leases failed; trying again later")
        if stop.wait(interval):
            return


def _exit_with_parent(parent: int, stop: threading.Event) -> None:
    while not stop.wait(1):
        if os.getppid() != parent:
            log.warning("The app that started this worker is gone; stopping")
            os.kill(os.getpid(), signal.SIGTERM)
            return


def run(*, workers: int, parent: int | None = None) -> int:
    from course_app.jobs import huey
    from course_app.settings import get_settings

    from course_app import logs

    if get_settings().json_logs:
        logs.configure(get_settings(), logger_name="")  # every logger of the worker (Huey's too)
        logging.getLogger().setLevel(logging.INFO)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    if get_settings().worker_nice:  # behind the app's requests for the CPU (see Settings.worker_nice)
        os.nice(get_settings().worker_nice)
    stop = threading.Event()
    interval = min(30.0, max(0.5, get_settings().processing_lease_seconds / 2))
    threading.Thread(target=_reap_forever, args=(stop, interval), name="reaper", daemon=True).start()
    if parent:
        threading.Thread(target=_exit_with_parent, args=(parent, stop), name="parent-watch", daemon=True).start()
    # An idle worker looks at the queue at least every half second (Huey's default
    # backs off to 10 s), so an upload's processing starts at once.
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=False, scheduler_interval=1,
                                    check_worker_health=True, initial_delay=0.1, backoff=1.15, max_delay=0.5)
    try:
        consumer.run()
    finally:
        stop.set()
        from course_app.db import session_scope
        from course_app.services import processing

        released = processing.release_held(session_factory=session_scope)
        if released:
            log.info("Released %d lease(s) for the next worker", released)
    return 0


async def embedded() -> None:
    """Lifespan task: keep ``COURSE_EMBEDDED_WORKERS`` worker threads running in a
    child process while the app runs (restarted if it dies; stopped with the app)."""
    from course_app.settings import get_settings

    workers = get_settings().embedded_workers
    if not workers:
        return
    while True:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "course_app.cli", "worker", "--workers", str(workers), "--parent", str(os.getpid()))
        try:
            code = await process.wait()
        except asyncio.CancelledError:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout=4)
                except asyncio.TimeoutError:
                    process.kill()
            raise
        log.error("The embedded worker exited with %s; starting it again", code)
        await asyncio.sleep(2)
