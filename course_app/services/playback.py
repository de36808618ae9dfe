"""Who may watch a video, and the short-lived signed links players fetch it by.

Access: the course's owner may watch its ready videos at any time; anyone signed in
may watch the ready videos of a published course. Nobody else gets a link.

Links (local storage): ``/api/media/{video}/{kind}/{version}?audience=…&expires=…&signature=…``
where ``kind`` is ``video`` or a thumbnail size, ``version`` names the stored object
(a digest of its key: keys are never reused, so a replaced video has a new version
and a new URL), ``audience`` says on whose access the link was given (``owner``: the
course's owner, whatever its status; ``student``: anyone else, because the course
was published) and ``signature`` is an HMAC-SHA256 of all of it under a key derived
from the app's secret for this one purpose. The link needs no cookie: a <video> tag,
a CDN or a download manager may fetch it, with ranges, until it expires, as long as
the access it was given on still holds: a student's link stops playing as soon as
the course is unpublished (one primary-key lookup per request). Expiry is rounded up
to the next ``WINDOW`` seconds, so links signed for the same object, audience and
window are the same URL and caches keyed on the whole URL share them.

On B2 the link is B2's own: a download authorization for the object's key, valid
for the same time (storage.download_url); B2 serves it, so unpublishing does not cut it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import math
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlencode

from sqlmodel import Session

from course_app.errors import Conflict, Forbidden, NotFound
from course_app.models import Course, CourseStatus, User, Video, VideoStatus
from course_app.services.validation import parse_uuid
from course_app.settings import get_settings
from course_app.storage.base import Storage

KINDS = ("video", "small", "large")
OWNER, STUDENT = "owner", "student"  # whose access a link was given on
AUDIENCES = (OWNER, STUDENT)
WINDOW = 60  # seconds: expiry is rounded up to a multiple of this
KEY_PURPOSE = b"course-studio/playback-link/v1"
MEDIA_PREFIX = "/api/media"


class LinkRefused(Forbidden):
    """A playback link that is not (or no longer) good: 403, with a code a player can act on."""

    code = "link_invalid"


class LinkExpired(LinkRefused):
    code = "link_expired"


class LinkWithdrawn(LinkRefused):
    """A student's link to a course that is no longer published."""

    code = "link_withdrawn"


INVALID = "This playback link is not valid (it was changed or cut). Reload the page for a new one."
EXPIRED = "This playback link has expired. Reload the page for a new one."
WITHDRAWN = "This course is no longer published, so its videos no longer play."


# Access ---------------------------------------------------------------------------------


def may_watch(user: User, course: Course) -> bool:
    return course.owner_id == user.id or course.status == CourseStatus.PUBLISHED


def audience_of(user: User, course: Course) -> str:
    """On whose access ``user``, who may watch, watches: the owner's or a student's."""
    return OWNER if course.owner_id == user.id else STUDENT


def watchable_video(*, session: Session, user: User, video_id: object, ready: bool = True) -> Video:
    """A live video ``user`` may watch, ready unless ``ready`` is False (the owner's
    thumbnails); NotFound / Forbidden / Conflict otherwise (someone else's draft is
    Forbidden, as on every other route)."""
    video = session.get(Video, parse_uuid(video_id, what="video"))
    if video is None:
        raise NotFound("That video does not exist.")
    course = session.get(Course, video.course_id)
    if course is None or not may_watch(user, course):
        raise Forbidden("You do not have access to this course.")
    if video.deleted_at is not None:
        raise NotFound("That video is in the course's trash; restore it first.")
    if (ready or course.owner_id != user.id) and (video.status != VideoStatus.READY or video.size_bytes is None):
        raise Conflict("This video is not ready to play yet.")
    return video


# Signing --------------------------------------------------------------------------------


def _key() -> bytes:
    """The signing key: derived from the app's secret for this purpose only, so a
    playback link can never stand in for a session token or anything else signed."""
    secret = get_settings().resolved_secret_key().encode()
    return hmac.new(secret, KEY_PURPOSE, hashlib.sha256).digest()


def object_version(key: str) -> str:
    """A stable name for one stored object that does not show its key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _signature(video_id: str, kind: str, version: str, expires: int, audience: str) -> str:
    message = f"{video_id}\n{kind}\n{version}\n{expires}\n{audience}".encode()
    digest = hmac.new(_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry(*, now: float, valid_seconds: int) -> int:
    """``now + valid_seconds`` rounded up to the next WINDOW."""
    return math.ceil((now + valid_seconds) / WINDOW) * WINDOW


def sign(*, video_id: uuid.UUID | str, kind: str, key: str, expires: int, audience: str) -> str:
    """The path and query of a signed link to the object ``key`` of a video, for ``audience``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}")
    video_id, version = str(video_id), object_version(key)
    query = urlencode({"audience": audience, "expires": expires,
                       "signature": _signature(video_id, kind, version, expires, audience)})
    return f"{MEDIA_PREFIX}/{video_id}/{kind}/{version}?{query}"


def check_link(*, video_id: str, kind: str, version: str, audience: object, expires: object, signature: object,
               now: float | None = None) -> None:
    """Raise LinkRefused unless the link's parts are exactly as signed, LinkExpired once
    its time is up. The signature is checked first: a changed expiry or audience is a
    forgery."""
    if not isinstance(expires, str) or not expires.isdigit() or len(expires) > 12 or not isinstance(signature, str) \
            or audience not in AUDIENCES:
        raise LinkRefused(INVALID)
    expected = _signature(video_id, kind, version, int(expires), audience)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise LinkRefused(INVALID)
    if int(expires) <= (time.time() if now is None else now):
        raise LinkExpired(EXPIRED)


# Links for a viewer ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlaybackLinks:
    video_id: str
    url: str
    poster_url: str  # the large thumbnail, "" when it has none
    thumbnail_urls: dict[str, str]
    expires_at: datetime


def _link(storage: Storage, video: Video, kind: str, key: str, expires: int, valid_seconds: int, audience: str) -> str:
    file_id = (video.backblaze_file_id or key) if kind == "video" else ""
    remote = storage.download_url(key, file_id, valid_seconds=valid_seconds)
    return remote or sign(video_id=video.id, kind=kind, key=key, expires=expires, audience=audience)


def links_for(*, storage: Storage, video: Video, audience: str, now: float | None = None) -> PlaybackLinks:
    """Signed links to a ready video and its thumbnails for ``audience`` (access already checked)."""
    now = time.time() if now is None else now
    expires = expiry(now=now, valid_seconds=get_settings().playback_link_seconds)
    valid = expires - int(now)
    thumbnails = {size: _link(storage, video, size, key, expires, valid, audience)
                  for size, key in (("small", video.thumbnail_small_key), ("large", video.thumbnail_large_key)) if key}
    return PlaybackLinks(
        video_id=str(video.id),
        url=_link(storage, video, "video", video.storage_key, expires, valid, audience),
        poster_url=thumbnails.get("large", thumbnails.get("small", "")),
        thumbnail_urls=thumbnails,
        expires_at=datetime.fromtimestamp(expires, timezone.utc),
    )


def playback_links(*, session: Session, user: User, storage: Storage, video_id: object,
                   now: float | None = None) -> PlaybackLinks:
    """Links for ``user`` to play a video, after the access check."""
    video = watchable_video(session=session, user=user, video_id=video_id)
    course = session.get(Course, video.course_id)  # loaded by the check: no second query
    return links_for(storage=storage, video=video, audience=audience_of(user, course), now=now)


# Serving a link -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MediaObject:
    key: str
    file_id: str
    content_type: str
    filename: str
    size: int | None  # known for videos; thumbnails are looked up in storage
    sha1: str | None


def linked_object(*, session: Session, video_id: str, kind: str, version: str, audience: str) -> MediaObject:
    """What a checked link names, if the video still holds it: a link to a video moved
    to the trash, replaced or no longer ready answers 404 (the bytes of an object
    never change, so an answer is either these bytes or none). A student's link is
    refused (LinkWithdrawn) once the course is no longer published."""
    video = session.get(Video, parse_uuid(video_id, what="video"))
    if video is None or video.deleted_at is not None or video.status != VideoStatus.READY:
        raise NotFound("This video is no longer available.")
    if audience != OWNER:
        course = session.get(Course, video.course_id)
        if course is None or course.status != CourseStatus.PUBLISHED:
            raise LinkWithdrawn(WITHDRAWN)
    key = {"video": video.storage_key, "small": video.thumbnail_small_key,
           "large": video.thumbnail_large_key}.get(kind)
    if key is None or object_version(key) != version:
        raise NotFound("This video has changed since the link was made. Reload the page for a new one.")
    if kind == "video":
        return MediaObject(key, video.backblaze_file_id or key, video.content_type, video.filename,
                           video.size_bytes, video.sha1)
    return MediaObject(key, "", "image/jpeg", f"{video.title}-{kind}.jpg", None, None)
