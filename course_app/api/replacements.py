"""Replacing a video's file in place, and the duplicate warning before an upload.

A replacement is uploaded like any file, through the resumable upload API with
``replaces_video_id`` (POST /api/uploads); these routes follow it: its status, a
retry of failed processing, and dismissing a failed one (services/replacements.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from course_app.api.deps import CurrentUser, DbSession, enforce_rate_limit
from course_app.api.schemas import DuplicateMatch, DuplicateQuery, DuplicatesPublic, ReplacementPublic
from course_app.db import run_in_session
from course_app.services import duplicates, outbox, replacements
from course_app.settings import get_settings

router = APIRouter(tags=["replacing videos"])


@router.post("/api/videos/duplicates", summary="Which of your videos already have this content (before uploading)",
             description="Send the uploader's fingerprints (and/or whole-file SHA1s) of the files you are about to "
             "upload; the answer names where each already is among your own live videos. Nothing of another "
             "user's is ever searched.")
def find_duplicates(body: DuplicateQuery, user: CurrentUser, db: DbSession) -> DuplicatesPublic:
    enforce_rate_limit(get_settings().lookup_rate_limit, f"user:{user.id}", what="duplicate check")
    found = duplicates.find(session=db, user=user, fingerprints=body.fingerprints, sha1s=body.sha1s)
    return DuplicatesPublic(matches=[DuplicateMatch(where=m.where, **{f: getattr(m, f) for f in (
        "matched", "video_id", "title", "lesson_number", "chapter_id", "chapter_title", "chapter_number",
        "course_id", "course_title")}) for m in found])


@router.get("/api/videos/{video_id}/replacement", summary="The new file on its way to replace a video's",
            responses={404: {"description": "No replacement (none started, or it was swapped in already)"}})
def get_replacement(video_id: str, user: CurrentUser, db: DbSession) -> ReplacementPublic:
    return ReplacementPublic.of(replacements.owned_replacement(session=db, user=user, video_id=video_id))


@router.post("/api/videos/{video_id}/replacement/retry", summary="Run a failed replacement's processing again")
def retry_replacement(video_id: str, user: CurrentUser, db: DbSession) -> ReplacementPublic:
    enforce_rate_limit(get_settings().upload_rate_limit, f"user:{user.id}", what="retry")
    return ReplacementPublic.of(replacements.retry(session=db, user=user, video_id=video_id))


@router.delete("/api/videos/{video_id}/replacement", status_code=204,
               summary="Dismiss a failed replacement (the video keeps its file; the new one is deleted)")
async def dismiss_replacement(video_id: str, user: CurrentUser) -> Response:
    pending = await run_in_session(replacements.dismiss, user=user, video_id=video_id)
    await outbox.carry_out(ids=pending)
    return Response(status_code=204)
