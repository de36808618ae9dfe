"""The video upload zone: a local React component (uploader.jsx, beside this file)
that posts files to /api/upload itself and keeps their progress in the browser.

The Reflex State hears only about results: ``on_uploaded`` gets the new video as the
route returns it (a dict with at least ``id``, ``title``, ``status``) and
``on_failed`` gets ``{"filename", "error", "code"}`` once a file has finally failed
(``code`` is the HTTP status, 0 after network errors, 413 for the browser-side size
check). Both arrive as one positional dict argument; validate them in the handler
like any other event argument.

    video_uploader(
        course_id=EditorState.course_id,
        chapter_id=chapter.id,
        max_bytes=MAX_UPLOAD_BYTES,
        label="Upload videos to Chapter 1: Setup",
        on_uploaded=UploadsState.video_uploaded,
        on_failed=UploadsState.upload_failed,
    )

Place it where it stays mounted while files upload: unmounting it aborts them.
"""

from __future__ import annotations

import reflex as rx
from reflex_base.event import passthrough_event_spec

# rx.asset(shared=True) links uploader.jsx into the compiling app's
# assets/external/course_app/components/uploader/. The asset's plain string value is
# a URL carrying a "?v=<hash>" query (and the frontend_path prefix), which is no
# module path; importable_path is "$/public/external/.../uploader.jsx" without either.
_UPLOADER_JSX = rx.asset("uploader.jsx", shared=True)


class VideoUploader(rx.Component):
    """Drop zone and upload list for video files, posting to POST /api/upload."""

    library = _UPLOADER_JSX.importable_path
    tag = "VideoUploader"

    # Reflex camelCases the props: courseId, chapterId, maxBytes, label.
    course_id: rx.Var[str]
    chapter_id: rx.Var[str]
    max_bytes: rx.Var[int]
    # The accessible name of the file input and the heading shown in the zone.
    label: rx.Var[str]

    on_uploaded: rx.EventHandler[passthrough_event_spec(dict)]
    on_failed: rx.EventHandler[passthrough_event_spec(dict)]


video_uploader = VideoUploader.create
