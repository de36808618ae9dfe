"""course_app/services/upload_sweep.py on SQLite and PostgreSQL, against local disk
and the B2 simulator: stale sessions expire, interrupted completions finish, and
storage uploads no session knows are cancelled."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session

from course_app.models import UploadSession, Video, utcnow
from course_app.services import outbox, upload_sweep
from tests.unit.test_upload_sessions import chapter, owner  # noqa: F401  (fixtures)
from tests.unit.test_upload_sessions import file_bytes, part_size_for, send, start


def test_sweep_expires_stale_sessions_and_cancels_unknown_uploads(session_factory, storage, owner, chapter, engine):
    size = part_size_for(storage)
    data = file_bytes(size * 2)
    stale = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    fresh = start(session_factory, storage, owner, chapter, file_bytes(size * 2, seed=2), part_size=size)[0].session
    send(session_factory, storage, owner, stale, data, 1)
    unknown_id = storage.start_multipart("videos/999/" + str(uuid.uuid4()), content_type="video/mp4")
    with session_factory() as s:
        row = s.get(UploadSession, stale.id)
        row.updated_at = utcnow() - timedelta(hours=30)
        s.add(row)
    later = utcnow() + timedelta(hours=2)  # the unknown upload is past its grace period

    dry = upload_sweep.sweep(session_factory=session_factory, storage=storage, stale_after=timedelta(hours=24),
                             dry_run=True, now=later)
    assert dry.expired == [str(stale.id)] and len(dry.unknown_cancelled) == 1
    with Session(engine) as s:
        assert s.get(UploadSession, stale.id).status == "active"

    report = upload_sweep.sweep(session_factory=session_factory, storage=storage,
                                stale_after=timedelta(hours=24), now=later)
    assert report.expired == [str(stale.id)] and unknown_id in report.unknown_cancelled[0]
    outbox.process_pending_deletions(session_factory=session_factory, storage=storage)
    with Session(engine) as s:
        assert s.get(UploadSession, stale.id).status == "expired"
        assert s.get(UploadSession, fresh.id).status == "active"
        video = s.get(Video, stale.video_id)
        assert video.status == "failed" and "no progress for 24 hours" in video.error
    remaining = {u.upload_id for u in storage.list_unfinished("videos/")}
    assert remaining == {fresh.storage_upload_id}


def test_sweep_finishes_a_stale_interrupted_completion_instead_of_expiring_it(session_factory, storage, owner,
                                                                               chapter, engine):
    size = part_size_for(storage)
    data = file_bytes(size * 2)
    upload = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    for number in (1, 2):
        send(session_factory, storage, owner, upload, data, number)
    with session_factory() as s:  # the process died between "completing" and storage's join
        row = s.get(UploadSession, upload.id)
        row.status, row.updated_at = "completing", utcnow() - timedelta(hours=30)
        s.add(row)
    report = upload_sweep.sweep(session_factory=session_factory, storage=storage, stale_after=timedelta(hours=24))
    assert report.expired == []
    with Session(engine) as s:
        assert s.get(UploadSession, upload.id).status == "completed"
        video = s.get(Video, upload.video_id)
        assert video.status == "processing" and video.size_bytes == len(data)
