"""What the JSON API speaks, every request body and response in one place:
accounts, API tokens, courses, chapters, videos and resumable uploads."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, computed_field

from course_app.models import DESCRIPTION_MAX, TITLE_MAX, ApiToken, Chapter, Course, User, Video, VideoStatus
from course_app.services.upload_sessions import FINGERPRINT_MAX, LedgerView
from course_app.services.videos import stream_url

# Accounts and API tokens ------------------------------------------------------


class Credentials(BaseModel):
    email: str
    password: str
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

    @computed_field
    @property
    def video_url(self) -> str:
        """Where to play or download the video (HTTP ranges); empty until it is ready."""
        return stream_url(self.id) if self.status == VideoStatus.READY else ""

    @classmethod
    def of(cls, video: Video) -> VideoPublic:
        return cls.model_validate(video, from_attributes=True)


class ChapterPublic(BaseModel):
    id: uuid.UUID
    title: str
    position: int
    videos: list[VideoPublic] = []

    @classmethod
    def of(cls, chapter: Chapter, videos: list[Video] | None = None) -> ChapterPublic:
        return cls(id=chapter.id, title=chapter.title, position=chapter.position,
                   videos=[VideoPublic.of(v) for v in videos or []])


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
    created_at: datetime
    updated_at: datetime
    chapters: list[ChapterPublic] = []

    @classmethod
    def of(cls, course: Course, chapters: list[ChapterPublic] | None = None) -> CoursePublic:
        return cls(id=course.id, title=course.title, description=course.description, status=course.status,
                   created_at=course.created_at, updated_at=course.updated_at, chapters=chapters or [])


class CourseCreate(BaseModel):
    title: str = Field(max_length=TITLE_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)


class ChapterCreate(BaseModel):
    title: str = Field(max_length=TITLE_MAX)


# Resumable uploads ------------------------------------------------------------


class UploadCreate(BaseModel):
    course_id: str
    chapter_id: str
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
            id=s.id, video_id=s.video_id, course_id=s.course_id, chapter_id=s.chapter_id, filename=s.filename,
            size=s.size_bytes, content_type=s.content_type, fingerprint=s.fingerprint, chunk_size=s.chunk_size,
            part_count=s.part_count, status=s.status, error=s.error, confirmed_bytes=view.confirmed_bytes,
            parts=[PartPublic(number=p.number, size=p.size, sha1=p.sha1) for p in view.parts],
            missing_parts=view.missing_parts, created_at=s.created_at, updated_at=s.updated_at,
        )
