"""Video processing: the state machine of a stored video, kept in the database.

    uploading ──▶ processing: verifying ──▶ probing ──▶ thumbnail ──▶ ready
                      │ (any stage)
                      └──▶ failed (the stage, a machine code, whether a retry can
                           help, a message that says what to do)

Every status or stage change goes through ``transition`` (one conditional UPDATE),
which also advances the course's pulse in the same transaction (services/live.py),
so every open editor of the course shows the change within its poll interval,
whichever process or machine the worker runs on.

A job (course_app/jobs.py, run by ``course-app worker``) first claims the video: a
lease (a random token and an expiry) that a heartbeat renews while a stage runs.
Every later write is fenced on that token, so a worker that lost its lease can no
longer change the row. A video waiting in the queue carries a deadline in the same
column. ``reap`` finds leases that ran out (a worker died, a job was lost): it
queues the job again, or after ``max_attempts`` claims fails the video as
``worker_lost``. A job that finds no claimable row does nothing, so running one
twice is harmless; the stages themselves only read the video and write objects
under keys fixed by the video (services/media.py).

A pending replacement of a video's file (``VideoReplacement``, services/replacements.py)
goes through the same machine in its own table: every function here takes the table
as ``model``. Its last stage does not make it ``ready`` but swaps it into its video
(``replacements.swap``). A job names a video or a replacement by id (both are UUIDs,
so one id never names both); ``run_job`` looks in both tables.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import event, or_, update
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from course_app.errors import Conflict, NotFound
from course_app.models import ProcessingStage, User, Video, VideoReplacement, VideoStatus, utcnow
from course_app.services.live import course_changed
from course_app.storage.base import Storage, StorageError

log = logging.getLogger(__name__)

SessionFactory = Callable[[], AbstractContextManager[Session]]
STAGES = (ProcessingStage.VERIFYING, ProcessingStage.PROBING, ProcessingStage.THUMBNAIL)
STORAGE_RETRY_DELAYS = (5, 30, 120)  # seconds before a job whose storage failed runs again
Model = type[Video] | type[VideoReplacement]
MODELS: tuple[Model, ...] = (Video, VideoReplacement)


@dataclasses.dataclass(frozen=True)
class Failure:
    code: str
    message: str
    retryable: bool


class StageFailed(Exception):
    """A stage found something wrong with the video (or could not finish)."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.failure = Failure(code, message, retryable)


# The one door: every status or stage change ------------------------------------------------

_QUEUED = "processing.queued_videos"
REPLACED_FILES = "processing.replaced_files"  # outbox ids of files a swap replaced, in session.info


def transition(session: Session, video_id: uuid.UUID, *, status: str, stage: str | None,
               failure: Failure | None = None, only_if: Iterable = (), model: Model = Video,
               **values) -> uuid.UUID | None:
    """Move the video (or replacement: ``model``) to ``status`` / ``stage`` (and set
    ``values``) if it exists and every ``only_if`` condition holds; returns its course
    id, or None when nothing changed. Open editors of the course are told (its pulse,
    in this transaction)."""
    course_id = session.scalar(select(model.course_id).where(model.id == video_id))
    if course_id is None:
        return None
    try:  # the course row first, in the same order as every edit (no deadlock with them)
        course_changed(session, course_id)
    except NotFound:
        return None
    changes = {
        "status": status, "stage": stage, "updated_at": utcnow(),
        "failure_code": failure.code if failure else None,
        "retryable": failure.retryable if failure else None,
        "error": failure.message[:1000] if failure else None,
        **values,
    }
    statement = (update(model).where(model.id == video_id, *only_if).values(**changes)
                 .returning(model.course_id).execution_options(synchronize_session="fetch"))
    return session.execute(statement).scalar_one_or_none()


def _queue_after_commit(session: Session, video_id: uuid.UUID, delay: float = 0) -> None:
    session.info.setdefault(_QUEUED, []).append((video_id, delay))


@event.listens_for(OrmSession, "after_commit")
def _after_commit(session: OrmSession) -> None:
    for video_id, delay in session.info.pop(_QUEUED, []):
        try:
            _enqueue(video_id, delay)
        except Exception:  # the queue is down: the lease runs out and reap() queues it again
            log.exception("Could not queue processing of video %s", video_id)


@event.listens_for(OrmSession, "after_rollback")
def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_QUEUED, None)


def _enqueue_with_huey(video_id: uuid.UUID, delay: float) -> None:
    from course_app import jobs

    if delay:
        jobs.process_video.schedule((str(video_id),), delay=delay)
    else:
        jobs.process_video(str(video_id))


_enqueue: Callable[[uuid.UUID, float], None] = _enqueue_with_huey


def set_enqueuer(enqueue: Callable[[uuid.UUID, float], None] | None) -> None:
    """Where queued jobs go (tests run them in place); None restores the job queue."""
    global _enqueue
    _enqueue = enqueue or _enqueue_with_huey


# Starting and retrying -----------------------------------------------------------------------


def start(*, session: Session, video_id: uuid.UUID, queue_wait: timedelta,
          stage: str = ProcessingStage.VERIFYING, model: Model = Video) -> bool:
    """Hand a stored video to processing at ``stage`` and queue its job (after commit)."""
    changed = transition(session, video_id, model=model, status=VideoStatus.PROCESSING, stage=stage, lease_owner=None,
                         lease_expires_at=utcnow() + queue_wait, heartbeat_at=None, attempts=0)
    if changed is not None:
        _queue_after_commit(session, video_id)
    return changed is not None


def restart_failed(*, session: Session, video: Video | VideoReplacement, queue_wait: timedelta,
                   force: bool = False) -> Video | VideoReplacement:
    """Run a video's (or replacement's) failed stage again (and the ones after it)."""
    if video.status != VideoStatus.FAILED or video.stage is None:
        what = "its upload failed: upload it again" if video.status == VideoStatus.FAILED else f"it is {video.status}"
        raise Conflict(f"Only a video whose processing failed can be retried; {what}.")
    if video.retryable is False and not force:
        raise Conflict(f"Retrying cannot help: {video.error}")
    start(session=session, video_id=video.id, queue_wait=queue_wait, stage=video.stage, model=type(video))
    session.refresh(video)
    return video


def retry(*, session: Session, user: User, video_id: object, queue_wait: timedelta,
          revision: int | None = None) -> Video:
    """The owner's Retry (editor, API). Not an edit of the course: any ``revision``
    the editor's view was built from is fine (the pulse still tells open editors)."""
    from course_app.services.videos import owned_video

    video = owned_video(session=session, user=user, video_id=video_id)
    return restart_failed(session=session, video=video, queue_wait=queue_wait)


# Leases ---------------------------------------------------------------------------------


def _claimable(now: datetime, model: Model = Video) -> tuple:
    return (model.status == VideoStatus.PROCESSING,
            or_(model.lease_owner.is_(None), model.lease_expires_at < now))


def claim(*, session: Session, video_id: uuid.UUID, token: str, lease: timedelta, max_attempts: int,
          model: Model = Video) -> Video | VideoReplacement | None:
    """Take the video's lease if no live worker holds it; None when there is nothing to do."""
    now = utcnow()
    result = session.execute(
        update(model).where(model.id == video_id, model.attempts < max_attempts, *_claimable(now, model))
        .values(lease_owner=token, lease_expires_at=now + lease, heartbeat_at=now, attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return session.get(model, video_id, populate_existing=True)


_held: set[tuple[uuid.UUID, str]] = set()  # the leases this process holds now (video or replacement ids)
_held_lock = threading.Lock()


def release_held(*, session_factory: SessionFactory) -> int:
    """A worker that stops lets its leases run out now, so the next reaper queues
    their videos again at once instead of after the lease's length."""
    with _held_lock:
        held = list(_held)
    released = 0
    for video_id, token in held:
        with session_factory() as session:
            for model in MODELS:  # the id is in one of them
                released += session.execute(
                    update(model).where(model.id == video_id, *holding(token, model)).values(lease_expires_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount
    return released


def holding(token: str, model: Model = Video) -> tuple:
    """The conditions of a write by the worker holding lease ``token``."""
    return (model.lease_owner == token, model.status == VideoStatus.PROCESSING)


def renew(*, session: Session, video_id: uuid.UUID, token: str, lease: timedelta, model: Model = Video) -> bool:
    now = utcnow()
    result = session.execute(
        update(model).where(model.id == video_id, *holding(token, model))
        .values(heartbeat_at=now, lease_expires_at=now + lease).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


class Heartbeat:
    """Renews a lease every third of its length until stopped; ``lost`` once a renewal finds it gone."""

    def __init__(self, session_factory: SessionFactory, video_id: uuid.UUID, token: str, lease: timedelta,
                 model: Model = Video) -> None:
        self._args = (session_factory, video_id, token, lease, model)
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{video_id}", daemon=True)

    def _beat(self) -> None:
        session_factory, video_id, token, lease, model = self._args
        while not self._stop.wait(lease.total_seconds() / 3):
            try:
                with session_factory() as session:
                    if not renew(session=session, video_id=video_id, token=token, lease=lease, model=model):
                        self.lost = True
                        return
            except Exception:  # the database blinked: the next beat tries again
                log.warning("Heartbeat of video %s failed", video_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


WORKER_LOST = ("Processing stopped {attempts} times without finishing ({stage}). Press Retry; if it stops "
               "again, upload the file again.")


def reap(*, session_factory: SessionFactory, max_attempts: int, queue_wait: timedelta,
         ids: Iterable[uuid.UUID] | None = None, now: datetime | None = None) -> list[tuple[uuid.UUID, str]]:
    """Videos (and replacements) whose lease ran out: queue them again, or fail those
    claimed ``max_attempts`` times. Returns (id, what was done) for each."""
    now = now or utcnow()
    expired = []
    for model in MODELS:
        query = select(model.id, model.stage, model.lease_owner, model.attempts).where(
            model.status == VideoStatus.PROCESSING, model.lease_expires_at < now)
        if ids is not None:
            query = query.where(model.id.in_(list(ids)))
        with session_factory() as session:
            expired += [(model, *row) for row in session.exec(query).all()]
    done = []
    for model, video_id, stage, owner, attempts in expired:
        fence = (model.status == VideoStatus.PROCESSING, model.lease_expires_at < now, model.stage == stage,
                 model.lease_owner.is_(None) if owner is None else model.lease_owner == owner)
        with session_factory() as session:
            if attempts >= max_attempts:
                failure = Failure("worker_lost", WORKER_LOST.format(attempts=attempts, stage=stage), True)
                changed = transition(session, video_id, model=model, status=VideoStatus.FAILED, stage=stage,
                                     failure=failure, only_if=fence, lease_owner=None, lease_expires_at=None)
                outcome = "failed: worker_lost"
            else:
                changed = transition(session, video_id, model=model, status=VideoStatus.PROCESSING, stage=stage,
                                     only_if=fence, lease_owner=None, lease_expires_at=utcnow() + queue_wait)
                if changed is not None:
                    _queue_after_commit(session, video_id)
                outcome = "queued again"
        if changed is not None:
            log.warning("Video %s: lease ran out at %s (%d claim(s)); %s", video_id, stage, attempts, outcome)
            done.append((video_id, outcome))
    return done


# Running a job --------------------------------------------------------------------------


def run_job(video_id: object, *, session_factory: SessionFactory, storage: Storage, lease: timedelta,
            max_attempts: int, queue_wait: timedelta) -> str:
    """Claim the video and run its stages from where it is; returns what happened."""
    from course_app.services import media

    video_id = uuid.UUID(str(video_id))
    token = secrets.token_hex(16)
    with session_factory() as session:
        for model in MODELS:
            video = claim(session=session, video_id=video_id, token=token, lease=lease, max_attempts=max_attempts,
                          model=model)
            if video is not None:
                break
        else:
            return "skipped: nothing to do, or another worker has it"
        subject = media.Subject.of(video)
    with _held_lock:
        _held.add((video_id, token))
    try:
        return _run_stages(subject, token, model, session_factory=session_factory, storage=storage, lease=lease,
                           max_attempts=max_attempts, queue_wait=queue_wait)
    finally:
        with _held_lock:
            _held.discard((video_id, token))


def _finish(session: Session, model: Model, video_id: uuid.UUID, token: str, stage_next: str | None,
            found: dict) -> uuid.UUID | None:
    """Record a stage's findings: the next stage, or the end (a video is ready; a
    replacement is swapped into its video)."""
    if stage_next is None and model is VideoReplacement:
        from course_app.services import replacements

        return replacements.swap(session, video_id, only_if=holding(token, model), found=found)
    return transition(
        session, video_id, model=model, only_if=holding(token, model),
        status=VideoStatus.PROCESSING if stage_next else VideoStatus.READY, stage=stage_next,
        **({} if stage_next else {"lease_owner": None, "lease_expires_at": None}), **found,
    )


def _run_stages(subject, token: str, model: Model, *, session_factory: SessionFactory, storage: Storage,
                lease: timedelta, max_attempts: int, queue_wait: timedelta) -> str:
    from course_app.services import media, outbox

    video_id, stage = subject.id, subject.stage
    with Heartbeat(session_factory, video_id, token, lease, model) as heartbeat:
        while stage is not None:
            try:
                found = media.run_stage(stage, subject, storage)
            except StageFailed as exc:
                return _fail(session_factory, video_id, token, stage, exc.failure, model)
            except StorageError as exc:
                return _storage_trouble(session_factory, subject, token, stage, exc, max_attempts, queue_wait,
                                        model)
            except Exception as exc:  # noqa: BLE001 - a bug or a library crash must not leave the row stuck
                log.exception("Processing video %s failed at %s", video_id, stage)
                failure = Failure("internal_error", f"Processing failed unexpectedly ({type(exc).__name__}). "
                                  "Press Retry; if it fails again, tell the administrator.", True)
                return _fail(session_factory, video_id, token, stage, failure, model)
            following = STAGES.index(stage) + 1
            stage_next = STAGES[following] if following < len(STAGES) else None
            with session_factory() as session:
                changed = _finish(session, model, video_id, token, stage_next, found)
                forgotten = [] if changed is not None else media.forget_objects(session=session, subject=subject,
                                                                                 found=found, model=model)
                replaced = session.info.pop(REPLACED_FILES, [])
            if replaced:  # swapped in: the old file and its thumbnails go now (the outbox retries if it fails)
                outbox.process_pending_deletions(session_factory=session_factory, storage=storage, ids=replaced)
            if changed is None:
                if forgotten:  # the video was deleted meanwhile: its new thumbnails go at once
                    outbox.process_pending_deletions(session_factory=session_factory, storage=storage, ids=forgotten)
                return "stopped: the lease was lost or the video deleted"
            subject = dataclasses.replace(subject, **{k: v for k, v in found.items() if hasattr(subject, k)})
            if heartbeat.lost:
                return "stopped: the lease was lost"
            stage = stage_next
    return "ready"


def _fail(session_factory: SessionFactory, video_id: uuid.UUID, token: str, stage: str, failure: Failure,
          model: Model = Video) -> str:
    with session_factory() as session:
        transition(session, video_id, model=model, status=VideoStatus.FAILED, stage=stage, failure=failure,
                   only_if=holding(token, model), lease_owner=None, lease_expires_at=None)
    return f"failed: {failure.code}"


def _storage_trouble(session_factory: SessionFactory, subject, token: str, stage: str, exc: StorageError,
                     max_attempts: int, queue_wait: timedelta, model: Model = Video) -> str:
    """Storage could not be read or written: try again later while claims remain."""
    if not exc.retryable or subject.attempts >= max_attempts:
        failure = Failure("storage_unavailable", f"Storage could not be reached at the {stage} stage ({exc}). "
                          "Press Retry in a while.", True)
        return _fail(session_factory, subject.id, token, stage, failure, model)
    delay = STORAGE_RETRY_DELAYS[min(subject.attempts, len(STORAGE_RETRY_DELAYS)) - 1]
    with session_factory() as session:
        changed = transition(session, subject.id, model=model, status=VideoStatus.PROCESSING, stage=stage,
                             only_if=holding(token, model), lease_owner=None,
                             lease_expires_at=utcnow() + queue_wait + timedelta(seconds=delay))
        if changed is not None:
            _queue_after_commit(session, subject.id, delay)
    return f"storage trouble at {stage}; trying again in {delay}s"
