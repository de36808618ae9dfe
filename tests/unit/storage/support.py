"""What the storage tests share: a B2 simulator that answers like real B2, the
test key and part size, and helpers to send and read bytes."""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Iterator

from b2sdk.v3 import BucketSimulator, RawSimulator
from b2sdk.v3.exception import BadRequest, FileNotPresent

from course_app.storage.b2 import B2Storage
from course_app.storage.base import PartInfo
from course_app.storage.local import LocalStorage
from tests.stored import files_under

KIB, MIB = 1024, 1024 * 1024
PART = 256 * KIB  # B2 part size in these tests (the simulator's minimum is 200 bytes)
MULTIPART_DATA_SIZE = 2 * PART + 1234  # three parts, the last one short
BUCKET = "course-studio-test"
KEY = "videos/7/0b8e3a52-4d1c-4b6f-9a57-1f2e3d4c5b6a"
UNAVAILABLE = "Storage is unavailable right now; try again."
# Keys no backend may touch: both refuse them with ValueError before any storage call.
HOSTILE_KEYS = [
    "../outside",
    "videos/../../outside",
    "videos/7/..",
    "/etc/passwd",
    "videos\\7\\x",
    "videos/7/x\x00y",
    "videos/7/x\ny",
    "",
    "videos//x",
    "videos/7/",
    "./videos/x",
    "videos/7/x.meta.json",
    "videos/7/x.part-123",
    ".multipart/0123456789abcdef0123456789abcdef/meta.json",
    "videos/.multipart/x",
    "v" * 1025,
]


class FaithfulBucketSimulator(BucketSimulator):
    """Real B2 answers "not found" for an unknown file id; the simulator raises KeyError.
    Real B2 also refuses to cancel a finished large file (the simulator deletes it), and
    a look-up by name never finds an unfinished large file (the simulator's does)."""

    def _known(self, file_id):
        if file_id not in self.file_id_to_file:
            raise FileNotPresent(file_id_or_name=file_id)

    def get_file_info_by_id(self, account_auth_token, file_id):
        self._known(file_id)
        return super().get_file_info_by_id(account_auth_token, file_id)

    def get_file_info_by_name(self, account_auth_token, file_name):
        for (name, _), file_sim in sorted(self.file_name_and_id_to_file.items()):
            if name == file_name and file_sim.action != "start":
                return file_sim.as_download_headers(account_auth_token_or_none=account_auth_token)
        raise FileNotPresent(file_id_or_name=file_name, bucket_name=self.bucket_name)

    def cancel_large_file(self, file_id):
        self._known(file_id)
        if self.file_id_to_file[file_id].action != "start":
            raise BadRequest("the large file is not in progress", "bad_request")
        return super().cancel_large_file(file_id)

    def list_parts(self, file_id, start_part_number, max_part_count):
        self._known(file_id)
        return super().list_parts(file_id, start_part_number, max_part_count)

    def finish_large_file(self, account_auth_token, file_id, part_sha1_array):
        self._known(file_id)
        return super().finish_large_file(account_auth_token, file_id, part_sha1_array)

    def upload_part(self, file_id, *args, **kwargs):
        self._known(file_id)
        return super().upload_part(file_id, *args, **kwargs)

    def download_file_by_id(self, account_auth_token_or_none, file_id, url, range_=None, encryption=None):
        if file_id not in self.file_id_to_file:
            raise FileNotPresent(file_id_or_name=file_id)
        return super().download_file_by_id(account_auth_token_or_none, file_id, url, range_, encryption)


class FaithfulRawSimulator(RawSimulator):
    BUCKET_SIMULATOR_CLASS = FaithfulBucketSimulator

    def _known(self, file_id):
        if file_id not in self.file_id_to_bucket_id:
            raise FileNotPresent(file_id_or_name=file_id)

    def get_file_info_by_id(self, api_url, account_auth_token, file_id):
        self._known(file_id)
        return super().get_file_info_by_id(api_url, account_auth_token, file_id)

    def cancel_large_file(self, api_url, account_auth_token, file_id):
        self._known(file_id)
        return super().cancel_large_file(api_url, account_auth_token, file_id)

    def list_parts(self, api_url, account_auth_token, file_id, start_part_number, max_part_count):
        self._known(file_id)
        return super().list_parts(api_url, account_auth_token, file_id, start_part_number, max_part_count)

    def finish_large_file(self, api_url, account_auth_token, file_id, part_sha1_array):
        self._known(file_id)
        return super().finish_large_file(api_url, account_auth_token, file_id, part_sha1_array)

    def get_upload_part_url(self, api_url, account_auth_token, file_id):
        self._known(file_id)
        return super().get_upload_part_url(api_url, account_auth_token, file_id)


def random_bytes(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def put(storage, key: str, data: bytes, content_type: str = "video/mp4"):
    return storage.put_stream(key, chunked(data), content_type=content_type)


def everything_stored(storage) -> list[str]:
    """Every trace of any upload: for local every file under the root (temp files and
    sidecars included); for B2 every file version and every unfinished large file."""
    if isinstance(storage, LocalStorage):
        return sorted(files_under(storage.root))
    versions = [version.file_name for version, _ in storage.bucket.ls("", latest_only=False, recursive=True)]
    unfinished = [f"unfinished:{large.file_name}" for large in storage.bucket.list_unfinished_large_files()]
    return versions + unfinished


def read(storage, obj, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(storage.open_range(obj.key, obj.file_id, start, end))


def slices(data: bytes, part_size: int = PART) -> list[bytes]:
    return [data[offset : offset + part_size] for offset in range(0, len(data), part_size)]


def infos(data: bytes, part_size: int = PART) -> list[PartInfo]:
    return [PartInfo(number, len(part), sha1(part)) for number, part in enumerate(slices(data, part_size), start=1)]


def send(storage, upload_id: str, number: int, part: bytes, key: str = KEY) -> PartInfo:
    return storage.put_part(key, upload_id, number, chunked(part, 50_000), size=len(part))


def reopened(storage, sleeps):
    """A new backend object over the same storage, as after a server restart."""
    if isinstance(storage, LocalStorage):
        return LocalStorage(storage.root)
    return B2Storage(storage.api, BUCKET, part_size=PART, sleep=sleeps.append)


def unknown_upload_id(storage) -> str:
    return secrets.token_hex(16) if storage.name == "local" else "4_zunknown_f0123456789"
