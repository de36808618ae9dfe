"""The video upload zone: a local React component (uploader.jsx, beside this file)
that sends files through the resumable upload API (/api/uploads: a session, then
parts in parallel, then complete) and keeps their progress in the browser.

The upload manager lives at module level in uploader.jsx, not in the component:
uploads keep running while the single-page app shows other pages, and a remounted
uploader shows them again. Leaving or reloading the page asks for confirmation
while anything is uploading; after a reload the ``pending`` uploads (the server's
ledger) are listed with a Resume button that asks for the same file again.

The Reflex State hears only about results, each as one positional dict argument
(validate it in the handler like any other event argument):
- ``on_uploaded``: the new video as ``complete`` returns it (``id``, ``title``, ``status``...);
- ``on_failed``: ``{"filename", "error", "code"}`` once a file has finally failed
  (``code`` is the API's machine code: ``not_a_video``, ``too_large``,
  ``quota_exceeded``, ``network``, ``storage_error``, ``session_expired``...);
- ``on_changed``: ``{}`` after a session was created, cancelled or discarded, so
  the page can reload the ledger (``pending``) and the video list.

    video_uploader(
        course_id=EditorState.course_id,
        chapter_id=chapter.id,
        max_bytes=MAX_UPLOAD_BYTES,
        label="Upload videos to Chapter 1: Setup",
        pending=VideosState.pending_by_chapter.get(chapter.id, []).to(list[dict]),
        on_uploaded=VideosState.refresh,
        on_failed=VideosState.refresh,
        on_changed=VideosState.refresh,
    )
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
    """Drop zone and upload list for video files, sent through /api/uploads in parts."""

    library = _UPLOADER_JSX.importable_path
    tag = "VideoUploader"

    # Reflex camelCases the props: courseId, chapterId, maxBytes, label, pending.
    course_id: rx.Var[str]
    chapter_id: rx.Var[str]
    max_bytes: rx.Var[int]
    # The accessible name of the file input and the heading shown in the zone.
    label: rx.Var[str]
    # Unfinished uploads of this chapter from the ledger: dicts (or dataclasses,
    # sent as objects) with id, filename, size, confirmed_bytes, fingerprint.
    pending: rx.Var[list[dict]]

    on_uploaded: rx.EventHandler[passthrough_event_spec(dict)]
    on_failed: rx.EventHandler[passthrough_event_spec(dict)]
    on_changed: rx.EventHandler[passthrough_event_spec(dict)]


video_uploader = VideoUploader.create
