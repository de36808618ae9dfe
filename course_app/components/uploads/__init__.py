"""The editor's uploads, as local React components (the .js/.jsx files beside this one):

- ``uploads_panel``: the course's one list of uploads (progress, pause/resume/cancel,
  failures, the server's unfinished uploads with Resume) and a course-wide drop zone
  that asks which chapter the files go to;
- ``outline_dnd``: wraps the course outline and handles, by event delegation, files
  dropped onto a chapter, a chapter's own file input, and videos or chapters dragged
  to a new place (rows carry data attributes only, no handlers).

The upload manager (manager.js, its store in store.js) lives at module level in the browser: uploads keep
running while a chapter is collapsed or the app shows another page. The Reflex State
hears only about results, each as one positional dict argument (validate it in the
handler like any other event argument):
- ``on_uploaded``: the new video as ``complete`` returns it, plus ``chapter_id``;
- ``on_failed``: ``{"filename", "error", "code", "chapter_id"}`` once a file finally failed;
- ``on_changed``: ``{"chapter_id"}`` after a session was created, cancelled or discarded;
- ``on_move_videos``: ``{"video_ids", "chapter_id", "before_id"}`` (``before_id`` null: at the end);
- ``on_move_chapter``: ``{"chapter_id", "target_id"}`` (the dragged chapter takes the target's place);
- ``on_retried``: ``{"retried", "missing"}`` after "Retry failed uploads" on the selection
  (``missing``: ids of selected failed rows whose files this tab does not hold).
"""

from __future__ import annotations

import reflex as rx
from reflex_base.event import passthrough_event_spec

# rx.asset(shared=True) links each file into the compiling app's
# assets/external/course_app/components/uploads/, so the modules import each other as
# siblings. importable_path is the module path without the "?v=<hash>" query.
_MODULES = {name: rx.asset(name, shared=True) for name in
            ("format.js", "hash.js", "http.js", "store.js", "manager.js", "styles.js", "UploadsPanel.jsx",
              "OutlineDnd.jsx")}


class UploadsPanel(rx.Component):
    """The course's uploads: one list, whichever chapter each file goes to."""

    library = _MODULES["UploadsPanel.jsx"].importable_path
    tag = "UploadsPanel"

    course_id: rx.Var[str]
    max_bytes: rx.Var[int]
    # [{id, title}] in order: the course-wide drop zone asks which one.
    chapters: rx.Var[list[dict]]
    # The ledger's unfinished uploads of the course: {id, chapter_id, filename, size,
    # confirmed_bytes, fingerprint}.
    pending: rx.Var[list[dict]]

    on_uploaded: rx.EventHandler[passthrough_event_spec(dict)]
    on_failed: rx.EventHandler[passthrough_event_spec(dict)]
    on_changed: rx.EventHandler[passthrough_event_spec(dict)]


class OutlineDnd(rx.Component):
    """Drag and drop (videos, chapters, files) for everything inside it."""

    library = _MODULES["OutlineDnd.jsx"].importable_path
    tag = "OutlineDnd"

    course_id: rx.Var[str]
    max_bytes: rx.Var[int]

    on_move_videos: rx.EventHandler[passthrough_event_spec(dict)]
    on_move_chapter: rx.EventHandler[passthrough_event_spec(dict)]
    on_retried: rx.EventHandler[passthrough_event_spec(dict)]


uploads_panel = UploadsPanel.create
outline_dnd = OutlineDnd.create
