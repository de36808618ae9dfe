"""Is it a video? The type comes from the file's first bytes (magic bytes), never
from its name or the browser's word: every upload path and the checker ask here."""

from __future__ import annotations

import filetype

from course_app.errors import UnsupportedType

SNIFF_BYTES = 8192  # how much of the head the check reads
NOT_A_VIDEO = "That file is not a video we can use. Upload an MP4, WebM, MOV, MKV or another video file."


def sniff_video_type(head: bytes) -> str:
    """The MIME type from the file's first bytes; refuses anything but video."""
    kind = filetype.guess(head)
    if kind is None or not kind.mime.startswith("video/"):
        raise UnsupportedType(NOT_A_VIDEO)
    return kind.mime
