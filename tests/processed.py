"""For tests about something else than processing: a stored video as the worker
leaves it once every stage passed, without running the stages."""

from __future__ import annotations

import uuid

from course_app.services import processing


def as_if_processed(session, video_id: uuid.UUID) -> None:
    """The worker's last step (the row becomes ``ready``), in ``session``."""
    assert processing.transition(session, video_id, status="ready", stage=None, lease_owner=None,
                                 lease_expires_at=None) is not None
