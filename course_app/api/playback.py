"""Playback: signed links for players, the media those links serve, and the
cookie-authenticated stream and thumbnail routes for API clients.

Every media answer carries ``ETag`` (the object's SHA1), honours ``If-None-Match``
(304) and single byte ranges (206, ``If-Range``), and says ``Accept-Ranges``.
Answers to a signed link are ``public, immutable``: the bytes at a link's path
never change (a replaced video is a new object with a new path), so a cache never
holds stale bytes and nothing ever needs purging; ``max-age`` is the time left on
the link, so no cache keyed on the URL answers after it expired. Answers chosen by
a cookie or token are ``private``."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel

from course_app.api.deps import CurrentUser, DbSession, StorageDep, client_ip, enforce_rate_limit
from course_app.api.errors import error_response
from course_app.api.security_headers import inline_disposition
from course_app.db import session_scope
from course_app.errors import NotFound
from course_app.services import playback
from course_app.services.playback import MediaObject
from course_app.settings import get_settings
from course_app.storage.base import Storage

router = APIRouter(tags=["playback"])
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
NO_STORE = "private, no-store"


class PlaybackPublic(BaseModel):
    video_id: str
    url: str
    poster_url: str
    thumbnail_urls: dict[str, str]
    expires_at: str


@router.get("/api/videos/{video_id}/playback",
            summary="Short-lived signed links to play a video and show its thumbnails",
            description="The owner may play any ready video; anyone signed in, the ready videos of a published "
                        "course. The links need no cookie and expire (`expires_at`); ask again for new ones.")
def playback_links(video_id: str, user: CurrentUser, db: DbSession, storage: StorageDep,
                   response: Response) -> PlaybackPublic:
    links = playback.playback_links(session=db, user=user, storage=storage, video_id=video_id)
    response.headers["Cache-Control"] = NO_STORE  # the links are this user's, and short-lived
    return PlaybackPublic(video_id=links.video_id, url=links.url, poster_url=links.poster_url,
                          thumbnail_urls=links.thumbnail_urls, expires_at=links.expires_at.isoformat())


@router.get("/api/media/{video_id}/{kind}/{version}", summary="The bytes behind a signed playback link",
            description="No cookie needed: the link's signature and expiry are the permission. 403 when the "
                        "link was changed (`link_invalid`), has expired (`link_expired`) or was a student's "
                        "link to a course that is no longer published (`link_withdrawn`).")
def media(video_id: str, kind: str, version: str, request: Request, storage: StorageDep) -> Response:
    enforce_rate_limit(get_settings().media_rate_limit, f"ip:{client_ip(request)}", what="media")
    expires, audience = request.query_params.get("expires"), request.query_params.get("audience")
    playback.check_link(video_id=video_id, kind=kind, version=version, audience=audience, expires=expires,
                        signature=request.query_params.get("signature"))
    with session_scope() as session:  # short: not held while the bytes go out
        found = playback.linked_object(session=session, video_id=video_id, kind=kind, version=version,
                                       audience=audience)
    left = max(0, int(expires) - int(time.time()))
    return serve(request, storage, found, cache_control=f"public, max-age={left}, immutable")


@router.get("/api/videos/{video_id}/stream", summary="Play a video (HTTP ranges; on B2 a short-lived link)")
def stream_video(video_id: str, request: Request, user: CurrentUser, db: DbSession, storage: StorageDep) -> Response:
    video = playback.watchable_video(session=db, user=user, video_id=video_id)
    url = storage.download_url(video.storage_key, video.backblaze_file_id or video.storage_key, valid_seconds=300)
    if url:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": NO_STORE})
    found = MediaObject(video.storage_key, video.backblaze_file_id or video.storage_key, video.content_type,
                        video.filename, video.size_bytes, video.sha1)
    return serve(request, storage, found, cache_control=NO_STORE)


@router.get("/api/videos/{video_id}/thumbnail/{size}", summary="A video's thumbnail (JPEG; small or large)")
def video_thumbnail(video_id: str, size: str, request: Request, user: CurrentUser, db: DbSession,
                    storage: StorageDep) -> Response:
    video = playback.watchable_video(session=db, user=user, video_id=video_id, ready=False)
    key = {"small": video.thumbnail_small_key, "large": video.thumbnail_large_key}.get(size)
    if key is None:
        raise NotFound("This video has no thumbnail of that size (yet).")
    # The key never names other bytes (services/media.py), so a cache may keep them for good.
    found = MediaObject(key, "", "image/jpeg", f"{video.title}-{size}.jpg", None, None)
    return serve(request, storage, found, cache_control=PRIVATE_IMMUTABLE)


# Answering with bytes ----------------------------------------------------------------------


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in header.split(","))


def serve(request: Request, storage: Storage, found: MediaObject, *, cache_control: str) -> Response:
    """The object, whole or one range, with validators and cache headers."""
    size, sha1 = found.size, found.sha1
    if size is None or not sha1:
        stored = storage.stat(found.key, found.file_id)
        if stored is None:
            raise NotFound("This file is missing from storage.")
        size, sha1 = stored.size, stored.sha1
    etag = f'"{sha1}"'
    headers = {"ETag": etag, "Cache-Control": cache_control, "Accept-Ranges": "bytes"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    headers |= {"Content-Type": found.content_type, "Content-Disposition": inline_disposition(found.filename)}
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's copy is another version: send it all
    try:
        byte_range = _byte_range(range_header, size)
    except _Unsatisfiable:
        return error_response(416, "The requested range is outside the file.",
                              headers={"Content-Range": f"bytes */{size}", "ETag": etag})
    if byte_range is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(storage.open_range(found.key, found.file_id, 0, None), 200, headers=headers)
    start, end = byte_range
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(storage.open_range(found.key, found.file_id, start, end), 206, headers=headers)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single-range header (the first of several), None
    for the whole file."""
    if not header:
        return None
    match = RANGE_RE.match(header.split(",")[0].strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start, end = int(first), int(last) if last else size - 1
    else:  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start >= size or start > end:
        raise _Unsatisfiable(size)
    return start, min(end, size - 1)


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        self.size = size
