"""What the JSON API speaks, every request body and response in one place:
accounts, API tokens, courses, chapters, videos, the trash and resumable uploads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, RootModel, computed_field

from course_app.models import (DESCRIPTION_MAX, TITLE_MAX, ApiToken, Chapter, Course, User, Video, VideoReplacement)
from course_app.services.trash import CourseTrash
from course_app.services.upload_sessions import FINGERPRINT_MAX, LedgerView
from course_app.services.videos import stream_url, thumbnail_urls

# Accounts and API tokens ------------------------------------------------------


class Credentials(BaseModel):
    email: str
    password: str
    next: str = ""


class SupabaseSignIn(BaseModel):
    access_token: str
    next: str = ""


class UserPublic(BaseModel):
    id: int
    email: str
    role: str

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(id=user.id, email=user.email, role=user.role)


class TokenCreate(BaseModel):
    name: str


class TokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenPublic:
        return cls(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at,
                   last_used_at=row.last_used_at)


class TokenCreated(TokenPublic):
    token: str


# Courses, chapters and videos ----------------------------------------------------


class VideoPublic(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID
    chapter_id: uuid.UUID
    title: str
    filename: str
    status: str
    error: str | None
    backblaze_file_id: str | None
    size_bytes: int | None
    sha1: str | None
    content_type: str
    duration_seconds: float | None
    position: int
    created_at: datetime
    updated_at: datetime
    # Processing: the stage it is at (or failed in), the failure's machine code and
    # whether Retry can help; what probing found; the thumbnails' URLs once ready.
    stage: str | None
    failure_code: str | None
    retryable: bool | None
    width: int | None
    height: int | None
    video_codec: str | None
    audio_codec: str | None
    bitrate: int | None
    thumbnail_urls: dict[str, str] = {}

    @computed_field
    @property
    def video_url(self) -> str:
        """Where to play or download the video (HTTP ranges); derived from its id, so it
        is known from the upload's answer on (it answers 409 until the video is ready)."""
        return stream_url(self.id)

    @classmethod
    def of(cls, video: Video) -> VideoPublic:
        public = cls.model_validate(video, from_attributes=True)
        public.thumbnail_urls = thumbnail_urls(video)
        return public


class ChapterPublic(BaseModel):
    id: uuid.UUID
    title: str
    position: int
    videos: list[VideoPublic] = []

    @classmethod
    def of(cls, chapter: Chapter, videos: list[Video] | None = None) -> ChapterPublic:
        return cls(id=chapter.id, title=chapter.title, position=chapter.position,
                   videos=[VideoPublic.of(v) for v in videos or []])


class ChapterList(RootModel[list[ChapterPublic]]):
    @classmethod
    def of(cls, chapters: list[Chapter]) -> ChapterList:
        return cls([ChapterPublic.of(c) for c in chapters])


class VideoList(RootModel[list[VideoPublic]]):
    @classmethod
    def of(cls, videos: list[Video]) -> VideoList:
        return cls([VideoPublic.of(v) for v in videos])


class CourseSummaryPublic(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    status: str
    chapter_count: int
    video_count: int
    created_at: datetime
    updated_at: datetime


class CoursePublic(BaseModel):
    id: uuid.UUID
    title: str
    description: str
    status: str
    revision: int = Field(description="Advanced by every edit; send it back as If-Match to refuse stale edits.")
    created_at: datetime
    updated_at: datetime
    chapters: list[ChapterPublic] = []

    @classmethod
    def of(cls, course: Course, chapters: list[ChapterPublic] | None = None) -> CoursePublic:
        return cls(id=course.id, title=course.title, description=course.description, status=course.status,
                   revision=course.revision, created_at=course.created_at, updated_at=course.updated_at,
                   chapters=chapters or [])


class CourseCreate(BaseModel):
    title: str = Field(max_length=TITLE_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)


class ChapterCreate(BaseModel):
    title: str = Field(max_length=TITLE_MAX)


class CourseUpdate(BaseModel):
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    status: str | None = Field(default=None, description="draft or published")


class ChapterUpdate(BaseModel):
    title: str = Field(max_length=TITLE_MAX)


class ChapterOrder(BaseModel):
    chapter_ids: list[str] = Field(description="Every chapter of the course once, in the new order.")


class VideoOrder(BaseModel):
    video_ids: list[str] = Field(description="Every video of the chapter once, in the new order.")


class VideoUpdate(BaseModel):
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    chapter_id: str | None = Field(default=None, description="Move the video to this chapter of the same course.")
    position: int | None = Field(default=None, ge=0, description="Its index in the chapter (default: last when moving).")


class TrashItemPublic(BaseModel):
    kind: Literal["video", "chapter"]
    id: uuid.UUID
    title: str
    chapter_title: str
    chapter_in_trash: bool
    video_count: int
    size_bytes: int
    deleted_at: datetime
    expires_at: datetime


class TrashPublic(BaseModel):
    course_id: uuid.UUID
    keep_days: int
    trashed_bytes: int
    counts_toward_quota: bool = True  # trashed files stay stored until purged
    items: list[TrashItemPublic]

    @classmethod
    def of(cls, listing: CourseTrash) -> TrashPublic:
        return cls(course_id=listing.course.id, keep_days=listing.keep_days, trashed_bytes=listing.trashed_bytes,
                   items=[TrashItemPublic.model_validate(item, from_attributes=True) for item in listing.items])


# Resumable uploads ------------------------------------------------------------


class UploadCreate(BaseModel):
    course_id: str | None = Field(default=None, description="Required unless 'replaces_video_id' is given")
    chapter_id: str | None = Field(default=None, description="Required unless 'replaces_video_id' is given")
    replaces_video_id: str | None = Field(
        default=None, description="Replace this video's file in place: the video keeps its id, title and position "
        "and plays its old file until the new one is processed; then they are swapped in one transaction. "
        "Follow it with GET /api/videos/{id}/replacement.")
    filename: str = Field(max_length=4096)
    size: int = Field(gt=0)
    fingerprint: str = Field(min_length=1, max_length=FINGERPRINT_MAX)
    head: str = Field(description="The file's first bytes (at least 4 KiB, or the whole file if smaller), base64")
    title: str | None = None
    sha1: str | None = Field(default=None, description="The whole file's SHA1, when known up front")


class UploadComplete(BaseModel):
    sha1: str | None = Field(default=None, description="The whole file's SHA1, checked against storage where it can be")


class PartPublic(BaseModel):
    number: int
    size: int
    sha1: str


class UploadPublic(BaseModel):
    id: uuid.UUID
    video_id: uuid.UUID | None
    replaces_video_id: uuid.UUID | None = None  # a replacement's upload: the video whose file it replaces
    course_id: uuid.UUID
    chapter_id: uuid.UUID | None
    filename: str
    size: int
    content_type: str
    fingerprint: str
    chunk_size: int
    part_count: int
    status: str
    error: str | None
    confirmed_bytes: int
    parts: list[PartPublic]
    missing_parts: list[int]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: LedgerView) -> UploadPublic:
        s = view.session
        return cls(
            id=s.id, video_id=s.video_id, replaces_video_id=s.replaces_video_id, course_id=s.course_id, chapter_id=s.chapter_id, filename=s.filename,
            size=s.size_bytes, content_type=s.content_type, fingerprint=s.fingerprint, chunk_size=s.chunk_size,
            part_count=s.part_count, status=s.status, error=s.error, confirmed_bytes=view.confirmed_bytes,
            parts=[PartPublic(number=p.number, size=p.size, sha1=p.sha1) for p in view.parts],
            missing_parts=view.missing_parts, created_at=s.created_at, updated_at=s.updated_at,
        )


# Replacing a video's file and the duplicate warning -------------------------------------


class ReplacementPublic(BaseModel):
    """A new file on its way to replace a video's (the video keeps its old one until the swap)."""

    video_id: uuid.UUID
    filename: str
    status: str = Field(description="uploading, processing or failed; once processed it is swapped into the "
                        "video and this answers 404")
    stage: str | None
    failure_code: str | None
    retryable: bool | None
    error: str | None
    message: str = Field(description="What the editor shows on the video's row")
    size_bytes: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: VideoReplacement) -> ReplacementPublic:
        from course_app.services.replacements import describe

        return cls(video_id=row.video_id, filename=row.filename, status=row.status, stage=row.stage,
                   failure_code=row.failure_code, retryable=row.retryable, error=row.error, message=describe(row),
                   size_bytes=row.size_bytes, created_at=row.created_at, updated_at=row.updated_at)


class DuplicateQuery(BaseModel):
    fingerprints: list[str] | None = Field(
        default=None, description="Uploader fingerprints: 'v1:<size>:<SHA1 of the first MiB then the last MiB>'")
    sha1s: list[str] | None = Field(default=None, description="Whole-file SHA1s (40 hex), if known")


class DuplicateMatch(BaseModel):
    matched: str = Field(description="The fingerprint or SHA1 that matched")
    video_id: uuid.UUID
    title: str
    lesson_number: int
    chapter_id: uuid.UUID
    chapter_title: str
    chapter_number: int
    course_id: uuid.UUID
    course_title: str
    where: str = Field(description="'Lesson 3 (“Intro”) of Course X, chapter 2 “Basics”'")


class DuplicatesPublic(BaseModel):
    matches: list[DuplicateMatch]
