"""The resumable-upload ledger on SQLite and PostgreSQL, against local disk and
the B2 simulator: life cycle, idempotent parts, refusals and abort."""

from __future__ import annotations

import hashlib
import math
import random

import pytest
from sqlmodel import Session, select

from course_app.errors import Conflict, Forbidden, InvalidInput, QuotaExceeded, TooLarge, UnsupportedType
from course_app.models import StorageDeletion, UploadPart, UploadSession, Video
from course_app.services import courses, outbox, upload_sessions
from course_app.services.upload_sessions import ChecksumMismatch, IncompletePart, MissingParts
from course_app.storage.local import LocalStorage

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(100)
GIB = 1024**3


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def chapter(session, owner):
    course = courses.create_course(session=session, user=owner, title="Course")
    chapter = courses.add_chapter(session=session, user=owner, course_id=course.id, title="One")
    session.commit()
    return chapter


def file_bytes(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    body = rng.randbytes(max(0, size - len(MP4_HEAD)))
    return (MP4_HEAD + body)[:size]


def start(session_factory, storage, user, chapter, data: bytes, *, part_size: int, fingerprint: str | None = None,
          **kwargs):
    return upload_sessions.create(
        session_factory=session_factory, storage=storage, user=user, course_id=chapter.course_id,
        chapter_id=chapter.id, filename="lesson.mp4", size=len(data),
        fingerprint=fingerprint or "v1:" + hashlib.sha1(data).hexdigest(), head=data[:8192],
        max_bytes=kwargs.pop("max_bytes", 5 * GIB), quota_bytes=kwargs.pop("quota_bytes", 50 * GIB),
        configured_part_size=part_size, **kwargs,
    )


def part_of(data: bytes, upload: UploadSession, number: int) -> bytes:
    return data[(number - 1) * upload.chunk_size: number * upload.chunk_size]


def send(session_factory, storage, user, upload, data, number, *, sha1: str | None = "auto"):
    chunk = part_of(data, upload, number)
    client_sha1 = hashlib.sha1(chunk).hexdigest() if sha1 == "auto" else sha1
    return upload_sessions.store_part(
        session_factory=session_factory, storage=storage, user=user, upload_id=upload.id, number=number,
        size=len(chunk), chunks=iter([chunk[:7], chunk[7:]]), client_sha1=client_sha1,
    )


def part_size_for(storage) -> int:
    return max(storage.min_part_size, 1000)


def test_full_life_cycle_parts_out_of_order(session_factory, storage, owner, chapter, engine):
    size = part_size_for(storage)
    data = file_bytes(size * 3 + 123)
    view, created = start(session_factory, storage, owner, chapter, data, part_size=size)
    upload = view.session
    assert created and upload.part_count == 4 and upload.status == "active" and upload.storage_upload_id
    with Session(engine) as s:  # the video row and the session were written together
        video = s.get(Video, upload.video_id)
        assert video.status == "uploading" and video.storage_key == upload.storage_key

    for number in (3, 1, 4, 2):
        part, stored = send(session_factory, storage, owner, upload, data, number)
        assert stored and part.sha1 == hashlib.sha1(part_of(data, upload, number)).hexdigest()
    with session_factory() as s:
        assert upload_sessions.view(session=s, user=owner, upload_id=upload.id).missing_parts == []

    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=owner, upload_id=upload.id)
    assert video.status == "processing" and video.size_bytes == len(data)
    obj = storage.stat(video.storage_key, video.backblaze_file_id)
    assert obj.size == len(data)
    assert b"".join(storage.open_range(video.storage_key, video.backblaze_file_id)) == data
    if storage.name == "local":
        assert video.sha1 == hashlib.sha1(data).hexdigest()
    with Session(engine) as s:
        assert s.get(UploadSession, upload.id).status == "completed"
        assert s.exec(select(UploadPart).where(UploadPart.session_id == upload.id)).all() == []
    assert list(storage.list_unfinished("videos/")) == []
    # complete again: the same video, nothing redone
    again = upload_sessions.complete(session_factory=session_factory, storage=storage, user=owner, upload_id=upload.id)
    assert again.id == video.id


def test_resending_a_confirmed_part_is_harmless(session_factory, storage, owner, chapter):
    size = part_size_for(storage)
    data = file_bytes(size * 2)
    upload = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    first, stored = send(session_factory, storage, owner, upload, data, 1)
    again, stored_again = send(session_factory, storage, owner, upload, data, 1)
    assert stored and not stored_again and again.sha1 == first.sha1
    resent, stored_without_hash = send(session_factory, storage, owner, upload, data, 1, sha1=None)
    assert stored_without_hash and resent.sha1 == first.sha1
    with session_factory() as s:
        assert [p.number for p in upload_sessions.view(session=s, user=owner, upload_id=upload.id).parts] == [1]


def test_same_file_same_chapter_resumes_the_open_session(session_factory, storage, owner, chapter):
    size = part_size_for(storage)
    data = file_bytes(size * 2 + 5)
    upload = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    send(session_factory, storage, owner, upload, data, 2)
    view, created = start(session_factory, storage, owner, chapter, data, part_size=size)
    assert not created and view.session.id == upload.id
    assert [p.number for p in view.parts] == [2] and view.missing_parts == [1, 3]
    other, created_other = start(session_factory, storage, owner, chapter, file_bytes(size * 2 + 5, seed=9),
                                 part_size=size)
    assert created_other and other.session.id != upload.id


def test_wrong_sha1_wrong_size_and_out_of_range_parts_are_refused(session_factory, storage, owner, chapter):
    size = part_size_for(storage)
    data = file_bytes(size * 2 + 10)
    upload = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    with pytest.raises(ChecksumMismatch):
        send(session_factory, storage, owner, upload, data, 1, sha1="0" * 40)
    with pytest.raises(InvalidInput):
        send(session_factory, storage, owner, upload, data, 1, sha1="not-a-sha1")
    for number in (0, 4, -1, True, "1"):
        with pytest.raises(InvalidInput):
            with session_factory() as s:
                upload_sessions.check_part(session=s, user=owner, upload_id=upload.id, number=number, size=size)
    with session_factory() as s:
        with pytest.raises(TooLarge):
            upload_sessions.check_part(session=s, user=owner, upload_id=upload.id, number=1, size=size + 1)
        with pytest.raises(InvalidInput):
            upload_sessions.check_part(session=s, user=owner, upload_id=upload.id, number=3, size=5)
    with pytest.raises(IncompletePart):  # the stream ends short of the declared size
        upload_sessions.store_part(session_factory=session_factory, storage=storage, user=owner, upload_id=upload.id,
                                   number=1, size=size, chunks=iter([data[:10]]), client_sha1=None)
    with session_factory() as s:
        assert upload_sessions.view(session=s, user=owner, upload_id=upload.id).parts == []


def test_complete_with_missing_parts_is_refused_and_stays_resumable(session_factory, storage, owner, chapter):
    size = part_size_for(storage)
    data = file_bytes(size * 3)
    upload = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    send(session_factory, storage, owner, upload, data, 1)
    with pytest.raises(MissingParts) as refused:
        upload_sessions.complete(session_factory=session_factory, storage=storage, user=owner, upload_id=upload.id)
    assert refused.value.missing == [2, 3] and refused.value.status_code == 409
    send(session_factory, storage, owner, upload, data, 2)
    send(session_factory, storage, owner, upload, data, 3)
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=owner, upload_id=upload.id)
    assert video.status == "processing"


def test_refused_before_anything_is_stored(session_factory, storage, owner, chapter, make_user, engine):
    size = part_size_for(storage)
    data = file_bytes(size * 2)
    with pytest.raises(UnsupportedType):
        upload_sessions.create(session_factory=session_factory, storage=storage, user=owner,
                               course_id=chapter.course_id, chapter_id=chapter.id, filename="x.mp4", size=len(data),
                               fingerprint="f", head=b"MZ\x90\x00" + bytes(200), max_bytes=GIB, quota_bytes=GIB)
    with pytest.raises(TooLarge):
        start(session_factory, storage, owner, chapter, data, part_size=size, max_bytes=len(data) - 1)
    with pytest.raises(QuotaExceeded):
        start(session_factory, storage, owner, chapter, data, part_size=size, quota_bytes=len(data) - 1)
    with pytest.raises(Forbidden):
        start(session_factory, storage, make_user(), chapter, data, part_size=size)
    with pytest.raises(InvalidInput):
        start(session_factory, storage, owner, chapter, data, part_size=size, fingerprint="x" * 201)
    with Session(engine) as s:
        assert s.exec(select(UploadSession)).all() == [] and s.exec(select(Video)).all() == []
    assert list(storage.list_unfinished("videos/")) == []


def test_quota_counts_stored_videos_and_open_uploads(session_factory, storage, owner, chapter):
    size = part_size_for(storage)
    data = file_bytes(size * 2)
    start(session_factory, storage, owner, chapter, data, part_size=size, quota_bytes=len(data) * 2)
    with pytest.raises(QuotaExceeded):
        start(session_factory, storage, owner, chapter, file_bytes(size * 2, seed=5), part_size=size,
              quota_bytes=len(data) * 2 - 1)


def test_a_stranger_cannot_see_send_complete_or_abort(session_factory, storage, owner, chapter, make_user):
    size = part_size_for(storage)
    data = file_bytes(size * 2)
    upload = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    stranger = make_user()
    with pytest.raises(Forbidden):
        send(session_factory, storage, stranger, upload, data, 1)
    with pytest.raises(Forbidden):
        upload_sessions.complete(session_factory=session_factory, storage=storage, user=stranger, upload_id=upload.id)
    with session_factory() as s, pytest.raises(Forbidden):
        upload_sessions.abort(session=s, user=stranger, upload_id=upload.id)
    with session_factory() as s, pytest.raises(Forbidden):
        upload_sessions.view(session=s, user=stranger, upload_id=upload.id)
    with session_factory() as s, pytest.raises(Forbidden):
        upload_sessions.unfinished_for_course(session=s, user=stranger, course_id=chapter.course_id)


def test_abort_leaves_nothing(session_factory, storage, owner, chapter, engine):
    size = part_size_for(storage)
    data = file_bytes(size * 2)
    upload = start(session_factory, storage, owner, chapter, data, part_size=size)[0].session
    send(session_factory, storage, owner, upload, data, 1)
    with session_factory() as s:
        upload_sessions.abort(session=s, user=owner, upload_id=upload.id)
    outbox.process_pending_deletions(session_factory=session_factory, storage=storage)
    with Session(engine) as s:
        assert s.get(UploadSession, upload.id).status == "aborted"
        assert s.exec(select(Video)).all() == []
        assert s.exec(select(StorageDeletion)).all() == []
    assert list(storage.list_unfinished("videos/")) == [] and list(storage.list("videos/")) == []
    with pytest.raises(Conflict):
        send(session_factory, storage, owner, upload, data, 2)


def test_part_size_grows_to_fit_the_part_limit(storage):
    size = 20 * GIB
    part = upload_sessions.choose_part_size(size=size, storage=storage, configured=None)
    assert part >= storage.min_part_size and math.ceil(size / part) <= storage.max_parts
    assert upload_sessions.choose_part_size(size=10, storage=storage, configured=1) >= storage.min_part_size


def test_a_part_the_ledger_has_but_storage_lost_is_asked_for_again(session_factory, tmp_path, owner, chapter):
    storage = LocalStorage(tmp_path / "lossy")
    data = file_bytes(3000)
    upload = start(session_factory, storage, owner, chapter, data, part_size=1000)[0].session
    for number in (1, 2, 3):
        send(session_factory, storage, owner, upload, data, number)
    for leftover in (tmp_path / "lossy" / ".multipart" / upload.storage_upload_id).glob("2.part*"):
        leftover.unlink()  # a disk fault: storage no longer holds part 2
    with pytest.raises(MissingParts) as refused:
        upload_sessions.complete(session_factory=session_factory, storage=storage, user=owner, upload_id=upload.id)
    assert refused.value.missing == [2]
    with session_factory() as s:
        assert upload_sessions.view(session=s, user=owner, upload_id=upload.id).session.status == "active"
    part, stored = send(session_factory, storage, owner, upload, data, 2)
    assert stored  # not skipped as "already confirmed"
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=owner, upload_id=upload.id)
    assert video.status == "processing" and video.size_bytes == len(data)
