"""A processing worker (``course-app worker``, a real process with its own Huey
queue in SQLite) killed with SIGKILL in the middle of a stage: its lease runs out,
the checker reports the video as stuck, and another worker's reaper queues it
again and finishes it. The job's first message is lost on purpose (never sent), so
the reaper's path for a job no worker ever got is taken too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from course_app.db import session_scope
from course_app.models import Video
from course_app.services import courses, processing, users, videos
from course_app.storage.local import LocalStorage
from tests.cli import COURSE_APP, check_videos
from tests.media import make_video
from tests.polling import wait_for
from tests.server import ROOT, wait_processed

# The stage that hangs in the first worker (it keeps its lease alive while it lives).
HANGING_WORKER = (
    "import time, sys\n"
    "from course_app.services import media\n"
    "media.probe = lambda subject, storage: time.sleep(120)\n"
    "from course_app import worker\n"
    "sys.exit(worker.run(workers=1))\n"
)


@pytest.fixture
def worker_home(engine, tmp_path):
    """Workers on the test database (SQLite and PostgreSQL), with their own data folder and queue."""
    data = tmp_path / "data"
    data.mkdir()
    url = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg2://", "postgresql://")
    env = {**os.environ, "COURSE_DATA_DIR": str(data), "COURSE_DATABASE_URL": url, "PYTHONPATH": str(ROOT),
           "COURSE_PROCESSING_LEASE_SECONDS": "1", "COURSE_PROCESSING_QUEUE_WAIT_SECONDS": "1"}
    workers: list[subprocess.Popen] = []

    def start(*command: str) -> subprocess.Popen:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers.append(process)
        return process

    yield engine, LocalStorage(data / "storage"), env, start
    for process in workers:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def video_row(engine, video_id) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(Video.__table__).where(Video.__table__.c.id == video_id)).mappings().one())


def test_a_worker_killed_mid_stage_is_replaced_and_the_video_becomes_ready(worker_home, tmp_path):
    engine, storage, env, start = worker_home
    with session_scope(engine) as session:
        user = users.create_user(session=session, email="worker-kill@example.com", password="correct horse battery")
        course = courses.create_course(session=session, user=user, title="Course")
        chapter = courses.add_chapter(session=session, user=user, course_id=course.id, title="One")
        video = videos.begin_upload(session=session, user=user, course_id=course.id, chapter_id=chapter.id,
                                    filename="lesson.mp4", content_type="video/mp4", declared_size=None,
                                    max_bytes=10**9)
    data = make_video(tmp_path / "lesson.mp4", seconds=2, seed=8).read_bytes()
    stored = storage.put_stream(video.storage_key, [data], content_type="video/mp4")
    processing.set_enqueuer(lambda video_id, delay: None)  # the message is lost
    try:
        with session_scope(engine) as session:
            videos.finish_upload(session=session, video_id=video.id, stored=stored)
            session.get(Video, video.id).lease_expires_at = processing.utcnow()
    finally:
        processing.set_enqueuer(None)

    hanging = start(sys.executable, "-c", HANGING_WORKER)
    wait_for(lambda: video_row(engine, video.id)["stage"] == "probing", "the first worker to reach probing")
    assert video_row(engine, video.id)["lease_owner"]
    os.kill(hanging.pid, signal.SIGKILL)
    hanging.wait(10)

    wait_for(lambda: check_videos(env, "--grace-minutes", "0")["counts"].get("stuck_processing") == 1,
             "the checker to see the lease run out")
    start(str(COURSE_APP), "worker")
    assert wait_processed(engine, [video.id]) == {str(video.id): "ready"}

    row = video_row(engine, video.id)
    assert (row["attempts"], row["lease_owner"], row["width"]) == (2, None, 64)
    assert check_videos(env, "--grace-minutes", "0")["ok"]


def _niceness(pid: int) -> int:
    text = open(f"/proc/{pid}/stat").read()
    return int(text[text.rindex(")") + 2:].split()[16])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_gives_the_app_the_cpu_first(worker_home):
    """Processing runs at a lower CPU priority (COURSE_WORKER_NICE) than the app."""
    _engine, _storage, _env, start = worker_home
    base = os.getpriority(os.PRIO_PROCESS, 0)
    process = start(str(COURSE_APP), "worker")
    wait_for(lambda: _niceness(process.pid) == base + 10, "the worker to lower its priority", timeout=30)
