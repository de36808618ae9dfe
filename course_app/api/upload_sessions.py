"""Resumable uploads: create a session, send parts (any order, again if need be),
ask what is confirmed, complete, or abort. The ledger in the database is the
truth about progress, so a refresh or a server restart loses nothing."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from course_app.api.deps import CurrentUser, StorageDep, drain_small_body, enforce_rate_limit_async
from course_app.api.schemas import PartPublic, UploadComplete, UploadCreate, UploadPublic, VideoPublic
from course_app.db import run_in_session, session_scope
from course_app.errors import DomainError, InvalidInput
from course_app.services import outbox, upload_sessions
from course_app.services.byte_pump import storage_thread, stream_to_thread
from course_app.services.videos import format_size
from course_app.settings import get_settings

router = APIRouter(prefix="/api/uploads", tags=["resumable uploads"])

HEAD_MAX = 64 * 1024


def _decode_head(head: str) -> bytes:
    try:
        data = base64.b64decode(head, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("'head' must be base64.") from None
    if not data or len(data) > HEAD_MAX:
        raise InvalidInput(f"'head' must hold the file's first bytes (1 to {HEAD_MAX} bytes).")
    return data


@router.post("", status_code=201, summary="Start a resumable upload (or find the open one for this file)",
             responses={200: {"description": "An open upload of the same file: resume it"}})
async def create_upload(body: UploadCreate, user: CurrentUser, storage: StorageDep) -> Response:
    settings = get_settings()
    await enforce_rate_limit_async(settings.upload_rate_limit, f"user:{user.id}", what="upload")
    view, created = await storage_thread(  # storage work: it may start a large file in B2
        upload_sessions.create,
        session_factory=session_scope, storage=storage, user=user, course_id=body.course_id,
        chapter_id=body.chapter_id, filename=body.filename, size=body.size, fingerprint=body.fingerprint,
        head=_decode_head(body.head), title=body.title, sha1=body.sha1, max_bytes=settings.max_upload_bytes,
        replaces_video_id=body.replaces_video_id,
        quota_bytes=settings.quota_bytes, configured_part_size=settings.upload_chunk_bytes,
    )
    return JSONResponse(UploadPublic.of(view).model_dump(mode="json"), status_code=201 if created else 200)


@router.get("", summary="Your unfinished uploads in a course, with their confirmed parts")
async def list_uploads(user: CurrentUser, course_id: str = Query(...)) -> list[UploadPublic]:
    views = await run_in_session(upload_sessions.unfinished_for_course, user=user, course_id=course_id)
    return [UploadPublic.of(v) for v in views]


@router.get("/{upload_id}", summary="An upload's status: which parts are confirmed")
async def get_upload(upload_id: str, user: CurrentUser) -> UploadPublic:
    return UploadPublic.of(await run_in_session(upload_sessions.view, user=user, upload_id=upload_id))


@router.put("/{upload_id}/parts/{number}", summary="Send part N (raw bytes; X-Part-SHA1 optional but checked)")
async def put_part(upload_id: str, number: int, request: Request, user: CurrentUser, storage: StorageDep) -> PartPublic:
    settings = get_settings()
    await enforce_rate_limit_async(settings.part_rate_limit, f"user:{user.id}", what="part upload")
    length = request.headers.get("content-length")
    size = int(length) if length and length.isdigit() else None
    client_sha1 = request.headers.get("x-part-sha1")
    # Refuse before storing a byte: owner, open session, part number, exact size, SHA1's form.
    try:
        target = await run_in_session(upload_sessions.part_target, user=user, upload_id=upload_id, number=number,
                                      size=size, client_sha1=client_sha1)
    except DomainError:
        await drain_small_body(request, size)
        raise
    part, _ = await stream_to_thread(
        lambda source: upload_sessions.store_part(
            session_factory=session_scope, storage=storage, user=user, upload_id=upload_id, number=number,
            size=size, chunks=source, client_sha1=client_sha1, target=target,
        ),
        request.stream(),
        limit=size,
        too_large=f"Part {number} must be exactly {format_size(size)}.",
    )
    return PartPublic(number=part.number, size=part.size, sha1=part.sha1)


@router.post("/{upload_id}/complete", summary="Join the parts; the video becomes ready once verified")
async def complete_upload(
    upload_id: str, user: CurrentUser, storage: StorageDep, body: UploadComplete | None = None
) -> VideoPublic:
    # Parts still missing: a 409 whose body lists them ("missing_parts").
    video = await storage_thread(  # joins the parts: as long as the file
        upload_sessions.complete, session_factory=session_scope, storage=storage, user=user,
        upload_id=upload_id, sha1=body.sha1 if body else None,
    )
    return VideoPublic.of(video)


@router.delete("/{upload_id}", status_code=204, summary="Cancel an upload; nothing stays stored")
async def abort_upload(upload_id: str, user: CurrentUser) -> Response:
    await run_in_session(upload_sessions.abort, user=user, upload_id=upload_id)
    # Storage is told now (the parts and any partial object); the outbox retries if it is down.
    await outbox.carry_out()
    return Response(status_code=204)
