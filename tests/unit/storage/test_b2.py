"""B2Storage only: large files from put_stream, retries and the faults only B2 has
(course_app/storage/b2.py and b2_parts.py)."""

from __future__ import annotations

import tracemalloc

import pytest
from b2sdk.v3.exception import AccessDenied, B2ConnectionError, ServiceError, StorageCapExceeded

from course_app.storage import StorageError
from course_app.storage.b2 import B2Storage
from tests.unit.storage.support import (
    BUCKET,
    KEY,
    KIB,
    MIB,
    PART,
    UNAVAILABLE,
    chunked,
    everything_stored,
    put,
    random_bytes,
    read,
    sha1,
)


def test_b2_multipart_upload_sends_parts_of_part_size_with_their_sha1(b2_storage, b2, monkeypatch):
    parts: list[tuple[int, int, str]] = []
    real = b2.sim.upload_part

    def upload_part(url, token, number, length, part_sha1, stream, *rest):
        parts.append((number, length, part_sha1))
        return real(url, token, number, length, part_sha1, stream, *rest)

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    data = random_bytes(3 * PART + 17)
    stored = b2_storage.put_stream(KEY, chunked(data, 100_000), content_type="video/mp4")

    slices = [data[i : i + PART] for i in range(0, len(data), PART)]
    assert parts == [(n, len(part), sha1(part)) for n, part in enumerate(slices, start=1)]
    assert b2_storage.stat(KEY, stored.file_id).size == len(data)
    assert list(b2.bucket.list_unfinished_large_files()) == []


def test_b2_keeps_about_one_part_in_memory(b2, monkeypatch):
    """Between two part uploads our side allocates only the next part's chunks: the
    part is sent from the chunks themselves, not copied into one buffer first."""
    part_size = 4 * MIB
    storage = B2Storage(b2.api, BUCKET, part_size=part_size)
    grown: list[int] = []
    after_last_part: list[int] = []
    real = b2.sim.upload_part

    def upload_part(*args):
        if after_last_part:
            grown.append(tracemalloc.get_traced_memory()[1] - after_last_part[-1])
        response = real(*args)
        tracemalloc.reset_peak()
        after_last_part.append(tracemalloc.get_traced_memory()[0])
        return response

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    tracemalloc.start()
    try:
        stored = storage.put_stream(
            KEY, (bytes([n % 251]) * (64 * KIB) for n in range(6 * 64)), content_type="video/mp4"
        )
    finally:
        tracemalloc.stop()

    assert stored.size == 6 * part_size and len(grown) == 5
    assert max(grown) < part_size // 2, [f"{g / MIB:.1f} MiB" for g in grown]


def test_b2_transient_part_failure_is_retried_on_a_fresh_upload_url(b2_storage, b2, sleeps, monkeypatch):
    urls: list[str] = []
    real = b2.sim.upload_part

    def upload_part(url, *args):
        urls.append(url)
        if len(urls) in (2, 3):  # part 2 fails twice
            raise B2ConnectionError("connection reset")
        return real(url, *args)

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    data = random_bytes(3 * PART)
    stored = b2_storage.put_stream(KEY, chunked(data), content_type="video/mp4")

    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert read(b2_storage, stored) == data
    assert len(urls) == 5 and urls[1] != urls[2] != urls[3]
    assert sleeps == [0.5, 1.0]


def test_b2_transient_single_upload_failure_is_retried(b2_storage, b2, sleeps):
    b2.sim.set_upload_errors([ServiceError("503 service_unavailable")])
    stored = put(b2_storage, KEY, b"small video")

    assert stored.sha1 == sha1(b"small video")
    assert b2_storage.stat(KEY, stored.file_id).sha1 == sha1(b"small video")
    assert b2.sim.upload_errors == [] and sleeps == [0.5]


@pytest.mark.parametrize("size", [100, 3 * PART])  # one upload_file call / a large file
def test_b2_unavailable_storage_surfaces_as_retryable_error_and_leaves_nothing(b2_storage, b2, sleeps, monkeypatch, size):
    def always_down(*args, **kwargs):
        raise ServiceError("503 service_unavailable")

    monkeypatch.setattr(b2.sim, "upload_file", always_down)
    monkeypatch.setattr(b2.sim, "upload_part", always_down)

    with pytest.raises(StorageError) as raised:
        put(b2_storage, KEY, random_bytes(size))

    assert raised.value.retryable is True
    assert str(raised.value) == UNAVAILABLE
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert everything_stored(b2_storage) == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (StorageCapExceeded(), "Storage is full (the B2 account cap was reached); an administrator needs to raise it."),
        (AccessDenied(), "Storage refused the app's credentials; an administrator needs to check the B2 settings."),
    ],
)
def test_b2_permanent_failure_is_not_retried(b2_storage, b2, sleeps, monkeypatch, error, message):
    calls: list[int] = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise error

    monkeypatch.setattr(b2.sim, "upload_part", refuse)
    with pytest.raises(StorageError) as raised:
        put(b2_storage, KEY, random_bytes(3 * PART))

    assert (raised.value.retryable, str(raised.value)) == (False, message)
    assert raised.value.__cause__ is error  # kept for the logs, not shown
    assert calls == [1] and sleeps == []
    assert everything_stored(b2_storage) == []


def test_b2_finish_whose_answer_was_lost_is_not_repeated(b2_storage, b2, monkeypatch):
    """b2sdk's HTTP layer would repeat the call, and B2 answers a second finish with
    400 (the simulator accepts it): the upload must check the file instead."""
    calls: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(api_url, token, file_id, part_sha1s):
        calls.append(file_id)
        if len(calls) > 1:
            raise AssertionError("finish_large_file repeated")
        real(api_url, token, file_id, part_sha1s)
        raise B2ConnectionError("connection reset after the file was finished")

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(2 * PART + 1)
    stored = put(b2_storage, KEY, data)

    assert calls == [stored.file_id]
    assert (stored.size, stored.sha1) == (len(data), sha1(data))
    assert read(b2_storage, stored) == data


def test_b2_finish_that_failed_before_finishing_is_retried(b2_storage, b2, sleeps, monkeypatch):
    calls: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(*args):
        calls.append(args[2])
        if len(calls) == 1:
            raise ServiceError("500 internal_error")
        return real(*args)

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    stored = put(b2_storage, KEY, random_bytes(2 * PART + 1))

    assert len(calls) == 2 and sleeps == [0.5]
    assert b2_storage.stat(KEY, stored.file_id) is not None


def test_b2_upload_that_storage_reports_differently_is_removed(b2_storage, b2, monkeypatch):
    real = b2.sim.upload_file

    def upload_file(*args, **kwargs):
        response = real(*args, **kwargs)
        return {**response, "contentLength": response["contentLength"] - 1}

    monkeypatch.setattr(b2.sim, "upload_file", upload_file)
    with pytest.raises(StorageError) as raised:
        put(b2_storage, KEY, b"some bytes")

    assert raised.value.retryable is True
    assert everything_stored(b2_storage) == []


def test_b2_part_size_must_reach_the_account_minimum(b2):
    minimum = b2.api.account_info.get_absolute_minimum_part_size()
    with pytest.raises(ValueError):
        B2Storage(b2.api, BUCKET, part_size=minimum - 1)
    assert B2Storage(b2.api, BUCKET).part_size == b2.api.account_info.get_recommended_part_size()


def test_b2_missing_bucket_is_a_clear_error(b2):
    with pytest.raises(StorageError) as raised:
        B2Storage(b2.api, "no-such-bucket")
    assert (raised.value.retryable, str(raised.value)) == (
        False,
        "The storage bucket does not exist; an administrator needs to check the B2 settings.",
    )
