"""What the editor shows of a course, read in a constant number of queries
whatever its size: chapters with per-chapter counts (one GROUP BY over the
videos), the videos of the chapters that are open, and a search over the videos.

Only live rows are shown (trashed ones, ``deleted_at`` set, are the trash's:
trash.py). Chapter ids sent by a browser (its remembered open chapters) that are
not live chapters of the course are ignored, not refused: they may be stale."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, and_, func, or_, select

from course_app.errors import InvalidInput
from course_app.models import VIDEO_STATUSES, Chapter, Course, User, Video
from course_app.services.courses import MAX_CHAPTERS, owned_course, ordered_chapters
from course_app.services.validation import has_unsafe_characters

SEARCH_MAX = 200
MAX_REQUESTED_CHAPTERS = 5 * MAX_CHAPTERS  # a remembered list may hold stale ids too
LIKE_ESCAPE = "!"
LIVE_VIDEO = Video.deleted_at.is_(None)  # type: ignore[union-attr]


@dataclass(frozen=True)
class ChapterSummary:
    chapter: Chapter
    video_count: int
    total_bytes: int
    status_counts: dict[str, int]  # per video status ("uploading", "processing", "ready", "failed")
    total_seconds: float = 0.0  # of its videos whose duration is known (processed)


@dataclass(frozen=True)
class EditorOutline:
    course: Course
    chapters: list[ChapterSummary]  # in position order
    videos: dict[uuid.UUID, list[Video]]  # only the open chapters', each in position order


# Queries --------------------------------------------------------------------------------


def _summaries(session: Session, course_id: uuid.UUID, chapters: list[Chapter]) -> list[ChapterSummary]:
    """One GROUP BY over the course's videos, by chapter and status."""
    rows = session.exec(
        select(Video.chapter_id, Video.status, func.count(Video.id), func.coalesce(func.sum(Video.size_bytes), 0),
               func.coalesce(func.sum(Video.duration_seconds), 0.0))
        .where(Video.course_id == course_id, LIVE_VIDEO)
        .group_by(Video.chapter_id, Video.status)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    sizes: dict[uuid.UUID, int] = {}
    seconds: dict[uuid.UUID, float] = {}
    for chapter_id, status, count, size, duration in rows:
        counts.setdefault(chapter_id, dict.fromkeys(VIDEO_STATUSES, 0))[status] = int(count)
        sizes[chapter_id] = sizes.get(chapter_id, 0) + int(size)
        seconds[chapter_id] = seconds.get(chapter_id, 0.0) + float(duration)
    return [
        ChapterSummary(
            chapter=chapter,
            video_count=sum(counts.get(chapter.id, {}).values()),
            total_bytes=sizes.get(chapter.id, 0),
            status_counts=counts.get(chapter.id, dict.fromkeys(VIDEO_STATUSES, 0)),
            total_seconds=seconds.get(chapter.id, 0.0),
        )
        for chapter in chapters
    ]


def _grouped(rows: Iterable[tuple[uuid.UUID, Video | None]]) -> dict[uuid.UUID, list[Video]]:
    grouped: dict[uuid.UUID, list[Video]] = {}
    for chapter_id, video in rows:
        videos = grouped.setdefault(chapter_id, [])
        if video is not None:
            videos.append(video)
    return grouped


def _requested_ids(values: object) -> set[uuid.UUID]:
    """The well-formed ids of a browser's list; anything else in it is ignored."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, set, frozenset)):
        raise InvalidInput("The open chapters must be a list of chapter ids.")
    if len(values) > MAX_REQUESTED_CHAPTERS:
        raise InvalidInput(f"At most {MAX_REQUESTED_CHAPTERS} chapters can be opened at once.")
    ids = set()
    for value in values:
        try:
            ids.add(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
        except (TypeError, ValueError, AttributeError):
            continue
    return ids


# Services --------------------------------------------------------------------------------


def chapter_summaries(*, session: Session, user: User, course_id: object) -> list[ChapterSummary]:
    """The course's chapters in order with their video counts, sizes and status counts."""
    course = owned_course(session=session, user=user, course_id=course_id)
    return _summaries(session, course.id, ordered_chapters(session=session, course_id=course.id))


def editor_outline(*, session: Session, user: User, course_id: object, open_chapter_ids: object = ()) -> EditorOutline:
    """The course, its chapter summaries, and the videos of the open chapters (every
    open chapter of this course has a list, maybe empty). Four queries at most."""
    course = owned_course(session=session, user=user, course_id=course_id)
    chapters = ordered_chapters(session=session, course_id=course.id)
    wanted = _requested_ids(open_chapter_ids)
    open_ids = [c.id for c in chapters if c.id in wanted]
    videos: dict[uuid.UUID, list[Video]] = {chapter_id: [] for chapter_id in open_ids}
    if open_ids:
        rows = session.exec(
            select(Video)
            .where(Video.course_id == course.id, Video.chapter_id.in_(open_ids), LIVE_VIDEO)  # type: ignore[attr-defined]
            .order_by(Video.chapter_id, Video.position)
        )
        for video in rows:
            videos[video.chapter_id].append(video)
    return EditorOutline(course=course, chapters=_summaries(session, course.id, chapters), videos=videos)


def videos_of_chapters(
    *, session: Session, user: User, course_id: object, chapter_ids: object
) -> dict[uuid.UUID, list[Video]]:
    """The videos of the given chapters of the course, each list in order, keyed in
    chapter order; every given chapter of this course has a list, maybe empty."""
    course = owned_course(session=session, user=user, course_id=course_id)
    wanted = _requested_ids(chapter_ids)
    if not wanted:
        return {}
    rows = session.exec(
        select(Chapter.id, Video)
        .outerjoin(Video, and_(Video.chapter_id == Chapter.id, LIVE_VIDEO))
        .where(Chapter.course_id == course.id, Chapter.id.in_(wanted),  # type: ignore[attr-defined]
               Chapter.deleted_at.is_(None))  # type: ignore[union-attr]
        .order_by(Chapter.position, Video.position)
    )
    return _grouped(rows)


def _like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards in ``text`` matching themselves."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, LIKE_ESCAPE + special)
    return f"%{text}%"


def find_videos(
    *, session: Session, user: User, course_id: object, text: object = "", statuses: object = ()
) -> dict[uuid.UUID, list[Video]]:
    """Videos of the course whose title or file name contains ``text`` (any case)
    and, when ``statuses`` are given, whose status is one of them; grouped by
    chapter, chapters and videos in order. Only chapters with a match appear."""
    if not isinstance(text, str):
        raise InvalidInput("The search must be text.")
    text = text.strip()
    if len(text) > SEARCH_MAX:
        raise InvalidInput(f"The search is too long (at most {SEARCH_MAX} characters).")
    if has_unsafe_characters(text):
        raise InvalidInput("The search contains control characters.")
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, (list, tuple, set, frozenset)):
        raise InvalidInput("The statuses must be a list.")
    if any(status not in VIDEO_STATUSES for status in statuses):
        raise InvalidInput(f"A status must be one of: {', '.join(VIDEO_STATUSES)}.")
    course = owned_course(session=session, user=user, course_id=course_id)
    conditions = [Video.course_id == course.id, LIVE_VIDEO]
    if text:
        pattern = _like_pattern(text.lower())
        conditions.append(or_(
            func.lower(Video.title).like(pattern, escape=LIKE_ESCAPE),
            func.lower(Video.filename).like(pattern, escape=LIKE_ESCAPE),
        ))
    if statuses:
        conditions.append(Video.status.in_(sorted(set(statuses))))  # type: ignore[attr-defined]
    rows = session.exec(
        select(Video.chapter_id, Video)
        .join(Chapter, Chapter.id == Video.chapter_id)
        .where(and_(*conditions))
        .order_by(Chapter.position, Video.position)
    )
    return _grouped(rows)
