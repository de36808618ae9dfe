"""The course trash for scripts, over the same services as the editor's Trash page:
list it, restore an item, or delete an item for good (its stored files through the
outbox, told to storage before the answer)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response

from course_app.api.deps import CurrentUser, DbSession
from course_app.api.schemas import ChapterPublic, TrashPublic, VideoPublic
from course_app.db import run_in_session
from course_app.services import outbox, trash, videos

router = APIRouter(tags=["trash"])

Kind = Literal["videos", "chapters"]


@router.get("/api/courses/{course_id}/trash", summary="What the course's trash holds, and until when")
def list_trash(course_id: str, user: CurrentUser, db: DbSession) -> TrashPublic:
    return TrashPublic.of(trash.course_trash(session=db, user=user, course_id=course_id))


@router.post("/api/trash/{kind}/{item_id}/restore",
             summary="Restore a trashed video (to the end of its chapter) or chapter (to the end of the course)")
def restore(kind: Kind, item_id: str, user: CurrentUser, db: DbSession) -> VideoPublic | ChapterPublic:
    if kind == "videos":
        video = trash.restore_video(session=db, user=user, video_id=item_id)
        db.commit()
        return VideoPublic.of(video)
    chapter = trash.restore_chapter(session=db, user=user, chapter_id=item_id)
    db.commit()
    return ChapterPublic.of(chapter, videos.chapter_videos(session=db, chapter_id=chapter.id))


@router.delete("/api/trash/{kind}/{item_id}", status_code=204,
               summary="Delete a trashed video or chapter (with its videos) and their stored files for good")
async def purge(kind: Kind, item_id: str, user: CurrentUser) -> Response:
    if kind == "videos":
        pending = await run_in_session(trash.purge_video, user=user, video_id=item_id)
    else:
        pending = await run_in_session(trash.purge_chapter, user=user, chapter_id=item_id)
    await outbox.carry_out(ids=pending)
    return Response(status_code=204)
