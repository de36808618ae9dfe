"""The course trash: deleted videos and chapters wait here for ``trash_days``
(COURSE_TRASH_DAYS, 30 by default) before they go for good.

- Trash: the row gets ``deleted_at`` and leaves its parent's order (its position
  is parked below models.TRASH_POSITION_TOP, the live rows are renumbered
  0..n-1); its stored file stays. A chapter takes its live videos with it: they
  get the chapter's ``deleted_at`` and keep their places inside it. An open
  resumable upload of a trashed video is cancelled (the row stays, ``failed``).
- Restore: a video goes back to the end of its chapter; if the chapter is in the
  trash too, the chapter comes back (alone, at the end of the course) first. A
  chapter comes back at the end of the course with the videos trashed with it;
  videos trashed before it stay in the trash as items of their own.
- Purge: rows removed and stored files queued in the storage outbox in one
  transaction; the caller tells storage (``outbox.carry_out``). Purging a chapter
  purges every video of it in the trash (a video row cannot outlive its chapter).
- Sweep: purges what has been in the trash longer than ``trash_days``.

Trashed bytes still count toward the instructor's quota: upload_sessions.bytes_in_use
sums every stored row, trashed or not, and the trash page says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, func, select

from course_app.errors import InvalidInput, NotFound
from course_app.models import TRASH_POSITION_TOP, Chapter, Course, UploadSession, UploadStatus, User, Video, utcnow
from course_app.services import upload_sessions
from course_app.services.courses import MAX_BATCH, next_chapter_position, ordered_chapters, owned_course
from course_app.services.ordering import current, lock_course, parse_id_list, renumber
from course_app.services.outbox import remove_video_row, remove_videos_of
from course_app.services.upload_sessions import OPEN_STATUSES, SessionFactory
from course_app.services.validation import parse_uuid
from course_app.services.videos import chapter_videos, next_position, owned_videos
from course_app.settings import get_settings

UPLOAD_CANCELLED = "Upload cancelled: the video was moved to the trash."
NOT_IN_TRASH = "That {} is not in the trash."


def keep_for() -> timedelta:
    """How long trashed rows are kept before the sweep purges them."""
    return timedelta(days=get_settings().trash_days)


@dataclass(frozen=True)
class TrashItem:
    kind: str  # "video" or "chapter"
    id: uuid.UUID
    title: str
    chapter_title: str  # a video's chapter; a chapter's own title
    chapter_in_trash: bool  # a video whose chapter is in the trash too (restoring it brings the chapter back)
    video_count: int  # a chapter's videos trashed with it (restored with it); 1 for a video
    size_bytes: int
    deleted_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class CourseTrash:
    course: Course
    items: list[TrashItem]  # most recently deleted first
    trashed_bytes: int  # every trashed video's bytes; they count toward the quota
    keep_days: int


@dataclass
class TrashSweepReport:
    videos: int = 0
    chapters: int = 0
    pending: list[int] = field(default_factory=list)  # outbox ids of the purged files
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "videos_purged": self.videos, "chapters_purged": self.chapters}


# Positions ---------------------------------------------------------------------------


def _park(session: Session, rows: Sequence[Video] | Sequence[Chapter], parent_of) -> None:
    """Move ``rows`` out of their parents' order: each parent's trashed rows take
    unique positions from TRASH_POSITION_TOP - 1 downwards. Call with the course lock held."""
    if not rows:
        return
    model = type(rows[0])
    parent = Video.chapter_id if model is Video else Chapter.course_id
    lowest: dict[uuid.UUID, int] = {}
    for row in rows:
        key = parent_of(row)
        if key not in lowest:
            found = session.exec(
                select(func.min(model.position)).where(parent == key, model.position <= TRASH_POSITION_TOP)
            ).one()
            lowest[key] = found if found is not None else TRASH_POSITION_TOP
        lowest[key] -= 1
        row.position = lowest[key]
        session.add(row)
    session.flush()


def _park_videos(session: Session, rows: Sequence[Video]) -> None:
    _park(session, rows, lambda v: v.chapter_id)


# Trash -------------------------------------------------------------------------------


def _cancel_uploads(session: Session, video_ids: Iterable[uuid.UUID]) -> list[int]:
    """Close the open resumable uploads of trashed videos (their storage uploads are
    cancelled through the outbox; the rows stay, ``failed``). Returns the outbox ids."""
    ids = list(video_ids)
    if not ids:
        return []
    open_uploads = list(session.exec(select(UploadSession).where(
        UploadSession.video_id.in_(ids), UploadSession.status.in_(OPEN_STATUSES))))  # type: ignore[union-attr]
    pending = [upload_sessions.close(session, upload, status=UploadStatus.ABORTED, reason=UPLOAD_CANCELLED,
                                     keep_video_as_failed=True) for upload in open_uploads]
    return [p for p in pending if p is not None]


def trash_videos(*, session: Session, user: User, video_ids: object, revision: int | None = None) -> list[int]:
    """Move live videos of one course to its trash in one transaction; their chapters
    are renumbered. Returns the outbox ids of uploads it cancelled (for the caller to
    carry out; usually none)."""
    ids = parse_id_list(video_ids, what="video", limit=MAX_BATCH)
    found = owned_videos(session=session, user=user, ids=ids, course_id=None)
    lock_course(session, next(iter(found.values())).course_id, revision=revision)
    doomed = [current(session, found[i], gone="A video was deleted in the meantime.") for i in ids]
    now = utcnow()
    _park_videos(session, doomed)
    for video in doomed:
        video.deleted_at = video.updated_at = now
        session.add(video)
    session.flush()
    for chapter_id in sorted({v.chapter_id for v in doomed}):
        renumber(session, chapter_videos(session=session, chapter_id=chapter_id))
    return _cancel_uploads(session, ids)


def trash_video(*, session: Session, user: User, video_id: object, revision: int | None = None) -> list[int]:
    return trash_videos(session=session, user=user, video_ids=[parse_uuid(video_id, what="video")], revision=revision)


def trash_chapters(*, session: Session, user: User, chapter_ids: object, revision: int | None = None) -> list[int]:
    """Move live chapters of one course, with their live videos, to its trash in one
    transaction; the remaining chapters are renumbered. Returns the outbox ids of
    uploads it cancelled."""
    ids = parse_id_list(chapter_ids, what="chapter", limit=MAX_BATCH)
    found = {c.id: c for c in session.exec(select(Chapter).where(
        Chapter.id.in_(ids), Chapter.deleted_at.is_(None)))}  # type: ignore[attr-defined,union-attr]
    if len(found) != len(ids):
        raise NotFound("That chapter does not exist.")
    course_ids = {c.course_id for c in found.values()}
    for course_id in sorted(course_ids):
        owned_course(session=session, user=user, course_id=course_id)
    if len(course_ids) != 1:
        raise InvalidInput("The chapters must all be part of one course.")
    (course_id,) = course_ids
    lock_course(session, course_id, revision=revision)
    doomed = [current(session, found[i], gone="That chapter was deleted in the meantime.") for i in ids]
    now = utcnow()
    videos = list(session.exec(select(Video).where(
        Video.chapter_id.in_(ids), Video.deleted_at.is_(None))))  # type: ignore[attr-defined,union-attr]
    for video in videos:  # they keep their places inside the chapter
        video.deleted_at = video.updated_at = now
        session.add(video)
    _park(session, doomed, lambda c: c.course_id)
    for chapter in doomed:
        chapter.deleted_at = chapter.updated_at = now
        session.add(chapter)
    session.flush()
    renumber(session, ordered_chapters(session=session, course_id=course_id))
    return _cancel_uploads(session, [v.id for v in videos])


def trash_chapter(*, session: Session, user: User, chapter_id: object, revision: int | None = None) -> list[int]:
    return trash_chapters(session=session, user=user, chapter_ids=[parse_uuid(chapter_id, what="chapter")],
                          revision=revision)


# List --------------------------------------------------------------------------------


def course_trash(*, session: Session, user: User, course_id: object) -> CourseTrash:
    """What the course's trash holds: trashed chapters (with the videos trashed with
    them) and trashed videos on their own, most recently deleted first."""
    course = owned_course(session=session, user=user, course_id=course_id)
    keep = keep_for()
    fresh = {"populate_existing": True}  # as stored now, even for rows already in the session
    chapters = {c.id: c for c in session.exec(
        select(Chapter).where(Chapter.course_id == course.id).execution_options(**fresh))}
    trashed = list(session.exec(select(Video).where(
        Video.course_id == course.id, Video.deleted_at.is_not(None)).execution_options(**fresh)))  # type: ignore[union-attr]
    items: list[TrashItem] = []
    with_chapter: dict[uuid.UUID, list[Video]] = {}
    for video in trashed:
        chapter = chapters[video.chapter_id]
        if chapter.deleted_at is not None and video.deleted_at == chapter.deleted_at:
            with_chapter.setdefault(chapter.id, []).append(video)
            continue
        items.append(TrashItem(
            kind="video", id=video.id, title=video.title, chapter_title=chapter.title,
            chapter_in_trash=chapter.deleted_at is not None, video_count=1, size_bytes=video.size_bytes or 0,
            deleted_at=video.deleted_at, expires_at=video.deleted_at + keep,
        ))
    for chapter in chapters.values():
        if chapter.deleted_at is None:
            continue
        companions = with_chapter.get(chapter.id, [])
        items.append(TrashItem(
            kind="chapter", id=chapter.id, title=chapter.title, chapter_title=chapter.title, chapter_in_trash=True,
            video_count=len(companions), size_bytes=sum(v.size_bytes or 0 for v in companions),
            deleted_at=chapter.deleted_at, expires_at=chapter.deleted_at + keep,
        ))
    items.sort(key=lambda item: (item.deleted_at, item.kind == "chapter", item.title), reverse=True)
    return CourseTrash(course=course, items=items, trashed_bytes=sum(v.size_bytes or 0 for v in trashed),
                       keep_days=get_settings().trash_days)


# Restore -----------------------------------------------------------------------------


def _trashed(session: Session, user: User, model: type[Video] | type[Chapter], item_id: object):
    """A trashed row of the user's, reloaded after the course lock."""
    what = "video" if model is Video else "chapter"
    row = session.get(model, parse_uuid(item_id, what=what))
    if row is None:
        raise NotFound(f"That {what} does not exist.")
    owned_course(session=session, user=user, course_id=row.course_id)
    if row.deleted_at is None:
        raise NotFound(NOT_IN_TRASH.format(what))
    lock_course(session, row.course_id)
    row = session.get(model, row.id, populate_existing=True)
    if row is None or row.deleted_at is None:
        raise NotFound(NOT_IN_TRASH.format(what))
    return row


def _revive_chapter(session: Session, chapter: Chapter, *, with_videos: bool) -> None:
    """Bring a trashed chapter back at the end of its course, with the videos trashed
    with it, or alone (they stay in the trash, parked out of its order)."""
    trashed_at = chapter.deleted_at
    companions = list(session.exec(select(Video).where(
        Video.chapter_id == chapter.id, Video.deleted_at == trashed_at)))
    chapter.position = next_chapter_position(session, chapter.course_id)
    chapter.deleted_at, chapter.updated_at = None, utcnow()
    session.add(chapter)
    if not with_videos:
        _park_videos(session, companions)
        return
    for video in companions:
        video.deleted_at, video.updated_at = None, utcnow()
        session.add(video)
    session.flush()
    renumber(session, chapter_videos(session=session, chapter_id=chapter.id))  # gap-free if some were purged


def restore_video(*, session: Session, user: User, video_id: object) -> Video:
    """Back at the end of its chapter (the chapter first comes back if it is in the trash)."""
    video = _trashed(session, user, Video, video_id)
    chapter = session.get(Chapter, video.chapter_id, populate_existing=True)
    if chapter.deleted_at is not None:
        _revive_chapter(session, chapter, with_videos=False)  # parks this video too, if trashed with it
    video.position = next_position(session, chapter.id)
    video.deleted_at, video.updated_at = None, utcnow()
    session.add(video)
    session.flush()
    return video


def restore_chapter(*, session: Session, user: User, chapter_id: object) -> Chapter:
    """Back at the end of the course, with the videos trashed with it."""
    chapter = _trashed(session, user, Chapter, chapter_id)
    _revive_chapter(session, chapter, with_videos=True)
    session.flush()
    return chapter


# Purge -------------------------------------------------------------------------------


def _purge_chapter(session: Session, chapter: Chapter, reason: str) -> list[int]:
    pending = remove_videos_of(session=session, course_id=chapter.course_id, chapter_id=chapter.id, reason=reason)
    session.delete(chapter)
    session.flush()
    return pending


def purge_video(*, session: Session, user: User, video_id: object) -> list[int]:
    """Delete a trashed video for good; returns the outbox id of its stored file."""
    video = _trashed(session, user, Video, video_id)
    return [remove_video_row(session=session, video=video, reason="deleted from the trash").id]


def purge_chapter(*, session: Session, user: User, chapter_id: object) -> list[int]:
    """Delete a trashed chapter and every video of it in the trash for good; returns
    the outbox ids of their stored files."""
    chapter = _trashed(session, user, Chapter, chapter_id)
    return _purge_chapter(session, chapter, "deleted from the trash")


# Sweep -------------------------------------------------------------------------------


def sweep_trash(
    *, session_factory: SessionFactory, now: datetime | None = None, keep: timedelta | None = None,
    dry_run: bool = False,
) -> TrashSweepReport:
    """Purge what has been in the trash longer than ``keep`` (the setting by
    default): one transaction per course, under its lock. The caller carries out
    ``report.pending`` (the upkeep task and the CLI do)."""
    cutoff = (now or utcnow()) - (keep or keep_for())
    report = TrashSweepReport(dry_run=dry_run)
    with session_factory() as session:
        expired_chapters = select(Chapter.course_id).where(Chapter.deleted_at < cutoff)  # type: ignore[operator]
        expired_videos = select(Video.course_id).where(Video.deleted_at < cutoff)  # type: ignore[operator]
        course_ids = sorted(set(session.exec(expired_chapters)) | set(session.exec(expired_videos)))
    for course_id in course_ids:
        with session_factory() as session:
            if not dry_run:
                try:
                    lock_course(session, course_id)
                except NotFound:  # the course was deleted meanwhile, trash and all
                    continue
            chapters = list(session.exec(select(Chapter).where(
                Chapter.course_id == course_id, Chapter.deleted_at < cutoff)))  # type: ignore[operator]
            # Videos of an expired chapter go with it; an expired chapter holds no
            # video trashed later than itself, so nothing younger goes early.
            videos = list(session.exec(select(Video).where(
                Video.course_id == course_id, Video.deleted_at < cutoff)))  # type: ignore[operator]
            report.chapters += len(chapters)
            report.videos += len(videos)
            if dry_run:
                continue
            gone = {c.id for c in chapters}
            for chapter in chapters:
                report.pending += _purge_chapter(session, chapter, "trash expired")
            report.pending += [remove_video_row(session=session, video=v, reason="trash expired").id
                               for v in videos if v.chapter_id not in gone]
    return report
