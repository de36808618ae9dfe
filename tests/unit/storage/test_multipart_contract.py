"""Multipart (resumable) uploads, one contract on both backends. Parts are PART
bytes (256 KiB): above the simulator's 200-byte minimum part size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from b2sdk.v3.exception import BadRequest

from course_app.storage import ObjectNotFound, StorageError, UploadAborted
from course_app.storage.base import MultipartStorage, PartInfo
from tests.unit.storage.support import (
    HOSTILE_KEYS,
    KEY,
    MIB,
    MULTIPART_DATA_SIZE,
    PART,
    chunked,
    everything_stored,
    infos,
    random_bytes,
    read,
    reopened,
    send,
    sha1,
    slices,
    unknown_upload_id,
)


def test_both_backends_offer_multipart_uploads(storage, b2):
    assert isinstance(storage, MultipartStorage) and storage.max_parts == 10_000
    if storage.name == "local":
        assert (storage.min_part_size, storage.recommended_part_size()) == (1, 64 * MIB)
    else:
        assert storage.min_part_size == b2.api.account_info.get_absolute_minimum_part_size() == 200
        assert storage.recommended_part_size() == PART  # the part_size override


def test_multipart_life_cycle_with_parts_sent_out_of_order(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/webm", sha1=sha1(data), part_size=PART)

    sent = {number: send(storage, upload_id, number, pieces[number - 1]) for number in (3, 1, 2)}
    assert [sent[number] for number in (1, 2, 3)] == infos(data)
    assert storage.list_parts(KEY, upload_id) == infos(data)
    assert list(storage.list("")) == [] and storage.stat(KEY, "") is None  # parts are not objects
    [unfinished] = storage.list_unfinished("videos/")
    assert (unfinished.key, unfinished.upload_id) == (KEY, upload_id) and unfinished.started_at is not None

    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/webm")

    assert (stored.key, stored.size, stored.sha1, stored.content_type) == (KEY, len(data), sha1(data), "video/webm")
    assert read(storage, stored) == data
    assert read(storage, stored, PART - 10, PART + 9) == data[PART - 10 : PART + 10]  # across a part boundary
    stat = storage.stat(KEY, stored.file_id)
    assert (stat.size, stat.sha1, stat.content_type) == (len(data), sha1(data), "video/webm")
    assert [(obj.key, obj.file_id, obj.size) for obj in storage.list("videos/")] == [(KEY, stored.file_id, len(data))]
    assert list(storage.list_unfinished("")) == []
    assert everything_stored(storage) == ([KEY, KEY + ".meta.json"] if storage.name == "local" else [KEY])

    storage.abort_multipart(KEY, upload_id)  # too late to abort: the object stays
    assert read(storage, stored) == data


def test_multipart_sha1_is_computed_locally_and_unknown_on_b2_when_not_declared(storage):
    data = random_bytes(PART + 7)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    parts = [send(storage, upload_id, number, piece) for number, piece in enumerate(slices(data), start=1)]

    stored = storage.complete_multipart(KEY, upload_id, parts, content_type="video/mp4")

    # B2 checks every part's SHA1 but cannot tell the whole file's (see storage/b2.py).
    assert stored.sha1 == (sha1(data) if storage.name == "local" else "")
    assert stored.size == len(data) and read(storage, stored) == data


def test_resending_a_part_replaces_it(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    first = send(storage, upload_id, 1, pieces[0])
    assert send(storage, upload_id, 1, pieces[0]) == first  # the same bytes again: the same part

    wrong = random_bytes(len(pieces[1]), seed=99)
    send(storage, upload_id, 2, wrong)
    assert storage.list_parts(KEY, upload_id) == [first, PartInfo(2, len(wrong), sha1(wrong))]
    send(storage, upload_id, 2, pieces[1])  # the right bytes replace the wrong ones
    send(storage, upload_id, 3, pieces[2])
    assert storage.list_parts(KEY, upload_id) == infos(data)

    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert read(storage, stored) == data


def test_list_parts_lets_an_upload_resume_after_a_restart(storage, sleeps):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    assert storage.list_parts(KEY, upload_id) == []
    send(storage, upload_id, 1, pieces[0])
    send(storage, upload_id, 3, pieces[2])

    restarted = reopened(storage, sleeps)
    held = restarted.list_parts(KEY, upload_id)
    assert held == [infos(data)[0], infos(data)[2]]
    missing = sorted({1, 2, 3} - {part.number for part in held})
    for number in missing:
        send(restarted, upload_id, number, pieces[number - 1])

    stored = restarted.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert (stored.size, read(restarted, stored)) == (len(data), data)


def test_complete_with_a_missing_or_different_part_fails_and_the_upload_stays_resumable(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    send(storage, upload_id, 1, pieces[0])
    send(storage, upload_id, 3, pieces[2])

    with pytest.raises(StorageError) as missing:
        storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert "Part 2" in str(missing.value) and missing.value.retryable is False

    send(storage, upload_id, 2, pieces[1])
    wrong_sha1 = [PartInfo(1, len(pieces[0]), sha1(b"other bytes")), *infos(data)[1:]]
    with pytest.raises(StorageError) as different:
        storage.complete_multipart(KEY, upload_id, wrong_sha1, content_type="video/mp4")
    assert "Part 1" in str(different.value) and different.value.retryable is False

    with pytest.raises(StorageError) as extra:  # storage holds part 3, the list ends at 2
        storage.complete_multipart(KEY, upload_id, infos(data)[:2], content_type="video/mp4")
    assert "3" in str(extra.value) and extra.value.retryable is False

    assert list(storage.list("")) == [] and storage.stat(KEY, "") is None
    assert [upload.upload_id for upload in storage.list_unfinished("")] == [upload_id]
    assert storage.list_parts(KEY, upload_id) == infos(data)
    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert read(storage, stored) == data


def test_complete_refuses_malformed_part_lists_before_touching_storage(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(storage, upload_id, number, piece)
    one, two, three = infos(data)
    malformed = [
        [],
        [one, three],  # a gap
        [one, two, two, three],  # a duplicate
        [PartInfo(0, 1, one.sha1), one],
        [one, two, PartInfo(3, three.size, "not-a-sha1")],
        [one, two, PartInfo(3, 0, three.sha1)],
        [(1, one.size, one.sha1)],
    ]
    if storage.min_part_size > 1:  # every part but the last reaches the minimum
        small = random_bytes(storage.min_part_size - 1)
        malformed.append([PartInfo(1, len(small), sha1(small)), two])
    for parts in malformed:
        with pytest.raises(ValueError):
            storage.complete_multipart(KEY, upload_id, parts, content_type="video/mp4")
    assert storage.list_parts(KEY, upload_id) == infos(data)
    stored = storage.complete_multipart(KEY, upload_id, [three, one, two], content_type="video/mp4")  # any order
    assert read(storage, stored) == data


def test_complete_called_again_returns_the_same_object(storage, b2, monkeypatch):
    finishes: list[str] = []
    real = b2.sim.finish_large_file

    def finish_large_file(api_url, token, file_id, part_sha1s):
        finishes.append(file_id)
        if len(finishes) > 1:  # what real B2 answers to a second finish
            raise BadRequest("file is not in progress", "bad_request")
        return real(api_url, token, file_id, part_sha1s)

    monkeypatch.setattr(b2.sim, "finish_large_file", finish_large_file)
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    for number, piece in enumerate(slices(data), start=1):
        send(storage, upload_id, number, piece)

    first = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    again = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")

    assert again == first
    assert read(storage, again) == data
    assert [obj.key for obj in storage.list("")] == [KEY]
    with pytest.raises(StorageError) as other_parts:  # not what was completed
        storage.complete_multipart(KEY, upload_id, infos(data)[:2], content_type="video/mp4")
    assert other_parts.value.retryable is False
    if storage.name == "b2":
        assert finishes[0] == upload_id


def test_abort_leaves_nothing_and_may_be_repeated(storage):
    data = random_bytes(MULTIPART_DATA_SIZE)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1(data), part_size=PART)
    for number, piece in enumerate(slices(data)[:2], start=1):
        send(storage, upload_id, number, piece)

    storage.abort_multipart(KEY, upload_id)

    assert list(storage.list_unfinished("")) == []
    assert list(storage.list("")) == []
    assert everything_stored(storage) == []
    with pytest.raises(ObjectNotFound):
        storage.list_parts(KEY, upload_id)
    with pytest.raises(ObjectNotFound):
        send(storage, upload_id, 3, slices(data)[2])
    with pytest.raises(ObjectNotFound):
        storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    storage.abort_multipart(KEY, upload_id)
    storage.abort_multipart(KEY, unknown_upload_id(storage))
    assert everything_stored(storage) == []


def test_list_unfinished_shows_started_uploads_by_prefix(storage):
    keys = ["videos/1/a", "videos/1/b", "videos/12/c", "other/d"]
    ids = {key: storage.start_multipart(key, content_type="video/mp4", part_size=PART) for key in keys}

    def unfinished(prefix: str) -> list[tuple[str, str]]:
        return sorted((upload.key, upload.upload_id) for upload in storage.list_unfinished(prefix))

    assert unfinished("videos/1/") == [("videos/1/a", ids["videos/1/a"]), ("videos/1/b", ids["videos/1/b"])]
    assert [key for key, _ in unfinished("videos/1")] == ["videos/1/a", "videos/1/b", "videos/12/c"]
    assert [key for key, _ in unfinished("")] == sorted(keys)
    assert unfinished("videos/2/") == []
    assert all(upload.started_at is not None for upload in storage.list_unfinished(""))

    storage.abort_multipart("videos/1/a", ids["videos/1/a"])
    part = random_bytes(300)
    storage.complete_multipart(
        "other/d", ids["other/d"], [send(storage, ids["other/d"], 1, part, key="other/d")], content_type="video/mp4"
    )
    assert [key for key, _ in unfinished("")] == ["videos/1/b", "videos/12/c"]
    assert list(storage.list("videos/")) == []  # unfinished uploads are not objects
    for prefix in ["../", "videos//", ".multipart/"]:
        with pytest.raises(ValueError):
            storage.list_unfinished(prefix)


@pytest.mark.parametrize("error", [UploadAborted("client went away"), RuntimeError("boom")])
def test_a_part_stream_that_raises_leaves_that_part_unrecorded(storage, error):
    data = random_bytes(MULTIPART_DATA_SIZE)
    pieces = slices(data)
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    first = send(storage, upload_id, 1, pieces[0])

    def failing(part: bytes) -> Iterator[bytes]:
        yield part[: len(part) // 2]
        raise error

    for number in (2, 1):  # a new part, and a re-sent one
        with pytest.raises(type(error)) as raised:
            storage.put_part(KEY, upload_id, number, failing(pieces[number - 1]), size=len(pieces[number - 1]))
        assert raised.value is error
    # B2 keeps the earlier copy of a part sent again; local disk writes parts in place,
    # so that copy is gone (never half of it: the part is simply not there).
    assert storage.list_parts(KEY, upload_id) == ([] if storage.name == "local" else [first])
    if storage.name == "local":  # no temp file left behind
        left = sorted(Path(path).name for path in everything_stored(storage))
        assert left == ["1.lock", "2.lock", "data", "meta.json"]
    for number, piece in enumerate(pieces, start=1):
        send(storage, upload_id, number, piece)
    stored = storage.complete_multipart(KEY, upload_id, infos(data), content_type="video/mp4")
    assert read(storage, stored) == data and stored.sha1 in (sha1(data), "")


def test_a_part_of_the_wrong_size_is_refused(storage):
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    part = random_bytes(PART - 1)
    with pytest.raises(UploadAborted):  # fewer bytes than announced
        storage.put_part(KEY, upload_id, 1, chunked(part), size=len(part) + 1)

    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(1)
            yield b"x" * 1000

    with pytest.raises(UploadAborted):  # more: reading stops at once
        storage.put_part(KEY, upload_id, 1, endless(), size=2500)
    assert len(pulled) == 3
    assert storage.list_parts(KEY, upload_id) == []

    for number, size in [(0, 10), (10_001, 10), (True, 10), ("1", 10), (1, 0), (1, -1), (1, 1.5), (1, None)]:
        with pytest.raises(ValueError):
            storage.put_part(KEY, upload_id, number, [b"x" * 10], size=size)
    assert storage.list_parts(KEY, upload_id) == []


HOSTILE_UPLOAD_IDS = ["", "../x", "a/b", "..", "x y", "x\x00", None, 5, "x" * 201]


@pytest.mark.parametrize("upload_id", HOSTILE_UPLOAD_IDS)
def test_hostile_upload_ids_are_refused(storage, tmp_path, upload_id):
    before = sorted(tmp_path.rglob("*"))
    consumed: list[int] = []

    def source() -> Iterator[bytes]:
        consumed.append(1)
        yield b"x"

    calls = [
        lambda: storage.put_part(KEY, upload_id, 1, source(), size=1),
        lambda: storage.list_parts(KEY, upload_id),
        lambda: storage.complete_multipart(KEY, upload_id, [PartInfo(1, 1, sha1(b"x"))], content_type="video/mp4"),
        lambda: storage.abort_multipart(KEY, upload_id),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert consumed == [] and sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_by_multipart_calls(storage, key):
    with pytest.raises(ValueError):
        storage.start_multipart(key, content_type="video/mp4", part_size=PART)
    upload_id = unknown_upload_id(storage)
    with pytest.raises(ValueError):
        storage.put_part(key, upload_id, 1, [b"x"], size=1)
    for call in (storage.list_parts, storage.abort_multipart):
        with pytest.raises(ValueError):
            call(key, upload_id)
    with pytest.raises(ValueError):
        storage.complete_multipart(key, upload_id, [PartInfo(1, 1, sha1(b"x"))], content_type="video/mp4")
    assert everything_stored(storage) == []


def test_an_upload_id_serves_only_its_own_key(storage):
    upload_id = storage.start_multipart(KEY, content_type="video/mp4", part_size=PART)
    part = send(storage, upload_id, 1, random_bytes(300))
    other = "videos/7/another"
    with pytest.raises(ValueError):
        storage.complete_multipart(other, upload_id, [part], content_type="video/mp4")
    with pytest.raises(ValueError):
        storage.abort_multipart(other, upload_id)
    assert storage.list_parts(KEY, upload_id) == [part]
    assert storage.stat(other, "") is None


def test_start_refuses_a_malformed_sha1_or_content_type(storage):
    for sha1_value in ["abc", "g" * 40, 5]:
        with pytest.raises(ValueError):
            storage.start_multipart(KEY, content_type="video/mp4", sha1=sha1_value, part_size=PART)
    with pytest.raises(ValueError):
        storage.start_multipart(KEY, content_type="", part_size=PART)
    assert list(storage.list_unfinished("")) == [] and everything_stored(storage) == []
