"""Multipart uploads on B2 only (course_app/storage/b2_multipart.py)."""

from __future__ import annotations


import pytest
from b2sdk.v3.exception import B2ConnectionError, BadRequest, ServiceError

from course_app.storage import StorageError
from course_app.storage.base import PartInfo
from tests.unit.storage.support import (
    KEY,
    MULTIPART_DATA_SIZE,
    PART,
    UNAVAILABLE,
    everything_stored,
    infos,
    random_bytes,
    read,
    send,
    sha1,
    slices,
)


def test_b2_multipart_start_records_the_declared_sha1(b2_storage, b2):
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data))

    [large] = b2.bucket.list_unfinished_large_files()
    assert (large.file_id, large.file_name, large.content_type) == (upload_id, KEY, "video/mp4")
    assert large.file_info == {"large_file_sha1": sha1(data)}
    for number, piece in enumerate(slices(data), start=1):
        send(b2_storage, upload_id, number, piece)
    stored = b2_storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert stored.sha1 == sha1(data) == b2_storage.stat(KEY, stored.file_id).sha1
    assert b2.bucket.get_file_info_by_id(upload_id).file_info["large_file_sha1"] == sha1(data)


def test_b2_finish_that_lost_the_declared_sha1_is_removed(b2_storage, b2, monkeypatch):
    real = b2.sim.finish_large_file

    def finish_large_file(*args):
        response = real(*args)
        return {**response, "fileInfo": {}}  # storage kept the bytes but not the file info

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data))
    for number, piece in enumerate(slices(data), start=1):
        send(b2_storage, upload_id, number, piece)

    with pytest.raises(StorageError) as raised:
        b2_storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert raised.value.retryable is True
    assert everything_stored(b2_storage) == []


def test_b2_multipart_finish_whose_answer_was_lost_counts_as_done(b2_storage, b2, monkeypatch):
    calls: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(api_url, token, file_id, part_sha1s):
        calls.append(file_id)
        if len(calls) > 1:
            raise BadRequest("file is not in progress", "bad_request")
        real(api_url, token, file_id, part_sha1s)
        raise B2ConnectionError("connection reset after the file was finished")

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")
    for number, piece in enumerate(slices(data), start=1):
        send(b2_storage, upload_id, number, piece)

    stored = b2_storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert calls == [upload_id]
    assert (stored.file_id, stored.size) == (upload_id, len(data))
    assert read(b2_storage, stored) == data


def test_b2_part_that_fails_once_is_retried_on_a_fresh_upload_url(b2_storage, b2, sleeps, monkeypatch):
    urls: list[str] = []
    real = b2.sim.upload_part

    def upload_part(url, *args):
        urls.append(url)
        if len(urls) == 1:
            raise B2ConnectionError("connection reset")
        return real(url, *args)

    monkeypatch.setattr(b2.sim, "upload_part", upload_part)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")
    part = random_bytes(PART)

    assert send(b2_storage, upload_id, 1, part) == PartInfo(1, PART, sha1(part))
    assert len(urls) == 2 and urls[0] != urls[1]
    assert sleeps == [0.5]
    assert b2_storage.list_parts(KEY, upload_id) == [PartInfo(1, PART, sha1(part))]


def test_b2_part_upload_that_keeps_failing_is_a_retryable_error(b2_storage, b2, sleeps, monkeypatch):
    def always_down(*args, **kwargs):
        raise ServiceError("503 service_unavailable")

    monkeypatch.setattr(b2.sim, "upload_part", always_down)
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")

    with pytest.raises(StorageError) as raised:
        send(b2_storage, upload_id, 1, random_bytes(PART))

    assert (raised.value.retryable, str(raised.value)) == (True, UNAVAILABLE)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert b2_storage.list_parts(KEY, upload_id) == []  # nothing recorded; the upload can go on
    assert [upload.upload_id for upload in b2_storage.list_unfinished("")] == [upload_id]


def test_b2_multipart_part_size_limits(b2_storage):
    upload_id = b2_storage.start_multipart(KEY, content_type="video/mp4")
    with pytest.raises(ValueError):  # more than B2's largest part: refused before reading
        b2_storage.put_part(KEY, upload_id, 1, iter(()), size=5 * 1000**3 + 1)
