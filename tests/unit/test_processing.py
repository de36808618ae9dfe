"""course_app/services/processing.py: the life cycle of a video's processing job on
SQLite and PostgreSQL, with real files on local disk: stages, leases, the reaper,
retries, idempotent runs, and what the checker makes of it."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from course_app.errors import Conflict
from course_app.models import Course, StorageDeletion, Video
from course_app.services import media, outbox, processing, reconcile, videos
from course_app.storage.base import StorageError
from tests.deleting import delete_video_for_good
from tests.media import make_video, mp4_header_then_garbage

LEASE, WAIT = timedelta(seconds=30), timedelta(minutes=10)
OPTIONS = {"lease": LEASE, "max_attempts": 3, "queue_wait": WAIT}


def pulse(engine, course_id) -> int:
    """The course's pulse: what open editors watch (services/live.py)."""
    with Session(engine) as fresh:
        return fresh.get(Course, course_id).pulse


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2, fps=10, size=(96, 64),
                      audio=True, seed=4).read_bytes()



def upload(session_factory, storage, chapter, data: bytes) -> uuid.UUID:
    user, chapter = chapter
    with session_factory() as session:
        video = videos.begin_upload(session=session, user=user, course_id=chapter.course_id, chapter_id=chapter.id,
                                    filename="clip.mp4", content_type="video/mp4", declared_size=None,
                                    max_bytes=10**9)
    stored = storage.put_stream(video.storage_key, [data], content_type="video/mp4")
    with session_factory() as session:
        videos.finish_upload(session=session, video_id=video.id, stored=stored)
    return video.id


def row(engine, video_id) -> Video:
    with Session(engine) as fresh:
        return fresh.get(Video, video_id)


def run(session_factory, storage, video_id) -> str:
    return processing.run_job(video_id, session_factory=session_factory, storage=storage, **OPTIONS)


def abandon(session_factory, video_id) -> str:
    """A worker claims the job and dies (no heartbeat, no further write)."""
    token = uuid.uuid4().hex
    with session_factory() as session:
        assert processing.claim(session=session, video_id=video_id, token=token, lease=LEASE, max_attempts=3)
    return token


def reap_later(session_factory, seconds: float = 31):
    return processing.reap(session_factory=session_factory, max_attempts=3, queue_wait=WAIT,
                           now=processing.utcnow() + timedelta(seconds=seconds))


def test_a_stored_upload_goes_to_processing_and_its_job_is_queued_after_commit(
        engine, session_factory, local_storage, chapter, clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)

    video = row(engine, video_id)
    assert (video.status, video.stage, video.attempts) == ("processing", "verifying", 0)
    assert queued == [video_id]


def test_nothing_is_queued_when_the_transaction_rolls_back(engine, session_factory, local_storage, chapter, clip,
                                                           queued):
    user, chap = chapter
    with session_factory() as session:
        video = videos.begin_upload(session=session, user=user, course_id=chap.course_id, chapter_id=chap.id,
                                    filename="clip.mp4", content_type="video/mp4", declared_size=None, max_bytes=10**9)
    stored = local_storage.put_stream(video.storage_key, [clip], content_type="video/mp4")
    with pytest.raises(RuntimeError), session_factory() as session:
        videos.finish_upload(session=session, video_id=video.id, stored=stored)
        raise RuntimeError("the database went away before the commit")
    assert queued == []
    assert row(engine, video.id).status == "uploading"


def test_the_job_runs_every_stage_to_ready(engine, session_factory, local_storage, chapter, clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)
    before = pulse(engine, chapter[1].course_id)

    assert run(session_factory, local_storage, video_id) == "ready"

    video = row(engine, video_id)
    assert (video.status, video.stage, video.failure_code, video.error, video.lease_owner) == (
        "ready", None, None, None, None)
    assert video.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert (video.width, video.height, video.video_codec, video.audio_codec) == (96, 64, "h264", "aac")
    assert video.bitrate > 0 and video.attempts == 1
    for key in (video.thumbnail_small_key, video.thumbnail_large_key):
        assert local_storage.stat(key, key).content_type == "image/jpeg"
    # Each stage change told the course's open editors: probing, thumbnail, ready.
    assert pulse(engine, video.course_id) == before + 3


def test_running_a_job_twice_or_at_once_does_the_work_once(engine, session_factory, local_storage, chapter, clip,
                                                           queued, monkeypatch):
    video_id = upload(session_factory, local_storage, chapter, clip)
    calls = []
    real_probe = media.probe
    started, release = threading.Event(), threading.Event()

    def slow_probe(subject, storage):
        calls.append(subject.id)
        started.set()
        release.wait(10)
        return real_probe(subject, storage)

    monkeypatch.setattr(media, "probe", slow_probe)
    outcomes = []
    first = threading.Thread(target=lambda: outcomes.append(run(session_factory, local_storage, video_id)))
    first.start()
    assert started.wait(10)
    outcomes.append(run(session_factory, local_storage, video_id))  # the same job again, while the first runs
    release.set()
    first.join(10)
    outcomes.append(run(session_factory, local_storage, video_id))  # and once it is done

    assert sorted(outcomes) == ["ready", "skipped: nothing to do, or another worker has it",
                                "skipped: nothing to do, or another worker has it"]
    assert calls == [video_id] and row(engine, video_id).attempts == 1


def test_a_worker_that_died_mid_stage_is_noticed_when_its_lease_runs_out(
        engine, session_factory, local_storage, chapter, clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)
    abandon(session_factory, video_id)

    assert run(session_factory, local_storage, video_id).startswith("skipped")  # its lease still holds
    assert reap_later(session_factory, seconds=5) == []
    assert reap_later(session_factory) == [(video_id, "queued again")]
    assert queued == [video_id, video_id]
    assert run(session_factory, local_storage, video_id) == "ready"
    assert row(engine, video_id).attempts == 2


def test_a_worker_that_lost_its_lease_can_no_longer_change_the_row(engine, session_factory, local_storage, chapter,
                                                                  clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)
    stale = abandon(session_factory, video_id)
    reap_later(session_factory)
    fresh = abandon(session_factory, video_id)
    with session_factory() as session:
        assert processing.transition(session, video_id, status="ready", stage=None,
                                     only_if=processing.holding(stale)) is None
        assert not processing.renew(session=session, video_id=video_id, token=stale, lease=LEASE)
        assert processing.renew(session=session, video_id=video_id, token=fresh, lease=LEASE)
    assert row(engine, video_id).status == "processing"


def test_after_the_last_attempt_the_video_fails_with_the_reason(engine, session_factory, local_storage, chapter,
                                                                clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)
    for _ in range(3):
        abandon(session_factory, video_id)
        outcome = reap_later(session_factory)
    assert outcome == [(video_id, "failed: worker_lost")]

    video = row(engine, video_id)
    assert (video.status, video.stage, video.failure_code, video.retryable) == (
        "failed", "verifying", "worker_lost", True)
    assert "3 times" in video.error and "Retry" in video.error
    assert run(session_factory, local_storage, video_id).startswith("skipped")


def test_the_checker_reports_a_stuck_video_and_repair_queues_it_again(
        engine, session_factory, local_storage, chapter, clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)
    abandon(session_factory, video_id)
    later = processing.utcnow() + timedelta(seconds=31)
    with session_factory() as session:
        report = reconcile.check_videos(session=session, storage=local_storage, now=later)
    assert [(p.kind, p.video_id) for p in report.problems] == [("stuck_processing", str(video_id))]
    assert "verifying" in report.problems[0].detail

    with session_factory() as session:  # still young: nothing to report
        assert reconcile.check_videos(session=session, storage=local_storage).ok


def test_an_undecodable_file_fails_at_probing_and_keeps_its_file(engine, session_factory, local_storage, chapter,
                                                                 queued):
    video_id = upload(session_factory, local_storage, chapter, mp4_header_then_garbage())

    assert run(session_factory, local_storage, video_id) == "failed: not_decodable"

    video = row(engine, video_id)
    assert (video.status, video.stage, video.failure_code, video.retryable) == (
        "failed", "probing", "not_decodable", False)
    assert "Upload the video again" in video.error
    user, _ = chapter
    with session_factory() as session, pytest.raises(Conflict, match="Retrying cannot help"):
        processing.retry(session=session, user=user, video_id=video_id, queue_wait=WAIT)
    with session_factory() as session:  # its file is not an orphan: a forced retry needs it
        assert reconcile.check_videos(session=session, storage=local_storage, grace=timedelta(0)).ok


def test_retry_runs_the_failed_stage_again_and_not_the_ones_before(
        engine, session_factory, local_storage, chapter, clip, queued, monkeypatch):
    video_id = upload(session_factory, local_storage, chapter, clip)
    real_thumbnail = media.thumbnail

    def broken(subject, storage):
        raise StorageError("Storage is unavailable right now; try again.", retryable=False)

    monkeypatch.setattr(media, "thumbnail", broken)
    assert run(session_factory, local_storage, video_id) == "failed: storage_unavailable"
    failed = row(engine, video_id)
    assert (failed.status, failed.stage, failed.retryable) == ("failed", "thumbnail", True)

    ran = []
    monkeypatch.setattr(media, "verify", lambda *a: ran.append("verify") or {})
    monkeypatch.setattr(media, "probe", lambda *a: ran.append("probe") or {})
    monkeypatch.setattr(media, "thumbnail", lambda *a: ran.append("thumbnail") or real_thumbnail(*a))
    user, _ = chapter
    with session_factory() as session:
        again = processing.retry(session=session, user=user, video_id=video_id, queue_wait=WAIT)
        assert (again.status, again.stage, again.error) == ("processing", "thumbnail", None)
    assert queued[-1] == video_id
    assert run(session_factory, local_storage, video_id) == "ready"
    assert ran == ["thumbnail"]


def test_a_storage_hiccup_queues_the_job_again_later(engine, session_factory, local_storage, chapter, clip, monkeypatch):
    delays = []
    processing.set_enqueuer(lambda video_id, delay: delays.append(delay))
    try:
        video_id = upload(session_factory, local_storage, chapter, clip)
        monkeypatch.setattr(media, "verify", lambda *a: (_ for _ in ()).throw(StorageError("down", retryable=True)))
        assert run(session_factory, local_storage, video_id).startswith("storage trouble at verifying")
    finally:
        processing.set_enqueuer(None)
    video = row(engine, video_id)
    assert (video.status, video.stage, video.lease_owner) == ("processing", "verifying", None)
    assert delays == [0, processing.STORAGE_RETRY_DELAYS[0]]


def test_a_ready_video_is_deleted_with_its_thumbnails_through_the_outbox(
        engine, session_factory, local_storage, chapter, clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)
    run(session_factory, local_storage, video_id)
    video = row(engine, video_id)
    with session_factory() as session:  # the thumbnails are counted as the video's, not orphans
        report = reconcile.check_videos(session=session, storage=local_storage, grace=timedelta(0))
    assert report.ok and report.objects_checked == 3

    user, _ = chapter
    with session_factory() as session:
        delete_video_for_good(session=session, user=user, video_id=video_id)
    with Session(engine) as fresh:
        pending = list(fresh.exec(select(StorageDeletion)))
    assert [d.storage_key for d in pending] == [video.storage_key]  # its thumbnails go with it
    assert outbox.process_pending_deletions(session_factory=session_factory, storage=local_storage,
                                            ids=[pending[0].id]) == (1, 0)
    assert list(local_storage.list("videos/")) == []


def test_thumbnails_stored_for_a_video_deleted_meanwhile_go_to_the_outbox(
        engine, session_factory, local_storage, chapter, clip, queued, monkeypatch):
    video_id = upload(session_factory, local_storage, chapter, clip)
    user, _ = chapter
    real_thumbnail = media.thumbnail

    def thumbnail_then_delete(subject, storage):
        found = real_thumbnail(subject, storage)
        with session_factory() as session:
            delete_video_for_good(session=session, user=user, video_id=video_id)
        return found

    monkeypatch.setattr(media, "thumbnail", thumbnail_then_delete)
    assert run(session_factory, local_storage, video_id).startswith("stopped")
    # The worker removed the thumbnails at once; the video's own file waits in the outbox.
    with Session(engine) as fresh:
        waiting = [d.storage_key for d in fresh.exec(select(StorageDeletion))]
    assert [obj.key for obj in local_storage.list("videos/")] == waiting
    assert len(waiting) == 1 and ".thumb-" not in waiting[0]


def test_a_worker_that_stops_lets_its_leases_run_out_for_the_next_one(engine, session_factory, local_storage, chapter,
                                                                    clip, queued):
    video_id = upload(session_factory, local_storage, chapter, clip)
    token = abandon(session_factory, video_id)  # held by this process's worker, which now stops
    processing._held.add((video_id, token))
    try:
        assert processing.release_held(session_factory=session_factory) == 1
    finally:
        processing._held.discard((video_id, token))

    assert processing.reap(session_factory=session_factory, max_attempts=3, queue_wait=WAIT) == [
        (video_id, "queued again")]  # at once, not a lease's length later
