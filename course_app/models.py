"""SQLModel tables: every fact the product knows lives here."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class CourseStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class VideoStatus(StrEnum):
    UPLOADING = "uploading"  # the row is written first; the bytes are on their way
    PROCESSING = "processing"  # stored; a worker verifies, probes and thumbnails it (``stage``)
    READY = "ready"
    FAILED = "failed"


class ProcessingStage(StrEnum):
    """Where a ``processing`` video is, or where a ``failed`` one stopped
    (services/processing.py; a failed upload has no stage)."""

    VERIFYING = "verifying"  # stored size and SHA1 against the row
    PROBING = "probing"  # duration, picture size, codecs
    THUMBNAIL = "thumbnail"  # a frame from about 10 % in, two sizes


class UploadStatus(StrEnum):
    """A resumable upload's session (services/upload_sessions.py)."""

    ACTIVE = "active"
    COMPLETING = "completing"  # storage is joining the parts
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXPIRED = "expired"


ROLES = ("instructor", "admin")
COURSE_STATUSES = tuple(status.value for status in CourseStatus)
VIDEO_STATUSES = tuple(status.value for status in VideoStatus)

TITLE_MAX = 200
DESCRIPTION_MAX = 5000
EMAIL_MAX = 254
TOKEN_NAME_MAX = 100


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A moment, always read back as an aware UTC datetime. Stored as
    ``DateTime(timezone=True)``: PostgreSQL keeps the zone (timestamptz); SQLite
    keeps none, so the naive value it hands back is UTC (every value is written in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


def _timestamp(**kwargs) -> Field:  # type: ignore[valid-type]
    return Field(default_factory=utcnow, sa_column_kwargs=kwargs, sa_type=UtcDateTime())


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=EMAIL_MAX, unique=True, index=True)
    password_hash: str
    role: str = Field(default="instructor", max_length=20)
    # The Supabase user (the access token's ``sub``) of an account made by Supabase sign-in.
    supabase_sub: str | None = Field(default=None, max_length=255, unique=True, index=True)
    created_at: datetime = _timestamp()


class AuthSession(SQLModel, table=True):
    """A browser log-in; the token itself is never stored, only its hash."""

    __tablename__ = "auth_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_type=UtcDateTime())


class ApiToken(SQLModel, table=True):
    """A personal API token for scripts; stored as a hash, shown once."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=TOKEN_NAME_MAX)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = _timestamp()
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime())


class Course(SQLModel, table=True):
    __tablename__ = "courses"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    title: str = Field(max_length=TITLE_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    status: str = Field(default=CourseStatus.DRAFT, max_length=20)
    # Advanced by every edit of the course, its chapters or videos, in the edit's own
    # transaction; an edit made on an older view is refused (services/ordering.py).
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Advanced by every change open editors should show, edits and status changes
    # (uploads finishing, processing) alike: what live sync watches (services/live.py).
    pulse: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


# The course trash (services/trash.py): a deleted chapter or video keeps its row and
# its stored file, with ``deleted_at`` set, until it is restored or purged. Every
# query that shows or orders rows asks for ``deleted_at IS NULL``. A trashed row
# leaves its parent's order: its position moves below TRASH_POSITION_TOP (unique
# per parent), so live rows stay 0..n-1 and the unique (parent, position)
# constraints hold. Videos trashed with their chapter (same ``deleted_at``) keep
# their places inside it: a trashed chapter has no live videos to collide with.
TRASH_POSITION_TOP = -1_000_000


class Chapter(SQLModel, table=True):
    __tablename__ = "chapters"
    __table_args__ = (UniqueConstraint("course_id", "position", name="uq_chapters_course_position"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    course_id: uuid.UUID = Field(foreign_key="courses.id", index=True, ondelete="CASCADE")
    title: str = Field(max_length=TITLE_MAX)
    position: int
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    deleted_at: datetime | None = Field(default=None, sa_type=UtcDateTime(), index=True)  # in the trash since


class ProcessingColumns(SQLModel):
    """The columns of a file going through processing (services/processing.py), shared
    by ``Video`` and ``VideoReplacement``, which that one state machine handles alike.
    Not a table: each table gets its own copy of these columns (and of the index on
    ``lease_expires_at``, named after the table)."""

    # The stage a worker is at or failed in, the failure's machine code and whether
    # retrying can help ...
    stage: str | None = Field(default=None, max_length=20)
    failure_code: str | None = Field(default=None, max_length=40)
    retryable: bool | None = None
    # ... the lease of the worker holding the job (its token, renewed by heartbeats;
    # before a worker claims the job it is how long the queue may take), the claims so far
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime(), index=True)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UtcDateTime())
    attempts: int = 0
    # ... and what probing and the thumbnail stage found.
    duration_seconds: float | None = None
    width: int | None = None
    height: int | None = None
    video_codec: str | None = Field(default=None, max_length=40)
    audio_codec: str | None = Field(default=None, max_length=40)
    bitrate: int | None = Field(default=None, sa_type=BigInteger)
    thumbnail_small_key: str | None = Field(default=None, max_length=600)
    thumbnail_large_key: str | None = Field(default=None, max_length=600)


class Video(ProcessingColumns, table=True):
    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("chapter_id", "position", name="uq_videos_chapter_position"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    course_id: uuid.UUID = Field(foreign_key="courses.id", index=True)
    chapter_id: uuid.UUID = Field(foreign_key="chapters.id", index=True)
    title: str = Field(max_length=TITLE_MAX)
    filename: str = Field(max_length=1024)
    backblaze_file_id: str | None = Field(default=None, max_length=200, index=True)
    storage_key: str = Field(max_length=512, unique=True)
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)
    sha1: str | None = Field(default=None, max_length=40)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    status: str = Field(default=VideoStatus.UPLOADING, max_length=20)
    error: str | None = Field(default=None, max_length=1000)
    position: int
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    deleted_at: datetime | None = Field(default=None, sa_type=UtcDateTime(), index=True)  # in the trash since
    # The uploader's fingerprint of the file ("v1:<size>:<SHA1 of its first and last
    # MiB>", components/uploads/hash.js): what the duplicate warning matches before a
    # byte is sent (services/duplicates.py). Set by resumable uploads and by verifying.
    fingerprint: str | None = Field(default=None, max_length=200, index=True)


class VideoReplacement(ProcessingColumns, table=True):
    """A new file on its way to replace a lesson's video in place
    (services/replacements.py). The lesson keeps playing its old file meanwhile;
    this row goes through the same processing as a video (uploading → processing:
    verifying | probing | thumbnail → swapped into the video in one transaction, or
    failed, shown on the lesson's row until retried or dismissed). Never listed in
    the outline: at most one per video. Its processing columns are ``Video``'s
    (``ProcessingColumns``)."""

    __tablename__ = "video_replacements"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    video_id: uuid.UUID = Field(foreign_key="videos.id", unique=True, ondelete="CASCADE")
    course_id: uuid.UUID = Field(foreign_key="courses.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=1024)
    backblaze_file_id: str | None = Field(default=None, max_length=200)
    storage_key: str = Field(max_length=512, unique=True)
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)
    sha1: str | None = Field(default=None, max_length=40)
    fingerprint: str | None = Field(default=None, max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    status: str = Field(default=VideoStatus.UPLOADING, max_length=20)  # uploading | processing | failed
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class StorageDeletion(SQLModel, table=True):
    """The outbox of stored files to delete. Written in the same transaction that
    removes (or gives up on) their video row; carried out and removed once storage
    confirms, retried until then."""

    __tablename__ = "storage_deletions"

    id: int | None = Field(default=None, primary_key=True)
    storage_key: str = Field(max_length=512, index=True)
    file_id: str | None = Field(default=None, max_length=200)
    # Set when the thing to remove is an unfinished multipart upload (B2 large file).
    multipart_upload_id: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="video deleted", max_length=200)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _timestamp()
    next_attempt_at: datetime = _timestamp()


class UploadSession(SQLModel, table=True):
    """The ledger of a resumable upload: the truth about its progress, so a
    refresh, a closed tab or a server restart loses nothing."""

    __tablename__ = "upload_sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    video_id: uuid.UUID | None = Field(default=None, foreign_key="videos.id", index=True, ondelete="SET NULL")
    course_id: uuid.UUID = Field(foreign_key="courses.id", index=True, ondelete="CASCADE")
    chapter_id: uuid.UUID | None = Field(default=None, foreign_key="chapters.id", index=True, ondelete="SET NULL")
    filename: str = Field(max_length=1024)
    size_bytes: int = Field(sa_type=BigInteger)
    content_type: str = Field(max_length=200)
    chunk_size: int = Field(sa_type=BigInteger)
    part_count: int
    fingerprint: str = Field(max_length=200, index=True)
    storage_key: str = Field(max_length=512)
    storage_upload_id: str | None = Field(default=None, max_length=200, index=True)
    sha1: str | None = Field(default=None, max_length=40)  # the whole file's, when the client declared it
    # A replacement of an existing video's file (services/replacements.py): the video
    # it replaces and the pending replacement row (``video_id`` stays empty then).
    replaces_video_id: uuid.UUID | None = Field(default=None, foreign_key="videos.id", index=True, ondelete="SET NULL")
    replacement_id: uuid.UUID | None = Field(default=None, foreign_key="video_replacements.id", index=True,
                                             ondelete="SET NULL")
    status: str = Field(default=UploadStatus.ACTIVE, max_length=20, index=True)
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class UploadPart(SQLModel, table=True):
    """A part of an upload that storage has confirmed, with its SHA1."""

    __tablename__ = "upload_parts"
    __table_args__ = (UniqueConstraint("session_id", "number", name="uq_upload_parts_session_number"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="upload_sessions.id", index=True, ondelete="CASCADE")
    number: int
    size: int = Field(sa_type=BigInteger)
    sha1: str = Field(max_length=40)
    created_at: datetime = _timestamp()


__all__ = ["User", "AuthSession", "ApiToken", "Course", "Chapter", "Video", "VideoReplacement", "StorageDeletion", "UploadSession", "UploadPart", "utcnow"]


class IdempotentRequest(SQLModel, table=True):
    """An API request that carried an ``Idempotency-Key``: its answer, saved in the
    same transaction as its effect, is replayed when the key comes again."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotent_requests_user_key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    key: str = Field(max_length=200)
    fingerprint: str = Field(max_length=64)  # method, path and body: a key reused for another request is refused
    status_code: int
    body: str = Field(default="")
    created_at: datetime = _timestamp(index=True)
