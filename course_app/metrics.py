"""Prometheus metrics (prometheus-client).

Counted as requests are answered (api/request_log.py) and as upkeep runs:
requests by method, route template (never a raw path: bounded labels) and status,
their duration, bytes received by upload routes, uploads completed, failures (5xx
answers, failed upkeep rounds). Read from the database and the queue when scraped
(they are the same whichever process answers): the queue depth and the outbox
backlog (storage deletions not yet carried out).

Several workers of one `course-app serve` share prometheus-client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, set and emptied by serve.py): each worker
writes its counts to files there and a scrape, answered by any worker, sums them.
Without that folder (one process) the process's own registry answers.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Counter("course_http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("course_http_request_seconds", "Time to answer an HTTP request", ["route"],
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
UPLOAD_BYTES = Counter("course_upload_bytes", "Video bytes received by upload routes that accepted them")
UPLOADS_COMPLETED = Counter("course_uploads_completed", "Uploads completed (simple or resumable)")
FAILURES = Counter("course_failures", "Failures: 5xx answers (request), failed upkeep rounds (upkeep)", ["kind"])

# Routes whose accepted body is video bytes, and routes that finish an upload.
UPLOAD_BYTE_ROUTES = frozenset({"/api/upload", "/api/uploads/{upload_id}/parts/{number}"})
UPLOAD_DONE_ROUTES = frozenset({"/api/upload", "/api/uploads/{upload_id}/complete"})


def observe_request(*, method: str, route: str, status: int, seconds: float, body_bytes: int) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(route).observe(seconds)
    if 200 <= status < 300:
        if route in UPLOAD_BYTE_ROUTES and method in ("PUT", "POST"):
            UPLOAD_BYTES.inc(body_bytes)
        if route in UPLOAD_DONE_ROUTES and method == "POST":
            UPLOADS_COMPLETED.inc()
    elif status >= 500:
        FAILURES.labels("request").inc()


def upkeep_failed() -> None:
    FAILURES.labels("upkeep").inc()


class BacklogCollector:
    """The queue depth and the outbox backlog, read when scraped."""

    def collect(self):
        from sqlalchemy import func
        from sqlmodel import select

        from course_app.db import session_scope
        from course_app.jobs import huey
        from course_app.models import StorageDeletion

        depth = GaugeMetricFamily("course_queue_depth", "Processing jobs waiting in the queue")
        backlog = GaugeMetricFamily("course_outbox_backlog", "Storage deletions not yet carried out")
        try:
            depth.add_metric([], huey.pending_count())
            yield depth
        except Exception:
            log.warning("Could not read the queue depth", exc_info=True)
        try:
            with session_scope() as session:
                backlog.add_metric([], session.exec(select(func.count()).select_from(StorageDeletion)).one())
            yield backlog
        except Exception:
            log.warning("Could not read the outbox backlog", exc_info=True)


def exposition() -> bytes:
    """The text a scrape receives: the counters (of every worker of this instance)
    and the backlog gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        from prometheus_client import REGISTRY as counted
    live = CollectorRegistry()
    live.register(BacklogCollector())
    return generate_latest(counted) + generate_latest(live)
