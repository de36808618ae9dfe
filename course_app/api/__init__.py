"""The backend-only HTTP API, mounted into Reflex's server with api_transformer."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from course_app.api import (auth, chapters, courses, health, metrics_route, playback, replacements, tokens, trash,
                            upload_sessions, videos)
from course_app.api.editing import Replayed
from course_app.api.body_limit import BodyLimit
from course_app.api.errors import domain_error_response, error_response
from course_app.errors import DomainError
from course_app.storage.base import StorageError

log = logging.getLogger(__name__)


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
        return domain_error_response(exc)

    @api.exception_handler(Replayed)
    async def _replayed(_: Request, exc: Replayed):
        return exc.response()

    @api.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        # Storage trouble keeps its own retry hint (a full disk is final, a timeout is not).
        return error_response(503, str(exc) or "Storage is unavailable right now; try again.", code="storage_error",
                              retryable=exc.retryable)

    @api.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _describe_validation(exc))

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Something went wrong on our side. Try again in a moment.", retryable=True)

    api.add_middleware(BodyLimit)  # JSON and form bodies are read whole: cap them
    api.include_router(auth.router)
    api.include_router(tokens.router)
    api.include_router(courses.router)
    api.include_router(chapters.router)
    api.include_router(replacements.router)  # before videos: /api/videos/duplicates is no video id
    api.include_router(videos.router)
    api.include_router(playback.router)
    api.include_router(upload_sessions.router)
    api.include_router(trash.router)
    api.include_router(health.router)
    api.include_router(metrics_route.router)
    return api
