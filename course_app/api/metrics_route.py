"""``GET /api/metrics``: Prometheus metrics (course_app/metrics.py). There is no such
route unless ``COURSE_METRICS_TOKEN`` is set; then it answers only
``Authorization: Bearer <that token>`` (compared in constant time), and is rate
limited per address like the other routes open to anyone."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from course_app import metrics
from course_app.api.deps import _bearer, client_ip, enforce_rate_limit
from course_app.errors import NotFound, Unauthorized
from course_app.settings import get_settings

router = APIRouter(prefix="/api", tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics (only with COURSE_METRICS_TOKEN, as a bearer token)")
async def prometheus_metrics(request: Request) -> Response:
    settings = get_settings()
    if not settings.metrics_token:
        raise NotFound("Not found.")
    enforce_rate_limit(settings.api_rate_limit, f"ip:{client_ip(request)}", what="metrics")
    offered = (_bearer(request) or "").encode()
    if not hmac.compare_digest(offered, settings.metrics_token.encode()):
        raise Unauthorized("Send the metrics token as 'Authorization: Bearer <token>'.")
    body = await asyncio.to_thread(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})
