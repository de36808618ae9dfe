"""LocalStorage only: temp files, disk failures, sidecars (course_app/storage/local.py
and local_disk.py)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from course_app.storage import StorageError
from course_app.storage.local import LocalStorage
from tests.unit.storage.support import KEY, everything_stored, sha1


def test_local_writes_through_a_temp_file_and_lists_only_finished_objects(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    folder = storage.root / "videos" / "7"
    seen_mid_upload: list[list[str]] = []

    def source() -> Iterator[bytes]:
        yield b"first "
        seen_mid_upload.append(sorted(path.name for path in folder.iterdir()))
        seen_mid_upload.append([obj.key for obj in storage.list("")])
        yield b"second"

    stored = storage.put_stream(KEY, source(), content_type="video/mp4")

    [files_mid_upload, listed_mid_upload] = seen_mid_upload
    [temp_name] = files_mid_upload
    assert temp_name.startswith(KEY.rsplit("/", 1)[1] + ".part-")
    assert listed_mid_upload == []
    assert stored.file_id == KEY
    assert sorted(path.name for path in folder.iterdir()) == [Path(KEY).name, Path(KEY).name + ".meta.json"]


@pytest.mark.parametrize(("failing_call", "message"), [(1, "full"), (2, "save")])
def test_local_disk_failure_is_a_storage_error_and_leaves_nothing(tmp_path, monkeypatch, failing_call, message):
    """The sidecar is renamed into place first; if the data rename then fails, the
    sidecar goes too."""
    storage = LocalStorage(tmp_path / "storage")
    calls: list[str] = []
    real_replace = os.replace

    def replace(source, target):
        calls.append(target)
        if len(calls) == failing_call:
            raise OSError(errno.ENOSPC if message == "full" else errno.EIO, "injected")
        return real_replace(source, target)

    monkeypatch.setattr("course_app.storage.local.os.replace", replace)
    with pytest.raises(StorageError) as raised:
        storage.put_stream(KEY, [b"abc"], content_type="video/mp4")

    assert message in str(raised.value) and raised.value.retryable is (message != "full")
    assert everything_stored(storage) == []


def test_local_ignores_a_sidecar_that_does_not_match_its_file(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    stored = storage.put_stream(KEY, [b"original"], content_type="video/mp4")
    path = storage.root / KEY
    replacement = path.with_name("replacement")
    replacement.write_bytes(b"replaced")  # same size, another file: the sidecar is stale
    os.replace(replacement, path)

    stat = storage.stat(KEY, stored.file_id)
    assert (stat.sha1, stat.content_type) == (sha1(b"replaced"), "application/octet-stream")
    [listed] = storage.list("")
    assert listed.sha1 == sha1(b"replaced")
