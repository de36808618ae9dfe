"""``course-app serve``: the production server on one port.

Once migrations are applied (``course-app`` does that first, under a lock, so
however many processes start together they are applied once), it hands over to ``reflex run --env prod --single-port``, which
builds the front end (a machine's instances share the build folder and take turns
building it) and serves it with the backend from Granian with
``COURSE_WEB_WORKERS`` worker processes. With ``COURSE_REDIS_URL`` Reflex keeps
each tab's state in Redis (rxconfig.py), so a socket may reconnect to any worker
on any machine; more than one worker requires it.

Prometheus metrics of the workers are kept in prometheus-client's multiprocess
mode: each worker writes its counters to files in a folder of its own instance
(emptied here at start), and /api/metrics adds them up.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from course_app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def metrics_dir(settings: Settings, port: int) -> Path:
    return (settings.data_dir / "prometheus" / str(port)).resolve()


def environment(settings: Settings, *, port: int, workers: int) -> dict[str, str]:
    """The environment of the Reflex process and its workers."""
    env = {**os.environ, "GRANIAN_WORKERS": str(workers), "REFLEX_USE_GRANIAN": "true"}
    env.setdefault("REFLEX_USE_SYSTEM_BUN", "1")
    if settings.metrics_token:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(settings, port))
    if settings.json_logs:
        env["REFLEX_LOG_JSON"] = "true"  # Reflex's, Granian's and the worker's lines too
    return env


def command(*, port: int, host: str) -> list[str]:
    reflex = Path(sys.executable).with_name("reflex")
    return [str(reflex), "run", "--env", "prod", "--single-port", "--frontend-port", str(port),
            "--backend-port", str(port), "--backend-host", host, "--loglevel", "info"]


def fresh_folder(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def run(*, port: int, host: str, workers: int | None) -> int:
    from course_app.errors import DomainError
    from course_app.settings import ENV_PREFIX, load_settings_or_exit

    settings = load_settings_or_exit()
    workers = workers or settings.web_workers
    if workers > 1 and not settings.redis_url:
        raise DomainError(f"{workers} workers need {ENV_PREFIX}REDIS_URL (each tab's state must reach every worker).")
    # Migrations: already applied by the command line (course_app.cli.main), under their lock.
    env = environment(settings, port=port, workers=workers)
    if "PROMETHEUS_MULTIPROC_DIR" in env:
        fresh_folder(Path(env["PROMETHEUS_MULTIPROC_DIR"]))  # counters start at zero with the instance
    argv = command(port=port, host=host)
    print(f"Serving Course Studio on http://{host}:{port} with {workers} worker(s)"
          f"{' and the Redis state manager' if settings.redis_url else ''}", flush=True)
    os.chdir(ROOT)
    os.execve(argv[0], argv, env)
    return 0  # pragma: no cover - execve does not return
