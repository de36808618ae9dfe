"""course_app/services/replacements.py: replacing a lesson's video file in place, on
SQLite and PostgreSQL with real little videos on local disk: the swap transaction,
failures that leave the lesson as it was, and what the checker makes of every
crash point."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session, select

import course_app.cli

from course_app.errors import Conflict, Forbidden, NotFound
from course_app.models import Course, StorageDeletion, UploadSession, UploadStatus, Video, VideoReplacement
from course_app.services import outbox, processing, reconcile, replacements, upload_sessions, videos
from tests.deleting import delete_video_for_good
from tests.media import make_video, mp4_header_then_garbage

OPTIONS = {"lease": timedelta(seconds=30), "max_attempts": 3, "queue_wait": timedelta(minutes=10)}
LATER = timedelta(hours=2)  # past the checker's grace period


@pytest.fixture
def storage(local_storage):
    return local_storage


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "old": make_video(folder / "old.mp4", seconds=2, fps=10, size=(96, 64), seed=1).read_bytes(),
        "new": make_video(folder / "new.mp4", seconds=4, fps=10, size=(128, 96), seed=2).read_bytes(),
    }


def run(session_factory, storage, job_id) -> str:
    return processing.run_job(job_id, session_factory=session_factory, storage=storage, **OPTIONS)


def start(session_factory, storage, user, data: bytes, *, chapter=None, replaces=None, name="lesson.mp4"):
    return upload_sessions.create(
        session_factory=session_factory, storage=storage, user=user,
        course_id=chapter.course_id if chapter else None, chapter_id=chapter.id if chapter else None,
        filename=name, size=len(data), fingerprint="v1:" + hashlib.sha1(data).hexdigest(), head=data[:8192],
        max_bytes=10**9, quota_bytes=10**10, configured_part_size=len(data), replaces_video_id=replaces,
    )[0].session


def send_all(session_factory, storage, user, upload: UploadSession, data: bytes):
    upload_sessions.store_part(session_factory=session_factory, storage=storage, user=user, upload_id=upload.id,
                               number=1, size=len(data), chunks=iter([data]), client_sha1=None)
    return upload_sessions.complete(session_factory=session_factory, storage=storage, user=user,
                                    upload_id=upload.id)


@pytest.fixture
def lesson(session_factory, storage, chapter, clips, queued):
    """A ready lesson (the second of its chapter, after a failed one), processed from the "old" clip."""
    user, chap = chapter
    for name, data in (("first.mp4", clips["old"][:5000]), ("lesson.mp4", clips["old"])):
        upload = start(session_factory, storage, user, data, chapter=chap, name=name)
        video = send_all(session_factory, storage, user, upload, data)
        outcome = run(session_factory, storage, video.id)
    assert outcome == "ready"
    queued.clear()
    return video.id


def row(engine, model, row_id):
    with Session(engine) as fresh:
        return fresh.get(model, row_id)


def replacement_of(engine, video_id) -> VideoReplacement | None:
    with Session(engine) as fresh:
        return replacements.of_video(fresh, video_id)


def stored_keys(storage) -> set[str]:
    return {obj.key for obj in storage.list("videos/")}


def check(session_factory, storage, later: bool = False) -> reconcile.Report:
    with session_factory() as session:
        return reconcile.check_videos(session=session, storage=storage,
                                      now=processing.utcnow() + (LATER if later else timedelta(0)))


def replace(session_factory, storage, user, video_id, data) -> VideoReplacement:
    upload = start(session_factory, storage, user, data, replaces=video_id, name="take2.mp4")
    video = send_all(session_factory, storage, user, upload, data)
    assert video.id == video_id  # the answer names the lesson, not a new video
    with session_factory() as session:
        return replacements.of_video(session, video_id)


def test_the_swap_keeps_the_lesson_and_sends_the_old_file_through_the_outbox(
        session_factory, storage, engine, chapter, lesson, clips, queued):
    user, _ = chapter
    before = row(engine, Video, lesson)
    old_objects = {before.storage_key, before.thumbnail_small_key, before.thumbnail_large_key}
    assert old_objects <= stored_keys(storage)
    pulse = row(engine, Course, before.course_id).pulse

    pending = replace(session_factory, storage, user, lesson, clips["new"])

    # Until it is processed the lesson plays its old file, and nothing else shows it.
    assert pending.status == "processing" and pending.storage_key != before.storage_key
    assert queued == [pending.id]
    meanwhile = row(engine, Video, lesson)
    assert (meanwhile.status, meanwhile.storage_key, meanwhile.size_bytes) == ("ready", before.storage_key,
                                                                              before.size_bytes)
    with Session(engine) as fresh:
        assert len(videos.chapter_videos(session=fresh, chapter_id=before.chapter_id)) == 2
        assert replacements.describe(replacements.of_video(fresh, lesson)).startswith("Replacing with take2.mp4")
    assert row(engine, Course, before.course_id).pulse > pulse  # open editors were told
    assert check(session_factory, storage).ok  # its stored file is known, not an orphan

    assert run(session_factory, storage, pending.id) == "ready"

    after = row(engine, Video, lesson)
    assert (after.id, after.title, after.position, after.chapter_id) == (
        before.id, before.title, before.position, before.chapter_id)
    assert (after.status, after.storage_key, after.filename) == ("ready", pending.storage_key, "take2.mp4")
    assert after.size_bytes == len(clips["new"]) and after.sha1 == hashlib.sha1(clips["new"]).hexdigest()
    assert after.duration_seconds > before.duration_seconds and (after.width, after.height) == (128, 96)
    assert after.thumbnail_small_key.startswith(pending.storage_key) and after.thumbnail_small_key in stored_keys(storage)
    assert replacement_of(engine, lesson) is None
    assert not old_objects & stored_keys(storage)  # the worker sent the old file and thumbnails through the outbox
    with Session(engine) as fresh:
        assert fresh.exec(select(StorageDeletion)).all() == []
    assert check(session_factory, storage, later=True).ok


def test_a_failed_replacement_leaves_the_lesson_as_it_was_until_dismissed(
        session_factory, storage, engine, chapter, lesson):
    user, _ = chapter
    before = row(engine, Video, lesson)
    pending = replace(session_factory, storage, user, lesson, mp4_header_then_garbage())

    assert run(session_factory, storage, pending.id) == "failed: not_decodable"

    failed = replacement_of(engine, lesson)
    assert failed.status == "failed" and failed.stage == "probing" and failed.retryable is False
    assert replacements.describe(failed).startswith("Replacement failed: We could not find a playable video")
    assert row(engine, Video, lesson).model_dump() == before.model_dump()  # not a column changed
    with session_factory() as session, pytest.raises(Conflict):
        replacements.retry(session=session, user=user, video_id=lesson)  # retrying cannot help
    assert check(session_factory, storage, later=True).ok  # the failed file stays until dismissed

    with session_factory() as session:
        ids = replacements.dismiss(session=session, user=user, video_id=lesson)
    outbox.process_pending_deletions(session_factory=session_factory, storage=storage, ids=ids)
    assert replacement_of(engine, lesson) is None
    assert pending.storage_key not in stored_keys(storage)
    assert row(engine, Video, lesson).model_dump() == before.model_dump()
    assert check(session_factory, storage, later=True).ok


def test_a_retryable_failure_runs_again_from_its_stage(session_factory, storage, engine, chapter, lesson, clips,
                                                      queued, monkeypatch):
    user, _ = chapter
    pending = replace(session_factory, storage, user, lesson, clips["new"])
    with session_factory() as session:  # the worker died after its last claim
        processing.transition(session, pending.id, model=VideoReplacement, status="failed", stage="thumbnail",
                              failure=processing.Failure("worker_lost", "Processing stopped.", True))
    queued.clear()
    with session_factory() as session:
        replacements.retry(session=session, user=user, video_id=lesson)
    assert queued == [pending.id]
    assert run(session_factory, storage, pending.id) == "ready"
    assert row(engine, Video, lesson).storage_key == pending.storage_key


@pytest.fixture
def retry_video(app_database, monkeypatch, capsys):
    """`course-app retry-video ...` on the test database: (exit code, stdout, stderr)."""
    monkeypatch.setattr(course_app.cli, "migrate", lambda: None)

    def run_command(*args: str) -> tuple[int, str, str]:
        code = course_app.cli.main(["retry-video", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run_command


@pytest.mark.parametrize("by", ["video", "replacement"])
def test_the_retry_command_runs_a_failed_replacement_again(session_factory, storage, engine, chapter, lesson, clips,
                                                          queued, retry_video, by):
    user, _ = chapter
    before = row(engine, Video, lesson)
    pending = replace(session_factory, storage, user, lesson, clips["new"])
    with session_factory() as session:  # the worker died after its last claim
        processing.transition(session, pending.id, model=VideoReplacement, status="failed", stage="thumbnail",
                              failure=processing.Failure("worker_lost", "Processing stopped.", True))
    queued.clear()

    code, out, err = retry_video(str(lesson if by == "video" else pending.id))

    assert (code, err) == (0, "")
    assert out == (f"The new file of video {lesson} (take2.mp4, replacement {pending.id}) is processing again "
                   "from the thumbnail stage.\n")
    assert queued == [pending.id]
    assert (replacement_of(engine, lesson).status, replacement_of(engine, lesson).stage) == ("processing", "thumbnail")
    assert row(engine, Video, lesson).model_dump() == before.model_dump()  # the lesson plays its old file meanwhile
    assert run(session_factory, storage, pending.id) == "ready"
    assert row(engine, Video, lesson).storage_key == pending.storage_key

    # Nothing failed now: the video is ready, so there is nothing to retry.
    code, out, err = retry_video(str(lesson))
    assert (code, out) == (1, "") and "it is ready" in err


def test_the_retry_command_says_why_a_replacement_whose_upload_failed_cannot_run_again(
        session_factory, storage, engine, chapter, lesson, clips, queued, retry_video):
    user, _ = chapter
    upload = start(session_factory, storage, user, clips["new"], replaces=lesson)
    with session_factory() as session:  # the sweep expires it
        upload_sessions.close(session, session.get(UploadSession, upload.id), status=UploadStatus.EXPIRED,
                              reason="The upload was abandoned.", keep_video_as_failed=True)
    queued.clear()

    code, out, err = retry_video(str(lesson))

    assert (code, out) == (1, "")
    assert err == "error: The new file never finished uploading: choose Replace file again.\n"
    assert replacement_of(engine, lesson).status == "failed" and queued == []
    unknown = uuid.uuid4()
    assert retry_video(str(unknown)) == (1, "", f"error: No video {unknown}.\n")


def test_an_abandoned_upload_leaves_the_lesson_and_shows_why(session_factory, storage, engine, chapter, lesson,
                                                             clips):
    user, _ = chapter
    before = row(engine, Video, lesson)
    upload = start(session_factory, storage, user, clips["new"], replaces=lesson)
    with session_factory() as session:  # the sweep expires it
        upload_sessions.close(session, session.get(UploadSession, upload.id), status=UploadStatus.EXPIRED,
                              reason="The upload was abandoned.", keep_video_as_failed=True)
    failed = replacement_of(engine, lesson)
    assert failed.status == "failed" and replacements.describe(failed) == "Replacement failed: The upload was abandoned."
    assert row(engine, Video, lesson).model_dump() == before.model_dump()
    with session_factory() as session, pytest.raises(Conflict):
        replacements.retry(session=session, user=user, video_id=lesson)  # nothing stored to retry

    # A new Replace file takes over from the failed one; cancelling it leaves nothing.
    upload = start(session_factory, storage, user, clips["new"], replaces=lesson)
    with session_factory() as session:
        upload_sessions.abort(session=session, user=user, upload_id=upload.id)
    assert replacement_of(engine, lesson) is None
    outbox.process_pending_deletions(session_factory=session_factory, storage=storage, due_only=False)
    assert row(engine, Video, lesson).model_dump() == before.model_dump()
    assert check(session_factory, storage, later=True).ok


def test_who_and_what_can_be_replaced(session_factory, storage, engine, chapter, lesson, clips, make_user):
    user, chap = chapter
    stranger = make_user()
    with pytest.raises(Forbidden):
        start(session_factory, storage, stranger, clips["new"], replaces=lesson)
    with pytest.raises(NotFound):
        start(session_factory, storage, user, clips["new"], replaces=uuid.uuid4())
    start(session_factory, storage, user, clips["new"], replaces=lesson)
    with pytest.raises(Conflict, match="already on its way"):
        start(session_factory, storage, user, clips["old"], replaces=lesson)
    upload = start(session_factory, storage, user, clips["new"], chapter=chap, name="fresh.mp4")
    with pytest.raises(Conflict, match="replace it once it is ready"):
        start(session_factory, storage, user, clips["new"], replaces=upload.video_id)
    with session_factory() as session:  # only its own course's replacement counts against the quota, once
        assert upload_sessions.bytes_in_use(session=session, user=user) >= 2 * len(clips["new"])


# Crash points ------------------------------------------------------------------------


def test_swap_committed_but_old_file_not_yet_deleted_is_finished_by_the_checker(
        session_factory, storage, engine, chapter, lesson, clips, monkeypatch):
    user, _ = chapter
    old_key = row(engine, Video, lesson).storage_key
    pending = replace(session_factory, storage, user, lesson, clips["new"])
    with monkeypatch.context() as patched:  # the worker dies right after the swap commits
        patched.setattr(outbox, "process_pending_deletions", lambda **kwargs: (0, 0))
        assert run(session_factory, storage, pending.id) == "ready"
    with Session(engine) as fresh:
        assert [(w.storage_key, w.reason) for w in fresh.exec(select(StorageDeletion))] == [(old_key, "video replaced")]
    report = check(session_factory, storage, later=True)
    assert [(p.kind, p.key) for p in report.problems] == [("pending_deletion", old_key)]
    repaired = reconcile.repair(session_factory=session_factory, storage=storage, grace=timedelta(0))
    assert repaired.ok and not any(k.startswith(old_key) for k in stored_keys(storage))
    assert row(engine, Video, lesson).storage_key == pending.storage_key


def test_new_file_stored_but_never_recorded_is_handed_on_by_the_checker(
        session_factory, storage, engine, chapter, lesson, clips, queued):
    user, _ = chapter
    upload = start(session_factory, storage, user, clips["new"], replaces=lesson)
    pending = replacement_of(engine, lesson)
    # The bytes landed under the replacement's key, then the database lost the session.
    storage.put_stream(pending.storage_key, [clips["new"]], content_type="video/mp4")
    with session_factory() as session:
        session.get(UploadSession, upload.id).status = UploadStatus.ABORTED
    report = check(session_factory, storage, later=True)
    [problem] = [p for p in report.problems if p.kind != "unknown_upload"]
    assert (problem.kind, problem.replacement_id, problem.video_id) == (
        "unrecorded_replacement", str(pending.id), str(lesson))

    reconcile.repair(session_factory=session_factory, storage=storage, grace=timedelta(0))
    assert replacement_of(engine, lesson).status == "processing" and pending.id in queued
    assert run(session_factory, storage, pending.id) == "ready"
    assert row(engine, Video, lesson).storage_key == pending.storage_key


def test_replacement_upload_that_never_started_is_marked_failed_by_the_checker(
        session_factory, storage, engine, chapter, lesson, clips):
    user, _ = chapter
    upload = start(session_factory, storage, user, clips["new"], replaces=lesson)
    with session_factory() as session:
        session.get(UploadSession, upload.id).status = UploadStatus.ABORTED
    assert [p.kind for p in check(session_factory, storage, later=True).problems
            if p.kind != "unknown_upload"] == ["stuck_replacement"]
    reconcile.repair(session_factory=session_factory, storage=storage, grace=timedelta(0))
    assert replacement_of(engine, lesson).status == "failed"
    assert row(engine, Video, lesson).status == "ready"


def test_a_stuck_replacement_upload_whose_session_is_open_is_failed_once_by_the_checker(
        session_factory, storage, engine, chapter, lesson, clips):
    user, _ = chapter
    upload = start(session_factory, storage, user, clips["new"], replaces=lesson)
    pending = replacement_of(engine, lesson)
    with session_factory() as session:  # the session is open, but storage never started its upload
        session.get(UploadSession, upload.id).storage_upload_id = None
    repaired = reconcile.repair(session_factory=session_factory, storage=storage, grace=timedelta(0))
    # Expiring the session fails the replacement; the repair does not fail it (and queue its key) again.
    assert [(a.kind, a.outcome) for a in repaired.actions if a.key == pending.storage_key and
            a.kind != "unknown_upload"] == [("stuck_replacement", "marked failed"),
                                            ("pending_deletion", "deleted from storage")]
    assert row(engine, UploadSession, upload.id).status == "expired"
    assert replacement_of(engine, lesson).status == "failed" and row(engine, Video, lesson).status == "ready"


def test_a_worker_dying_mid_replacement_is_reaped_and_the_orphan_is_seen(
        session_factory, storage, engine, chapter, lesson, clips, queued):
    user, _ = chapter
    pending = replace(session_factory, storage, user, lesson, clips["new"])
    with session_factory() as session:
        assert processing.claim(session=session, video_id=pending.id, token="dead", max_attempts=3,
                                lease=timedelta(seconds=1), model=VideoReplacement)
    later = processing.utcnow() + timedelta(seconds=5)
    with session_factory() as session:
        report = reconcile.check_videos(session=session, storage=storage, now=later)
    assert [(p.kind, p.replacement_id) for p in report.problems] == [("stuck_processing", str(pending.id))]
    queued.clear()
    assert processing.reap(session_factory=session_factory, now=later, **{
        k: OPTIONS[k] for k in ("max_attempts", "queue_wait")}) == [(pending.id, "queued again")]
    assert queued == [pending.id]

    # A file under a key no row names (the replacement row is gone) is an orphan.
    stray = f"videos/{user.id}/{uuid.uuid4()}"
    storage.put_stream(stray, [b"bytes"], content_type="video/mp4")
    kinds = {(p.kind, p.key) for p in check(session_factory, storage, later=True).problems}
    assert ("orphan_file", stray) in kinds


def test_deleting_the_lesson_takes_its_pending_replacement_with_it(session_factory, storage, engine, chapter,
                                                                   lesson, clips):
    user, _ = chapter
    pending = replace(session_factory, storage, user, lesson, clips["new"])
    with session_factory() as session:
        delete_video_for_good(session=session, user=user, video_id=lesson)
    assert replacement_of(engine, lesson) is None
    # The worker then finds nothing to do; the outbox removes both files.
    assert run(session_factory, storage, pending.id).startswith("skipped")
    outbox.process_pending_deletions(session_factory=session_factory, storage=storage, due_only=False)
    assert pending.storage_key not in stored_keys(storage)
    assert check(session_factory, storage, later=True).ok
