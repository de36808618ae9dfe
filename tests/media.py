"""Real little videos for tests, made with PyAV (ffmpeg inside the wheel), and the
broken ones processing must refuse."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FORMATS = {"libx264": "mp4", "libvpx": "webm", "mpeg4": "mp4"}


def make_video(path: Path, *, seconds: float = 1.0, fps: int = 10, size: tuple[int, int] = (64, 48),
               codec: str = "libx264", seed: int = 0, audio: bool = False, container_format: str | None = None,
               frames: int | None = None) -> Path:
    """Write a short video whose content depends on ``seed`` (so files differ); with
    ``audio``, an AAC (MP4, MOV) or Opus (WebM) track too. ``frames=0`` writes a
    video stream with no picture at all."""
    container_format = container_format or FORMATS[codec]
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        sound = None
        if audio:
            sound = container.add_stream("libopus" if container_format == "webm" else "aac", rate=48000)
        rng = np.random.default_rng(seed)
        count = int(seconds * fps) if frames is None else frames
        for index in range(count):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            _write_tone(container, sound, seconds)
    return path


def _write_tone(container, stream, seconds: float) -> None:
    rate, samples = 48000, 960
    for index in range(int(seconds * rate / samples)):
        t = (np.arange(samples) + index * samples) / rate
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, index * samples
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def make_audio_only(path: Path, *, seconds: float = 1.0) -> Path:
    """An MP4 holding sound and no picture."""
    with av.open(str(path), mode="w", format="mp4") as container:
        _write_tone(container, container.add_stream("aac", rate=48000), seconds)
    return path


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` of a file, as an upload cut short leaves it."""
    return data[:max(1, int(len(data) * keep))]


def mp4_header_then_garbage(size: int = 64 * 1024, seed: int = 0) -> bytes:
    """An MP4 ``ftyp`` box (the type sniff passes) followed by random bytes."""
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    return (head + np.random.default_rng(seed).bytes(size))[:size]
