"""course_app/services/media.py: the stages on real files made with PyAV, read
from local disk and from B2 (the simulator, through ranged reads)."""

from __future__ import annotations

import dataclasses
import hashlib
import tracemalloc
import uuid

import av
import pytest

from course_app.services import media
from course_app.services.processing import StageFailed
from tests.media import make_audio_only, make_video, mp4_header_then_garbage, truncated


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("media")
    return {
        "mp4": make_video(folder / "a.mp4", seconds=2, fps=10, size=(160, 120), audio=True, seed=1).read_bytes(),
        "webm": make_video(folder / "b.webm", seconds=2, codec="libvpx", audio=True, seed=2).read_bytes(),
        "mov": make_video(folder / "c.mov", seconds=2, container_format="mov", seed=3).read_bytes(),
        "audio_only": make_audio_only(folder / "d.mp4").read_bytes(),
        "no_frames": make_video(folder / "e.webm", codec="libvpx", frames=0, audio=True).read_bytes(),
    }


def stored(storage, data: bytes, *, sha1: str | None = "auto") -> media.Subject:
    key = f"videos/7/{uuid.uuid4()}"
    obj = storage.put_stream(key, [data], content_type="video/mp4")
    return media.Subject(id=uuid.uuid4(), course_id=uuid.uuid4(), storage_key=key, file_id=obj.file_id,
                         size_bytes=len(data), sha1=hashlib.sha1(data).hexdigest() if sha1 == "auto" else sha1,
                         stage="verifying", attempts=1, duration_seconds=None)


def failure(fn, *args) -> str:
    with pytest.raises(StageFailed) as caught:
        fn(*args)
    assert caught.value.failure.message.strip()
    return caught.value.failure.code


def test_verify_accepts_the_stored_file_and_refuses_another_size_or_sha1(storage, files):
    subject = stored(storage, files["mp4"])
    data = files["mp4"]
    edges = hashlib.sha1(data[:1024 * 1024] + data[max(0, len(data) - 1024 * 1024):]).hexdigest()
    assert media.verify(subject, storage) == {"size_bytes": len(data), "sha1": subject.sha1,
                                              "fingerprint": f"v1:{len(data)}:{edges}"}  # as the uploader makes it

    assert failure(media.verify, dataclasses.replace(subject, size_bytes=subject.size_bytes + 1), storage) == "size_mismatch"
    assert failure(media.verify, dataclasses.replace(subject, sha1="0" * 40), storage) == "sha1_mismatch"
    storage.delete(subject.storage_key, subject.file_id)
    assert failure(media.verify, subject, storage) == "missing_file"


def test_verify_reads_the_local_file_back(local_storage, files):
    """Local disk: the bytes themselves are hashed, not the sidecar written at upload."""
    subject = stored(local_storage, files["mp4"])
    path = local_storage.local_path(subject.storage_key)
    with open(path, "r+b") as handle:  # same size, one byte flipped on disk
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert failure(media.verify, subject, local_storage) == "sha1_mismatch"


@pytest.mark.parametrize(("name", "codec", "audio", "size"), [
    ("mp4", "h264", "aac", (160, 120)), ("webm", "vp8", "opus", (64, 48)), ("mov", "h264", None, (64, 48)),
])
def test_probe_reads_duration_size_codecs_and_bitrate(storage, files, name, codec, audio, size):
    found = media.probe(stored(storage, files[name]), storage)
    assert found["duration_seconds"] == pytest.approx(2.0, abs=0.15)
    assert (found["width"], found["height"]) == size
    assert (found["video_codec"], found["audio_codec"]) == (codec, audio)
    assert found["bitrate"] > 0


@pytest.mark.parametrize("name", ["truncated", "garbage", "audio_only", "no_frames", "empty_picture"])
def test_a_file_without_a_decodable_picture_fails_as_not_decodable(storage, files, name):
    data = {
        "truncated": lambda: truncated(files["mp4"], 0.5),
        "garbage": lambda: mp4_header_then_garbage(),
        "audio_only": lambda: files["audio_only"],
        "no_frames": lambda: files["no_frames"],
        "empty_picture": lambda: files["mp4"][:64],
    }[name]()
    assert failure(media.probe, stored(storage, data), storage) == "not_decodable"


def test_the_thumbnails_are_jpegs_of_two_sizes_beside_the_video(storage, tmp_path):
    data = make_video(tmp_path / "big.mp4", seconds=0.3, fps=10, size=(1920, 1080)).read_bytes()
    subject = stored(storage, data)
    subject = dataclasses.replace(subject, **{k: v for k, v in media.probe(subject, storage).items()
                                               if k == "duration_seconds"})

    found = media.thumbnail(subject, storage)

    assert found == {"thumbnail_small_key": media.thumbnail_keys(subject)["small"],
                     "thumbnail_large_key": media.thumbnail_keys(subject)["large"]}
    for key, width in ((found["thumbnail_small_key"], 320), (found["thumbnail_large_key"], 1280)):
        assert key.startswith(subject.storage_key + ".thumb-" + subject.sha1[:12])
        jpeg = b"".join(storage.open_range(key, storage.stat(key, "").file_id))
        assert jpeg[:3] == b"\xff\xd8\xff"
        path = tmp_path / "thumb.jpg"
        path.write_bytes(jpeg)
        with av.open(str(path)) as image:
            frame = next(image.decode(video=0))
            assert (frame.width, frame.height) == (width, width * 1080 // 1920)


def test_the_thumbnail_comes_from_about_ten_percent_in(local_storage, tmp_path):
    """Frames are black, then white from 10 % on: the thumbnail is white, not the first frame."""
    path = tmp_path / "dark.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        import numpy as np

        for index in range(100):
            value = 255 if index >= 10 else 0
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), value, dtype=np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    subject = dataclasses.replace(stored(local_storage, path.read_bytes()), duration_seconds=10.0)
    key = media.thumbnail(subject, local_storage)["thumbnail_small_key"]
    thumb = tmp_path / "t.jpg"
    thumb.write_bytes(b"".join(local_storage.open_range(key, key)))
    with av.open(str(thumb)) as image:
        assert next(image.decode(video=0)).to_ndarray(format="gray").mean() > 200


def test_ranged_reads_keep_memory_bounded(b2_storage, tmp_path, monkeypatch):
    """A remote file is read in blocks with a few cached: memory does not grow with the file."""
    monkeypatch.setattr(media.RangeReader, "BLOCK", 64 * 1024)
    data = make_video(tmp_path / "long.mp4", seconds=6, fps=10, size=(320, 240)).read_bytes()
    assert len(data) > 16 * media.RangeReader.BLOCK
    subject = stored(b2_storage, data)
    tracemalloc.start()
    try:
        media.probe(subject, b2_storage)
        media.thumbnail(dataclasses.replace(subject, duration_seconds=40.0), b2_storage)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (media.RangeReader.CACHED + 4) * media.RangeReader.BLOCK, (peak, len(data))
