"""Live sync of an open editor: changes made anywhere else show within a second.

The editor page's load starts ``follow``, a background task for the tab: it waits
on this process's ``CourseWatch`` (services/live.py) for the course's pulse to move
past the one the view was built from, then reloads the editor's States from the
database (``load_editor``). A reload resends only the vars whose value changed,
and the rows' inputs are uncontrolled and keyed by their title, so what the user
is typing in a field survives unless that very title changed elsewhere.

A tab's own edits advance the pulse too; ``persist`` records the pulse its edit
produced when nothing else happened meanwhile, so a tab does not reload for its
own changes. The task ends when the tab loads another page or course, when a
newer ``follow`` replaces it, when the session no longer resolves, or when the
tab has been gone for ``GONE_GRACE`` seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import reflex as rx

from course_app.services.live import GONE, course_watch
from course_app.state.editor_store import OWN_PULSES, load_editor
from course_app.models import User
from course_app.state.session import current_user, requires_user

WAIT_SECONDS = 5.0  # how often the task looks up whether its tab is still there
GONE_GRACE = 30.0  # a tab whose socket reconnects within this keeps its task
ABSENT_POLL_SECONDS = 0.5


def _connected(token: str) -> bool:
    from course_app.course_app import app

    namespace = app.event_namespace
    return namespace is None or token in namespace.token_to_sid


class LiveState(rx.State):
    _follower: str = ""  # the task that currently follows this tab's course

    @rx.event(background=True)
    @requires_user
    async def follow(self, user: User):
        """Keep this tab's editor in step with the database (started by the page's load)."""
        from course_app.state.course import CourseState

        me = uuid.uuid4().hex
        async with self:
            course = await self.get_state(CourseState)
            if not course.loaded or course.load_error:  # only a course this user could open
                return
            course_id, seen = course.course_id, course._pulse
            self._follower = me
        try:
            key = uuid.UUID(course_id)
        except ValueError:
            return
        token = self.router.session.client_token
        try:
            await self._follow(me, token, key, course_id, seen)
        finally:
            async with self:
                if self._follower == me:
                    OWN_PULSES.pop(token, None)

    async def _follow(self, me: str, token: str, key: uuid.UUID, course_id: str, seen: int) -> None:
        from course_app.state.course import CourseState

        missing_since = None
        while True:
            pulse = await course_watch().wait(key, seen, timeout=WAIT_SECONDS)
            if pulse is not None and OWN_PULSES.get(token) == (course_id, pulse):
                seen = pulse  # this tab's own save: its view is already current
                continue
            if not _connected(token):  # no reload for a tab that is not there; it catches up when back
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since > GONE_GRACE:
                    return
                await asyncio.sleep(ABSENT_POLL_SECONDS)
                continue
            missing_since = None
            if pulse is None:
                async with self:
                    if self._follower != me:
                        return
                continue
            user = await current_user(self)
            async with self:
                course = await self.get_state(CourseState)
                if self._follower != me or course.course_id != course_id or user is None:
                    return
                if course._pulse != pulse:  # not already current through this tab's own edit
                    if not await load_editor(self, user) or pulse == GONE:
                        return
                seen = course._pulse
