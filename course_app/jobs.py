"""The job queue (Huey): SQLite in the data folder by default, so nothing else needs
to run; Redis when ``COURSE_QUEUE_URL`` names one (several app and worker machines).

Huey, because it is small and well kept, has a SQLite storage for the embedded
default and a Redis one for production behind one API, delays and a consumer with
thread or process workers. It only carries "process video X": what a video needs
and who holds it live in the database (services/processing.py), so a lost or
repeated message does no harm.
"""

from __future__ import annotations

from datetime import timedelta

from huey import RedisHuey, SqliteHuey

from course_app.settings import Settings, get_settings


def make_queue(settings: Settings):
    if settings.queue_url:
        return RedisHuey("course-studio", url=settings.queue_url, results=False)
    path = settings.resolved_queue_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("course-studio", filename=str(path), results=False)


huey = make_queue(get_settings())


def processing_options(settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    return {
        "lease": timedelta(seconds=settings.processing_lease_seconds),
        "max_attempts": settings.processing_max_attempts,
        "queue_wait": timedelta(seconds=settings.processing_queue_wait_seconds),
    }


@huey.task()
def process_video(video_id: str) -> str:
    from course_app.db import session_scope
    from course_app.services import processing
    from course_app.storage import get_storage

    return processing.run_job(video_id, session_factory=session_scope, storage=get_storage(), **processing_options())
