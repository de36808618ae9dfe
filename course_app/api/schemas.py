"""What the JSON API speaks: public views of courses, chapters and videos."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, RootModel

from course_app.models import DESCRIPTION_MAX, TITLE_MAX, Chapter, Course, Video
from course_app.services.videos import thumbnail_urls


class VideoPublic(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID
    chapter_id: uuid.UUID
    title: str
    filename: str
    status: str
    error: str | None
    video_url: str
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
