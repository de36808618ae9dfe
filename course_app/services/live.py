"""Live sync: which courses changed, for the editors open in this process.

Every change an open editor should show advances its course's ``pulse`` in the
change's own transaction (``ordering.lock_course``, or ``course_changed`` below for a status change), whoever
made it: another tab, another device, the JSON API, a worker, another app
process or machine. The database is the one place they all write, so it is also
where this looks: one ``CourseWatch`` per process polls the pulses of the courses
its editors have open, in one query per interval however many tabs wait, and
wakes the editors of a course whose pulse moved. Nothing is kept that could
disagree with the database: the editor reloads what changed from it.

Several app processes need nothing more (each watches its own tabs' courses); a
message bus would only trade the poll's small, constant cost for a second moving
part that must be kept in step with the database.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from course_app.models import Course

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
GONE = -1  # the pulse of a course that no longer exists


def read_pulses(engine: Engine, course_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The current pulse of each course (``GONE`` for a deleted one), one query."""
    with engine.connect() as conn:
        found = dict(conn.execute(select(Course.id, Course.pulse).where(Course.id.in_(course_ids))).all())  # type: ignore[attr-defined]
    return {course_id: found.get(course_id, GONE) for course_id in course_ids}


class CourseWatch:
    """Waits for courses' pulses to move; one poller per process and event loop."""

    def __init__(self, engine: Callable[[], Engine], interval: float = POLL_SECONDS) -> None:
        self._engine = engine
        self._interval = interval
        self._pulses: dict[uuid.UUID, int] = {}
        self._interest: Counter[uuid.UUID] = Counter()
        self._changed: asyncio.Condition | None = None
        self._poller: asyncio.Task | None = None
        self.polls = 0  # for tests and the benchmark: queries made so far

    async def wait(self, course_id: uuid.UUID, seen: int, timeout: float) -> int | None:
        """The course's pulse once it differs from ``seen`` (``GONE`` when the
        course was deleted), or None after ``timeout`` seconds without a change."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        self._interest[course_id] += 1
        self._start()
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._pulses.get(course_id, seen) != seen), timeout
                )
                return self._pulses[course_id]
        except TimeoutError:
            return None
        finally:
            self._interest[course_id] -= 1
            if self._interest[course_id] <= 0:
                del self._interest[course_id]
                self._pulses.pop(course_id, None)

    def _start(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="course-watch")

    async def _poll(self) -> None:
        while self._interest:
            watched = list(self._interest)
            try:
                pulses = await asyncio.to_thread(read_pulses, self._engine(), watched)
                self.polls += 1
            except Exception:  # the database is down: editors keep what they show
                log.warning("Live sync could not read course changes; trying again", exc_info=True)
                pulses = {}
            changed = {c: p for c, p in pulses.items() if c in self._interest and self._pulses.get(c) != p}
            if changed and self._changed is not None:
                async with self._changed:
                    self._pulses.update(changed)
                    self._changed.notify_all()
            await asyncio.sleep(self._interval)


_watch: CourseWatch | None = None


def course_watch() -> CourseWatch:
    """This process's watcher, over the app's database."""
    global _watch
    if _watch is None:
        from course_app.db import get_engine

        _watch = CourseWatch(get_engine)
    return _watch


def course_changed(session, course_id: uuid.UUID) -> None:
    """Tell the course's open editors to reload (a status change nobody edited, such
    as processing progress): advances its pulse in the caller's transaction."""
    from course_app.services.ordering import lock_course

    lock_course(session, course_id, edit=False)
