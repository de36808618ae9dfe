"""Chapters for scripts: rename, reorder their videos, delete. Edits take
``If-Match`` and ``Idempotency-Key`` (api/editing.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from course_app.api.editing import EDIT_HEADERS, EditDep, apply_edit
from course_app.api.schemas import ChapterPublic, ChapterUpdate, VideoList, VideoOrder
from course_app.services import courses, outbox, trash, videos

router = APIRouter(prefix="/api/chapters", tags=["chapters"])


@router.patch("/{chapter_id}", response_model=ChapterPublic, summary="Rename a chapter", description=EDIT_HEADERS)
async def rename_chapter(chapter_id: str, body: ChapterUpdate, edit: EditDep) -> Response:
    _, answer = await apply_edit(edit, courses.rename_chapter, present=ChapterPublic.of, chapter_id=chapter_id,
                                 title=body.title)
    return answer


@router.put("/{chapter_id}/video-order", response_model=VideoList, summary="Put a chapter's videos in a new order",
            description=EDIT_HEADERS)
async def reorder_videos(chapter_id: str, body: VideoOrder, edit: EditDep) -> Response:
    _, answer = await apply_edit(edit, videos.reorder_videos, present=VideoList.of, chapter_id=chapter_id,
                                 video_ids=body.video_ids)
    return answer


@router.delete("/{chapter_id}", status_code=204,
               summary="Move a chapter with its videos to the course's trash (files kept until the trash is emptied)",
               description=EDIT_HEADERS)
async def delete_chapter(chapter_id: str, edit: EditDep) -> Response:
    pending, answer = await apply_edit(edit, trash.trash_chapter, status_code=204, chapter_id=chapter_id)
    await outbox.carry_out(ids=pending)
    return answer
