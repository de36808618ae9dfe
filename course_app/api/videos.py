"""Video upload, details, retry and deletion (playback: api/playback.py). Storage is reached only on the
server (these routes, services and the editor's State): the browser never sees a
storage credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from sqlmodel import Session

from course_app.api.deps import CurrentUser, DbSession, StorageDep, enforce_rate_limit, enforce_rate_limit_async
from course_app.api.multipart import Field, FileData, FileEnd, FileStart, multipart_events
from course_app.api.editing import EDIT_HEADERS, EditDep, apply_edit
from course_app.api.schemas import VideoPublic, VideoUpdate
from course_app.db import run_in_session
from course_app.errors import InvalidInput, TooLarge
from course_app.models import User, Video
from course_app.services import courses, ordering, outbox, processing, trash, uploads, videos
from course_app.settings import get_settings

router = APIRouter(tags=["videos"])

FORM_OVERHEAD = 64 * 1024  # room for the form's other fields and boundaries


def _declared_size(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        size = int(value)
    except ValueError:
        raise InvalidInput("'size' must be a whole number of bytes.") from None
    if size < 0:
        raise InvalidInput("'size' must be a whole number of bytes.")
    return size


@router.post(
    "/api/upload",
    status_code=201,
    summary="Upload a video into a chapter",
    description=(
        "multipart/form-data with `course_id`, `chapter_id`, optional `title` and `size`, then `file` "
        "(the fields must come before the file; they may also be given in the query string). "
        "The file is streamed to storage; its type is checked from its first bytes."
    ),
)
async def upload_video(request: Request, user: CurrentUser, storage: StorageDep) -> VideoPublic:
    settings = get_settings()
    await enforce_rate_limit_async(settings.upload_rate_limit, f"user:{user.id}", what="upload")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_upload_bytes + FORM_OVERHEAD:
        raise TooLarge(f"The file is larger than the {videos.format_size(settings.max_upload_bytes)} limit.")

    fields = {k: v for k, v in request.query_params.items() if k in ("course_id", "chapter_id", "title", "size")}
    events = multipart_events(request.headers.get("content-type", ""), request.stream())
    start: FileStart | None = None
    async for event in events:
        if isinstance(event, Field):
            fields[event.name] = event.value
        elif isinstance(event, FileStart):
            start = event
            break
    if start is None or start.name != "file":
        raise InvalidInput("Add the video as a form field named 'file'.")
    for name in ("course_id", "chapter_id"):
        if not fields.get(name):
            raise InvalidInput(f"'{name}' is required and must come before the file in the form.")
    # Refuse someone else's chapter before reading a byte of the file.
    await run_in_session(courses.owned_chapter, user=user, chapter_id=fields["chapter_id"], course_id=fields["course_id"])

    async def file_chunks() -> AsyncIterator[bytes]:
        async for event in events:
            if isinstance(event, FileData):
                yield event.data
            elif isinstance(event, FileEnd):
                return
        raise InvalidInput("The upload was cut off before the end of the file. Try again.")

    video = await uploads.ingest(
        user=user,
        storage=storage,
        course_id=fields["course_id"],
        chapter_id=fields["chapter_id"],
        filename=start.filename,
        title=fields.get("title"),
        chunks=file_chunks(),
        max_bytes=settings.max_upload_bytes,
        declared_size=_declared_size(fields.get("size")),
    )
    return VideoPublic.of(video)


@router.get("/api/videos/{video_id}", summary="A video's details")
def get_video(video_id: str, user: CurrentUser, db: DbSession) -> VideoPublic:
    return VideoPublic.of(videos.owned_video(session=db, user=user, video_id=video_id))


def _update_video(*, session: Session, user: User, revision: int | None, video_id: str, body: VideoUpdate) -> Video:
    """Rename and move in one transaction, checked once against ``revision``."""
    if body.title is None and body.chapter_id is None and body.position is None:
        raise InvalidInput("Send at least one of 'title', 'chapter_id' and 'position'.")
    video = videos.owned_video(session=session, user=user, video_id=video_id)
    if body.title is not None:
        video = videos.rename_video(session=session, user=user, video_id=video_id, title=body.title, revision=revision)
        revision = ordering.then(session, revision)
    if body.chapter_id is not None or body.position is not None:
        video = videos.move_video(session=session, user=user, video_id=video_id,
                                  chapter_id=body.chapter_id or video.chapter_id, position=body.position,
                                  revision=revision)
    return video


@router.patch("/api/videos/{video_id}", response_model=VideoPublic,
              summary="Rename a video, or move it within its chapter or to another chapter of the course",
              description=EDIT_HEADERS)
async def update_video(video_id: str, body: VideoUpdate, edit: EditDep) -> Response:
    _, answer = await apply_edit(edit, _update_video, present=VideoPublic.of, video_id=video_id, body=body)
    return answer


@router.delete("/api/videos/{video_id}", status_code=204,
               summary="Move a video to its course's trash (its file is kept until the trash is emptied)",
               description=EDIT_HEADERS)
async def delete_video(video_id: str, edit: EditDep) -> Response:
    pending, answer = await apply_edit(edit, trash.trash_video, status_code=204, video_id=video_id)
    await outbox.carry_out(ids=pending)  # an upload still open is cancelled
    return answer


@router.post("/api/videos/{video_id}/retry", summary="Run a video's failed processing stage again")
def retry_video(video_id: str, user: CurrentUser, db: DbSession) -> VideoPublic:
    enforce_rate_limit(get_settings().upload_rate_limit, f"user:{user.id}", what="retry")
    wait = timedelta(seconds=get_settings().processing_queue_wait_seconds)
    return VideoPublic.of(processing.retry(session=db, user=user, video_id=video_id, queue_wait=wait))
