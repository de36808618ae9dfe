"""Crashes at every step of an upload or a deletion, then `check-videos --repair`.

A crash is simulated in-process: the step raises ``Crash`` (a BaseException, so
no ``except Exception`` cleans up politely) and the process counts as dead from
then on: every later SQL statement or commit, and every storage call, raises
``Crash`` too, as if the process were gone (``finally`` blocks and
``except BaseException`` clean-ups that would touch the database or storage get
nowhere, as after a kill). ``process.restart()`` brings it back; the test then
runs the checker's repair with the real storage and asserts that the database and
storage agree (``assert_consistent``).
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

import course_app.db
from course_app.cli import format_repair, format_report
from course_app.db import session_scope
from course_app.models import StorageDeletion, UploadSession, User, Video
from course_app.services import courses, reconcile, upload_sessions, uploads
from course_app.storage import local_disk
from course_app.storage.b2 import B2Storage
from course_app.storage.keys import TEMP_MARKER
from course_app.storage.local import LocalStorage
from tests.stored import files_under
from tests.unit.conftest import b2, b2_storage, session_factory, sleeps  # noqa: F401  (fixtures)
from tests.unit.storage.support import PART

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(100)
MIB = 1024 * 1024
GIB = 1024**3
NO_GRACE = timedelta(0)


class Crash(BaseException):
    """The process died here."""


class Process:
    """Whether the simulated process is alive; ``crash()`` kills it."""

    def __init__(self) -> None:
        self.dead = False
        self.crashes: list[str] = []

    def crash(self, where: str) -> None:
        self.dead = True
        self.crashes.append(where)
        raise Crash(where)

    def check(self) -> None:
        if self.dead:
            raise Crash("the process is gone")

    def restart(self) -> None:
        self.dead = False


@pytest.fixture
def process(engine) -> Iterator[Process]:
    proc = Process()

    def refuse(*_args, **_kwargs) -> None:
        proc.check()

    event.listen(engine, "before_cursor_execute", refuse)
    event.listen(engine, "commit", refuse)
    yield proc
    proc.restart()
    event.remove(engine, "before_cursor_execute", refuse)
    event.remove(engine, "commit", refuse)


class DyingStorage:
    """The storage as the crashing process sees it: every call fails once it is dead."""

    def __init__(self, storage, process: Process) -> None:
        self._storage, self._process = storage, process

    def __getattr__(self, name: str):
        value = getattr(self._storage, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            self._process.check()
            return value(*args, **kwargs)

        return call


# B2 simulator calls that a dead process can no longer make (b2sdk's own clean-ups,
# such as cancelling a large file after a failed part, go straight to the simulator).
SIMULATOR_CALLS = (
    "upload_file", "upload_part", "start_large_file", "finish_large_file", "cancel_large_file",
    "delete_file_version", "list_file_names", "get_file_info_by_id", "get_file_info_by_name",
    "list_parts", "list_unfinished_large_files", "get_upload_url", "get_upload_part_url",
)


@pytest.fixture(params=["local", "b2"])
def storage(request, tmp_path, process, monkeypatch):
    """The real storage (the repair uses it); ``dying(storage)`` is what the crashing
    process sees. On B2 the parts are PART bytes, so a 3-part file is under 1 MB."""
    if request.param == "local":
        # A dead process removes none of its temp files.
        real_remove = local_disk.remove_quietly
        monkeypatch.setattr(local_disk, "remove_quietly", lambda path: None if process.dead else real_remove(path))
        return LocalStorage(tmp_path / "storage")
    b2_store = request.getfixturevalue("b2_storage")
    sim = b2_store.api.session.raw_api
    # The simulator stamps uploads 5000, 5001... ms after 1970; the checker's grace
    # period needs the real time.
    for bucket in sim.bucket_name_to_bucket.values():
        bucket.upload_timestamp_counter = iter(lambda: int(time.time() * 1000), None)
    for name in SIMULATOR_CALLS:
        original = getattr(sim, name)

        def guarded(*args, _original=original, **kwargs):
            process.check()
            return _original(*args, **kwargs)

        monkeypatch.setattr(sim, name, guarded)
    return b2_store


@pytest.fixture
def dying(process):
    return lambda storage: DyingStorage(storage, process)


@pytest.fixture(autouse=True)
def app_database(engine, monkeypatch):
    """The services' own sessions (``session_scope()``) use the test database."""
    monkeypatch.setattr(course_app.db, "get_engine", lambda: engine)
    monkeypatch.setattr(uploads, "FINISH_RETRY_DELAYS", (0.01, 0.01, 0.01))
    return engine


@dataclass
class Place:
    user: object
    course_id: uuid.UUID
    chapter_id: uuid.UUID


@pytest.fixture
def place(session) -> Place:
    """An instructor's course and chapter. The account skips the password hash (slow
    on purpose, and no test here logs in)."""
    user = User(email=f"{uuid.uuid4().hex[:10]}@example.com", password_hash="-")
    session.add(user)
    session.commit()
    course = courses.create_course(session=session, user=user, title="Course")
    chapter = courses.add_chapter(session=session, user=user, course_id=course.id, title="Intro")
    session.commit()
    return Place(user, course.id, chapter.id)


def video_bytes(size: int, seed: int = 1) -> bytes:
    """``size`` bytes that start like an MP4 (enough for the type sniffing)."""
    body = random.Random(seed).randbytes(max(0, size - len(MP4_HEAD)))
    return (MP4_HEAD + body)[:size]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


async def _chunks(data: bytes, size: int = 64 * 1024):
    for offset in range(0, len(data), size):
        yield data[offset:offset + size]


def ingest(place: Place, storage, data: bytes, *, filename: str = "lesson.mp4"):
    """A single-request upload through services/uploads.ingest (as the API route does)."""
    import asyncio

    return asyncio.run(uploads.ingest(
        user=place.user, storage=storage, course_id=place.course_id, chapter_id=place.chapter_id,
        filename=filename, title=None, chunks=_chunks(data), max_bytes=GIB, declared_size=len(data),
    ))


def resumable_start(session_factory, storage, place: Place, data: bytes, *, part_size: int):
    return upload_sessions.create(
        session_factory=session_factory, storage=storage, user=place.user, course_id=place.course_id,
        chapter_id=place.chapter_id, filename="lesson.mp4", size=len(data), fingerprint="v1:" + sha1(data),
        head=data[:8192], max_bytes=GIB, quota_bytes=50 * GIB, configured_part_size=part_size,
    )


def part_of(data: bytes, upload: UploadSession, number: int) -> bytes:
    return data[(number - 1) * upload.chunk_size: number * upload.chunk_size]


def send_part(session_factory, storage, place: Place, upload: UploadSession, data: bytes, number: int):
    chunk = part_of(data, upload, number)
    return upload_sessions.store_part(
        session_factory=session_factory, storage=storage, user=place.user, upload_id=upload.id, number=number,
        size=len(chunk), chunks=iter([chunk[: len(chunk) // 2], chunk[len(chunk) // 2:]]), client_sha1=sha1(chunk),
    )


def part_size_for(storage) -> int:
    return PART if isinstance(storage, B2Storage) else 64 * 1024


@pytest.fixture
def finished(place, storage, session_factory) -> Callable[[], dict[uuid.UUID, bytes]]:
    """Videos the instructor finished before the trouble (one single-request, one
    resumable upload): they must come through every crash and repair untouched."""

    def _make() -> dict[uuid.UUID, bytes]:
        kept = {}
        data = video_bytes(3 * part_size_for(storage) + 99, seed=101)
        video = ingest(place, storage, data, filename="finished.mp4")
        kept[video.id] = data
        data = video_bytes(2 * part_size_for(storage) + 7, seed=102)
        view, _ = resumable_start(session_factory, storage, place, data, part_size=part_size_for(storage))
        for number in range(1, view.session.part_count + 1):
            send_part(session_factory, storage, place, view.session, data, number)
        video = upload_sessions.complete(session_factory=session_factory, storage=storage, user=place.user,
                                         upload_id=view.session.id)
        kept[video.id] = data
        return kept

    return _make


# What "consistent" means -----------------------------------------------------------


def b2_traces(storage: B2Storage) -> tuple[list[str], list[str]]:
    versions = [v.file_name for v, _ in storage.bucket.ls("", latest_only=False, recursive=True)
                if v.action != "start"]  # unfinished large files are listed below
    unfinished = [f.file_id for f in storage.bucket.list_unfinished_large_files()]
    return versions, unfinished


def assert_consistent(engine, storage, kept: dict[uuid.UUID, bytes] | None = None, *,
                      allow_open_uploads: bool = False) -> None:
    """Database and storage agree:
    - every row is ``ready`` with its file (size and SHA1 as recorded) or ``failed``
      with a reason; ``uploading`` only for an open resumable upload (when allowed)
      whose storage upload exists;
    - storage holds exactly the ready rows' files: no orphan, no temp file, no lone
      sidecar, no unfinished upload but those of open sessions;
    - the outbox is empty;
    - the videos in ``kept`` are ready with their exact bytes;
    - and the checker agrees (nothing to report, not even in-flight work it would skip)."""
    with Session(engine) as s:
        rows = list(s.exec(select(Video)))
        pending = list(s.exec(select(StorageDeletion)))
        open_uploads = list(s.exec(select(UploadSession).where(
            UploadSession.status.in_(upload_sessions.OPEN_STATUSES))))
    assert pending == [], f"deletions still pending: {[(p.storage_key, p.reason) for p in pending]}"
    open_videos = {u.video_id: u for u in open_uploads}
    if not allow_open_uploads:
        assert open_uploads == [], "an upload session is still open"
    for video in rows:
        if video.status == "uploading":
            upload = open_videos.get(video.id)
            assert allow_open_uploads and upload is not None and upload.status == "active" \
                and upload.storage_upload_id, f"video {video.id} is stuck in uploading"
        else:
            assert video.status in ("processing", "ready", "failed"), video.status
        if video.status == "failed":
            assert video.error and video.error.strip(), "a failed video must say why"
    # Stored and handed to processing (nothing processes them here): the upload's job is done.
    ready = {v.storage_key: v for v in rows if v.status in ("processing", "ready")}
    objects = {o.key: o for o in storage.list("")}
    assert set(objects) == set(ready), (
        f"orphans: {sorted(set(objects) - set(ready))}; missing: {sorted(set(ready) - set(objects))}")
    for key, video in ready.items():
        data = b"".join(storage.open_range(key, video.backblaze_file_id or key))
        assert len(data) == video.size_bytes == objects[key].size
        if video.sha1:
            assert sha1(data) == video.sha1
    open_ids = {u.storage_upload_id for u in open_uploads}
    if isinstance(storage, LocalStorage):
        expected = set()
        for key in ready:
            expected |= {key, key + ".meta.json"}
        traces = files_under(storage.root)
        extra = {t for t in traces - expected if not (t.startswith(".multipart/") and t.split("/")[1] in open_ids)}
        assert extra == set(), f"files left in storage: {sorted(extra)}"
        assert expected <= traces
    else:
        versions, unfinished = b2_traces(storage)
        assert sorted(versions) == sorted(ready), f"file versions in B2: {versions}"
        assert set(unfinished) <= open_ids, "an unfinished large file no open session knows"
    for video_id, data in (kept or {}).items():
        video = next((v for v in rows if v.id == video_id), None)
        assert video is not None and video.status in ("processing", "ready"), "a finished video was lost"
        assert video.sha1 in (sha1(data), None) and video.size_bytes == len(data)
        assert b"".join(storage.open_range(video.storage_key, video.backblaze_file_id)) == data
    with Session(engine) as s:
        report = reconcile.check_videos(session=s, storage=storage, grace=NO_GRACE)
    assert report.ok, format_report(report)


def only_row(engine) -> Video:
    """The one video row there is."""
    with Session(engine) as s:
        (row,) = s.exec(select(Video))
        return row


def repair(engine, storage) -> reconcile.RepairReport:
    """`course-app check-videos --repair --grace-minutes 0`, in-process."""
    result = reconcile.repair(session_factory=partial(session_scope, engine), storage=storage, grace=NO_GRACE)
    assert result.ok, format_repair(result)
    return result


def kinds(report: reconcile.Report) -> list[str]:
    return sorted(p.kind for p in report.problems)


def write_half_then_crash(storage: LocalStorage, process: Process, key: str, chunks: Iterable[bytes]) -> None:
    """What a kill mid-write leaves on local disk: the temp file, half written."""
    path = os.path.join(storage.root, *key.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}{TEMP_MARKER}{secrets.token_hex(8)}", "xb") as out:
        for chunk in chunks:
            out.write(chunk)
            break
    process.crash("mid-bytes")


@contextmanager
def crash_expected(process: Process):
    with pytest.raises(Crash):
        yield
    assert process.dead
    process.restart()
