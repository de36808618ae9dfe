"""Every JSON error body the API sends is built here, whichever door refused the
request (a route, an exception handler, the body-size middleware):
``{"error": message for people, "code": for programs, "retryable": bool}``, plus
any details the error carries (``missing_parts`` of an upload)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from course_app.errors import DomainError, RateLimited, Stale

CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 412: "stale_revision", 413: "too_large", 415: "not_a_video", 416: "range_not_satisfiable", 422: "invalid_input",
         429: "rate_limited", 500: "internal_error", 503: "unavailable"}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    retryable: bool = False,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    body = {"error": message, "code": code or CODES.get(status, "error"), "retryable": retryable, **(details or {})}
    return JSONResponse(body, status_code=status, headers=headers)


def domain_error_response(exc: DomainError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if isinstance(exc, Stale) and exc.revision is not None:
        headers = {"ETag": f'"{exc.revision}"'}  # the course's current revision, to fetch and retry
    return error_response(exc.status_code, str(exc), code=exc.code, retryable=exc.retryable, headers=headers,
                          details=exc.details())
