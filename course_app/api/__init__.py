"""The backend-only HTTP API, mounted into Reflex's server with api_transformer."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from course_app.api import auth, chapters, courses, tokens, upload_sessions, videos
from course_app.api.editing import Replayed
from course_app.api.body_limit import BodyLimit
from course_app.errors import DomainError, RateLimited, Stale
from course_app.storage.base import StorageError

log = logging.getLogger(__name__)


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, *, code: str | None = None, retryable: bool = False
) -> JSONResponse:
    """Every error body: a message for people, a code and a retry hint for programs."""
    body = {"error": message, "code": code or _CODES.get(status, "error"), "retryable": retryable}
    return JSONResponse(body, status_code=status, headers=headers)


_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "not_a_video", 422: "invalid_input", 429: "rate_limited",
          500: "internal_error", 503: "unavailable"}


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "Invalid request: " + "; ".join(parts)


def build_api() -> FastAPI:
    api = FastAPI(
        title="Course Studio API",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )

    @api.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if isinstance(exc, Stale) and exc.revision is not None:
            headers = {"ETag": f'"{exc.revision}"'}  # the current revision, to fetch and retry
        return _error(exc.status_code, str(exc), headers, code=exc.code, retryable=exc.retryable)

    @api.exception_handler(Replayed)
    async def _replayed(_: Request, exc: Replayed):
        return exc.response()

    @api.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        # Storage trouble keeps its own retry hint (a full disk is final, a timeout is not).
        return _error(503, str(exc) or "Storage is unavailable right now; try again.", code="storage_error",
                      retryable=exc.retryable)

    @api.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _describe_validation(exc))

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "Something went wrong on our side. Try again in a moment.", retryable=True)

    api.add_middleware(BodyLimit)  # JSON and form bodies are read whole: cap them
    api.include_router(auth.router)
    api.include_router(tokens.router)
    api.include_router(courses.router)
    api.include_router(chapters.router)
    api.include_router(videos.router)
    api.include_router(upload_sessions.router)
    return api
