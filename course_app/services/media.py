"""The processing stages, with PyAV (ffmpeg inside the ``av`` wheel): verify, probe
and thumbnail a stored video. They read the video and write objects under keys
fixed by it; the database is processing.py's.

Work streams from storage: a local file is opened by path, a remote one (B2) is
read in ranges of ``RangeReader.BLOCK`` bytes with a few blocks cached, so memory
stays bounded whatever the file's size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

from sqlmodel import Session

from course_app.models import ProcessingStage, Video
from course_app.services.outbox import DERIVED_MARKER, enqueue_storage_deletion
from course_app.services.processing import StageFailed
from course_app.storage.base import Storage
from course_app.storage.readers import SizedReader

READ_CHUNK = 1024 * 1024
THUMBNAIL_WIDTHS = {"small": 320, "large": 1280}
THUMBNAIL_AT = 0.10  # of the duration
MAX_FRAMES_TO_TARGET = 600  # frames decoded from the keyframe before the target, at most
NOT_DECODABLE = "We could not find a playable video picture in this file. Upload the video again, exported as MP4 (H.264) or WebM."


@dataclasses.dataclass(frozen=True)
class Subject:
    """What the stages know of the video (read once when the job claims it)."""

    id: uuid.UUID
    course_id: uuid.UUID
    storage_key: str
    file_id: str
    size_bytes: int | None
    sha1: str | None
    stage: str | None
    attempts: int
    duration_seconds: float | None

    @classmethod
    def of(cls, video) -> Subject:  # a Video or a VideoReplacement
        return cls(video.id, video.course_id, video.storage_key, video.backblaze_file_id or "", video.size_bytes,
                   video.sha1, video.stage, video.attempts, video.duration_seconds)


def run_stage(stage: str, subject: Subject, storage: Storage) -> dict:
    """Run one stage; returns the columns it found."""
    return {ProcessingStage.VERIFYING: verify, ProcessingStage.PROBING: probe,
            ProcessingStage.THUMBNAIL: thumbnail}[stage](subject, storage)


# Verify ------------------------------------------------------------------------------------


def verify(subject: Subject, storage: Storage) -> dict:
    """Size and SHA1 of the stored file against the row: the local file is read back
    and hashed; a remote one's are what storage recorded (B2 file info)."""
    stored = storage.stat(subject.storage_key, subject.file_id)
    if stored is None:
        raise StageFailed("missing_file", "The stored file is missing. Upload the video again.", retryable=False)
    path = storage.local_path(subject.storage_key)
    size, sha1 = (_hash_file(path) if path else (stored.size, stored.sha1 or None))
    if subject.size_bytes is not None and size != subject.size_bytes:
        raise StageFailed("size_mismatch", f"Storage holds {size} bytes but {subject.size_bytes} were uploaded. "
                          "Upload the video again.", retryable=False)
    if subject.sha1 and sha1 and sha1 != subject.sha1:
        raise StageFailed("sha1_mismatch", "The stored file differs from the one uploaded (SHA1). "
                          "Upload the video again.", retryable=False)
    return {"size_bytes": size, "sha1": subject.sha1 or sha1, "fingerprint": edge_fingerprint(storage, subject, size)}


EDGE_BYTES = 1024 * 1024


def edge_fingerprint(storage: Storage, subject: Subject, size: int) -> str:
    """The uploader's fingerprint of the stored file (components/uploads/hash.js):
    ``v1:<size>:<SHA1 of the first MiB followed by the last MiB>`` (they overlap in
    files under 2 MiB). The duplicate warning matches it (services/duplicates.py)."""
    digest = hashlib.sha1()
    for start in (0, max(0, size - EDGE_BYTES)):
        end = min(size, start + EDGE_BYTES) - 1
        if end >= start:
            for chunk in storage.open_range(subject.storage_key, subject.file_id, start, end):
                digest.update(chunk)
    return f"v1:{size}:{digest.hexdigest()}"


def _hash_file(path: str) -> tuple[int, str]:
    digest, size = hashlib.sha1(), 0
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


# Reading -----------------------------------------------------------------------------------


class RangeReader(SizedReader):
    """A seekable file over ``storage.open_range``: BLOCK-sized reads, CACHED blocks kept."""

    BLOCK = 1024 * 1024
    CACHED = 4

    def __init__(self, storage: Storage, key: str, file_id: str, size: int) -> None:
        super().__init__(size)
        self._storage, self._key, self._file_id = storage, key, file_id
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            start = index * self.BLOCK
            end = min(start + self.BLOCK, self._size) - 1
            block = b"".join(self._storage.open_range(self._key, self._file_id, start, end))
            self._blocks[index] = block
            if len(self._blocks) > self.CACHED:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(index)
        return block

    def readinto(self, buffer) -> int:
        if self._position >= self._size:
            return 0
        index, offset = divmod(self._position, self.BLOCK)
        block = self._block(index)
        count = min(len(buffer), len(block) - offset)
        buffer[:count] = block[offset:offset + count]
        self._position += count
        return count


@contextmanager
def _container(subject: Subject, storage: Storage) -> Iterator:
    import av

    path = storage.local_path(subject.storage_key)
    source = path or RangeReader(storage, subject.storage_key, subject.file_id, subject.size_bytes or 0)
    try:
        container = av.open(source, mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise StageFailed("missing_file", "The stored file is missing. Upload the video again.",
                              retryable=False) from exc
        raise StageFailed("not_decodable", NOT_DECODABLE, retryable=False) from exc
    try:
        yield container
    finally:
        container.close()


def _video_stream(container):
    stream = next(iter(container.streams.video), None)
    if stream is None:
        raise StageFailed("not_decodable", "This file has sound but no video picture. Upload a video file.",
                          retryable=False)
    stream.thread_type = "AUTO"
    return stream


# Probe -------------------------------------------------------------------------------------


def probe(subject: Subject, storage: Storage) -> dict:
    """Duration, picture size, codecs and bit rate; the first picture must decode."""
    import av

    with _container(subject, storage) as container:
        stream = _video_stream(container)
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError) as exc:
            raise StageFailed("not_decodable", NOT_DECODABLE, retryable=False) from exc
        if first is None:
            raise StageFailed("not_decodable", NOT_DECODABLE, retryable=False)
        duration = None
        if container.duration:
            duration = container.duration / av.time_base
        elif stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        audio = next(iter(container.streams.audio), None)
        return {
            "duration_seconds": round(duration, 3) if duration else None,
            "width": first.width or stream.codec_context.width,
            "height": first.height or stream.codec_context.height,
            "video_codec": stream.codec_context.name,
            "audio_codec": audio.codec_context.name if audio is not None else None,
            "bitrate": container.bit_rate or None,
        }


# Thumbnail ---------------------------------------------------------------------------------


def thumbnail_keys(subject: Subject) -> dict[str, str]:
    """Where a video's thumbnails live: beside it, named by its content (immutable)."""
    tag = (subject.sha1 or subject.id.hex)[:12]
    return {size: f"{subject.storage_key}{DERIVED_MARKER}{tag}-{size}.jpg" for size in THUMBNAIL_WIDTHS}


def thumbnail(subject: Subject, storage: Storage) -> dict:
    """A JPEG of the frame about 10 % in, small and large, stored beside the video."""
    frame = _frame_at(subject, storage)
    keys = thumbnail_keys(subject)
    for size, width in THUMBNAIL_WIDTHS.items():
        storage.put_stream(keys[size], [_jpeg(frame, width)], content_type="image/jpeg")
    return {"thumbnail_small_key": keys["small"], "thumbnail_large_key": keys["large"]}


def _frame_at(subject: Subject, storage: Storage):
    import av

    with _container(subject, storage) as container:
        stream = _video_stream(container)
        target = (subject.duration_seconds or 0) * THUMBNAIL_AT
        picked = None
        try:
            if target > 0 and stream.time_base:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            for count, frame in enumerate(container.decode(stream)):
                picked = frame
                if frame.time is None or frame.time >= target or count >= MAX_FRAMES_TO_TARGET:
                    break
        except (av.FFmpegError, ValueError) as exc:
            if picked is None:
                raise StageFailed("not_decodable", NOT_DECODABLE, retryable=False) from exc
        if picked is None:
            raise StageFailed("not_decodable", NOT_DECODABLE, retryable=False)
        return picked


def _jpeg(frame, width: int) -> bytes:
    import av

    width = min(width, frame.width) // 2 * 2 or 2
    height = max(2, round(frame.height * width / frame.width) // 2 * 2)
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qmin": "2", "qmax": "6"}
    picture.pts = 0
    return b"".join(bytes(packet) for packet in [*encoder.encode(picture), *encoder.encode(None)])


def forget_objects(*, session: Session, subject: Subject, found: dict, model: type = Video) -> list[int]:
    """A stage wrote objects but could not record them: if the video (or replacement:
    ``model``) is gone, they go through the outbox (if it is still there, the worker
    holding it writes the same keys). Returns the outbox ids."""
    if session.get(model, subject.id) is not None:
        return []
    return [enqueue_storage_deletion(session=session, storage_key=key, file_id=None,
                                     reason="video deleted during processing").id
            for key in (found.get("thumbnail_small_key"), found.get("thumbnail_large_key")) if key]
