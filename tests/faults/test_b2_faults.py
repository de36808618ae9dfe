"""B2 misbehaving under real uploads (services with b2sdk's simulator): errors that
a retry gets past, permanent refusals, an auth token that expires mid-upload, and
damaged parts. Either the upload succeeds or it fails cleanly (a row marked
failed with a reason, nothing left in storage after the checker's repair)."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from b2sdk.v3.exception import (
    AccessDenied,
    B2ConnectionError,
    InvalidAuthToken,
    ServiceError,
    StorageCapExceeded,
)
from sqlmodel import Session, select

from course_app.errors import StorageUnavailable
from course_app.models import UploadPart
from course_app.services import upload_sessions
from course_app.services.upload_sessions import ChecksumMismatch
from course_app.storage.b2_parts import CREDENTIALS_REJECTED, STORAGE_FULL, UNAVAILABLE
from course_app.storage.base import StorageError
from tests.faults.conftest import (
    PART,
    assert_consistent,
    ingest,
    kinds,
    only_row,
    part_of,
    repair,
    resumable_start,
    sha1,
    video_bytes,
)


@pytest.fixture
def storage(b2_storage):
    """B2 only (the module's tests are about B2's own failures)."""
    return b2_storage


@pytest.fixture
def sim(b2):
    return b2.sim


def fail_calls(monkeypatch, sim, name: str, errors: dict[int, Exception]):
    """Make call number n (1-based) of ``sim.name`` raise ``errors[n]``; returns the call log."""
    real = getattr(sim, name)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(name)
        error = errors.get(len(calls))
        if error is not None:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(sim, name, flaky)
    return calls


# Retried, then fine -----------------------------------------------------------------------


def test_a_single_upload_that_fails_twice_is_retried_and_succeeds(engine, storage, sim, sleeps, place):
    sim.set_upload_errors([ServiceError("503 service_unavailable"), B2ConnectionError("connection reset")])
    data = video_bytes(PART - 10)

    video = ingest(place, storage, data)

    assert video.status == "processing" and video.sha1 == sha1(data)
    assert sleeps == [0.5, 1.0]
    assert repair(engine, storage).before.ok
    assert_consistent(engine, storage, {video.id: data})


def test_parts_that_fail_are_retried_and_the_large_upload_succeeds(engine, storage, sim, sleeps, place, monkeypatch):
    fail_calls(monkeypatch, sim, "upload_part", {2: ServiceError("500 internal_error"), 4: B2ConnectionError("x")})
    data = video_bytes(3 * PART + 5)

    video = ingest(place, storage, data)

    assert video.status == "processing" and video.sha1 == sha1(data) and len(sleeps) == 2
    assert_consistent(engine, storage, {video.id: data})


def test_a_resumable_part_that_fails_once_is_retried(engine, storage, sim, sleeps, place, session_factory,
                                                     monkeypatch):
    data = video_bytes(2 * PART + 1)
    view, _ = resumable_start(session_factory, storage, place, data, part_size=PART)
    fail_calls(monkeypatch, sim, "upload_part", {1: ServiceError("503 service_unavailable")})

    for number in (1, 2, 3):
        send(session_factory, storage, place, view.session, data, number)
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                     upload_id=view.session.id)

    assert video.status == "processing" and sleeps == [0.5]
    assert_consistent(engine, storage, {video.id: data})


# Permanent failures -----------------------------------------------------------------------


@pytest.mark.parametrize(("error", "message"), [(AccessDenied(), CREDENTIALS_REJECTED),
                                                 (StorageCapExceeded(), STORAGE_FULL)])
def test_a_permanent_refusal_fails_the_upload_cleanly(engine, storage, sim, sleeps, place, error, message):
    sim.set_upload_errors([error])

    with pytest.raises(StorageUnavailable, match=re.escape(message)):
        ingest(place, storage, video_bytes(1000))

    assert sleeps == []  # not retried
    row = only_row(engine)
    assert row.status == "failed" and message in row.error
    assert repair(engine, storage).before.ok  # nothing was left for the checker
    assert_consistent(engine, storage)


def test_a_permanent_refusal_mid_large_upload_cancels_it(engine, storage, sim, place, monkeypatch):
    fail_calls(monkeypatch, sim, "upload_part", {2: StorageCapExceeded()})

    with pytest.raises(StorageUnavailable, match=re.escape(STORAGE_FULL)):
        ingest(place, storage, video_bytes(3 * PART))

    assert list(storage.list_unfinished("")) == []  # the large file was cancelled at once
    assert only_row(engine).status == "failed"
    assert repair(engine, storage).before.ok
    assert_consistent(engine, storage)


def test_storage_down_for_every_attempt_fails_with_a_retryable_error(engine, storage, sim, sleeps, place):
    sim.set_upload_errors([ServiceError("503 service_unavailable")] * 5)

    with pytest.raises(StorageUnavailable, match=re.escape(UNAVAILABLE)) as caught:
        ingest(place, storage, video_bytes(1000))

    assert caught.value.retryable and sleeps == [0.5, 1.0, 2.0, 4.0]
    assert only_row(engine).status == "failed"
    assert_consistent(engine, storage)


# An auth token that expires ------------------------------------------------------------------


def test_the_account_token_expiring_mid_upload_is_renewed_by_b2sdk(engine, storage, b2, sim, sleeps, place,
                                                                  monkeypatch):
    """b2sdk authorizes again by itself (the account info keeps the application key)."""
    real_upload_part = sim.upload_part
    first_token = b2.api.account_info.get_account_auth_token()

    def upload_part(*args, **kwargs):
        result = real_upload_part(*args, **kwargs)
        if result["partNumber"] == 1:
            sim.expire_auth_token(first_token)
        return result

    monkeypatch.setattr(sim, "upload_part", upload_part)
    data = video_bytes(3 * PART + 77)

    video = ingest(place, storage, data)

    assert video.status == "processing" and video.sha1 == sha1(data)
    assert b2.api.account_info.get_account_auth_token() != first_token
    assert sleeps == []  # b2sdk's re-authorization, not our retry
    assert_consistent(engine, storage, {video.id: data})


def test_an_upload_token_refused_as_expired_is_renewed(engine, storage, sim, sleeps, place):
    sim.set_upload_errors([InvalidAuthToken("auth token expired", "expired_auth_token")])
    data = video_bytes(2000)

    video = ingest(place, storage, data)

    assert video.status == "processing" and video.sha1 == sha1(data)
    assert_consistent(engine, storage, {video.id: data})


def test_an_expired_token_that_cannot_be_renewed_fails_cleanly(engine, storage, b2, sim, place, monkeypatch):
    """The key was revoked: the upload fails with a reason, and once the key works
    again the checker cancels the large file that could not be cancelled then."""
    real_upload_part, real_authorize = sim.upload_part, sim.authorize_account

    def upload_part(*args, **kwargs):
        result = real_upload_part(*args, **kwargs)
        sim.expire_auth_token(b2.api.account_info.get_account_auth_token())
        monkeypatch.setattr(sim, "authorize_account", revoked)
        return result

    def revoked(*_args, **_kwargs):
        raise InvalidAuthToken("application key ID not valid", "unauthorized")

    monkeypatch.setattr(sim, "upload_part", upload_part)
    with pytest.raises(StorageUnavailable, match=re.escape(CREDENTIALS_REJECTED)):
        ingest(place, storage, video_bytes(3 * PART))

    row = only_row(engine)
    assert row.status == "failed" and CREDENTIALS_REJECTED in row.error
    monkeypatch.setattr(sim, "authorize_account", real_authorize)  # the key works again
    result = repair(engine, storage)
    assert "unknown_upload" in kinds(result.before)
    assert_consistent(engine, storage)


# Damaged parts -------------------------------------------------------------------------------


def send(session_factory, storage, place, upload, data, number, *, damaged: bool = False):
    chunk = part_of(data, upload, number)
    sent = bytes([chunk[0] ^ 0xFF]) + chunk[1:] if damaged else chunk
    return upload_sessions.store_part(
        session_factory=session_factory, storage=storage, user=place.user, upload_id=upload.id, number=number,
        size=len(sent), chunks=iter([sent]), client_sha1=sha1(chunk),
    )


def ledger(engine, upload_id) -> list[int]:
    with Session(engine) as s:
        return sorted(p.number for p in s.exec(select(UploadPart).where(UploadPart.session_id == upload_id)))


@pytest.mark.parametrize("backend", ["local", "b2"])
def test_a_part_damaged_on_the_way_in_is_refused_not_recorded_and_sent_again(
        engine, backend, request, place, session_factory, tmp_path):
    from course_app.storage.local import LocalStorage

    storage = LocalStorage(tmp_path / "storage") if backend == "local" else request.getfixturevalue("b2_storage")
    data = video_bytes(2 * PART + 3)
    view, _ = resumable_start(session_factory, storage, place, data, part_size=PART)
    send(session_factory, storage, place, view.session, data, 1)

    with pytest.raises(ChecksumMismatch) as refused:
        send(session_factory, storage, place, view.session, data, 2, damaged=True)

    assert refused.value.retryable
    assert ledger(engine, view.session.id) == [1]
    for number in (2, 3):
        send(session_factory, storage, place, view.session, data, number)
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                     upload_id=view.session.id)
    assert video.status == "processing"
    assert_consistent(engine, storage, {video.id: data})


def test_a_part_damaged_on_the_way_to_b2_is_refused_by_b2_and_not_recorded(
        engine, storage, sim, place, session_factory, monkeypatch):
    data = video_bytes(2 * PART + 3)
    view, _ = resumable_start(session_factory, storage, place, data, part_size=PART)
    real_upload_part = sim.upload_part

    def flip_a_byte(url, token, number, length, part_sha1, stream, *rest):
        damaged = bytearray(stream.read())
        damaged[10] ^= 0x01
        return real_upload_part(url, token, number, length, part_sha1, io.BytesIO(bytes(damaged)), *rest)

    monkeypatch.setattr(sim, "upload_part", flip_a_byte)
    with pytest.raises(StorageError):
        send(session_factory, storage, place, view.session, data, 1)
    monkeypatch.undo()

    assert ledger(engine, view.session.id) == []
    assert storage.list_parts(view.session.storage_key, view.session.storage_upload_id) == []
    for number in (1, 2, 3):
        send(session_factory, storage, place, view.session, data, number)
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                     upload_id=view.session.id)
    assert video.status == "processing"
    assert_consistent(engine, storage, {video.id: data})


def test_a_part_b2_reports_back_differently_is_not_recorded(engine, storage, sim, place, session_factory,
                                                            monkeypatch):
    data = video_bytes(2 * PART + 3)
    view, _ = resumable_start(session_factory, storage, place, data, part_size=PART)
    real_upload_part = sim.upload_part

    def wrong_answer(*args, **kwargs):
        answer = dict(real_upload_part(*args, **kwargs))
        answer["contentSha1"] = hashlib.sha1(b"something else").hexdigest()
        return answer

    monkeypatch.setattr(sim, "upload_part", wrong_answer)
    with pytest.raises(StorageError, match="damaged"):
        send(session_factory, storage, place, view.session, data, 1)
    monkeypatch.undo()

    assert ledger(engine, view.session.id) == []
    for number in (1, 2, 3):
        send(session_factory, storage, place, view.session, data, number)
    video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                     upload_id=view.session.id)
    assert video.status == "processing"
    assert_consistent(engine, storage, {video.id: data})
