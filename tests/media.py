"""Real little videos for tests, made with PyAV (ffmpeg inside the wheel)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_video(path: Path, *, seconds: float = 1.0, fps: int = 10, size: tuple[int, int] = (64, 48),
               codec: str = "libx264", seed: int = 0) -> Path:
    """Write a short video whose content depends on ``seed`` (so files differ)."""
    container_format = {"libx264": "mp4", "libvpx": "webm", "mpeg4": "mp4"}[codec]
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        rng = np.random.default_rng(seed)
        for index in range(int(seconds * fps)):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
