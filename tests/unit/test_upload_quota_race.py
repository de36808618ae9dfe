"""Resumable uploads started at the same moment into one course: the quota counts
each of them (the course write lock is taken before the quota is read), on SQLite
and PostgreSQL."""

from __future__ import annotations

import threading

from course_app.errors import QuotaExceeded
from course_app.services import courses, upload_sessions
from tests.unit.test_upload_sessions import file_bytes

N = 12
SIZE = 100_000


def test_simultaneous_starts_never_exceed_the_quota_together(session, session_factory, local_storage, make_user):
    owner = make_user()
    course = courses.create_course(session=session, user=owner, title="Quota course")
    chapter = courses.add_chapter(session=session, user=owner, course_id=course.id, title="One")
    session.commit()
    allowed = 4
    barrier = threading.Barrier(N)
    outcomes: list[str] = []

    def start(i: int) -> None:
        data = file_bytes(SIZE, seed=i)
        barrier.wait(timeout=60)
        try:
            upload_sessions.create(
                session_factory=session_factory, storage=local_storage, user=owner, course_id=course.id,
                chapter_id=chapter.id, filename=f"f{i}.mp4", size=SIZE, fingerprint=f"v1:{SIZE}:{i:040d}",
                head=data[:8192], max_bytes=10 * SIZE, quota_bytes=allowed * SIZE, configured_part_size=SIZE,
            )
            outcomes.append("started")
        except QuotaExceeded:
            outcomes.append("over quota")

    threads = [threading.Thread(target=start, args=(i,)) for i in range(N)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(outcomes) == ["over quota"] * (N - allowed) + ["started"] * allowed
