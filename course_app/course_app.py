"""The Reflex app: pages, the API and start-up tasks; nothing else."""

import asyncio
import logging
import time

import reflex as rx

from course_app import logs
from course_app.api import build_api
from course_app.api.request_log import with_request_log
from course_app.api.socket_guard import with_socket_guard
from course_app import db
from course_app.db import migrate
from course_app.pages.auth import login_page, signup_page
from course_app.pages.dashboard import dashboard_page
from course_app.pages.editor import editor_page
from course_app.pages.preview import preview_page
from course_app.pages.settings import settings_page
from course_app.pages.trash import trash_page
from course_app.secured_app import SecuredApp
from course_app.settings import load_settings_or_exit
from course_app.state.auth_forms import AuthFormState
from course_app.state.dashboard import DashboardState
from course_app.state.course import CourseState
from course_app.state.preview import PreviewState
from course_app.state.session import IdentityGuard, SessionState
from course_app.state.settings_page import TokensState
from course_app.state.trash import TrashState
from course_app.state.socket_limits import SocketEventLimit
from course_app.state.socket_sessions import watch_socket_sessions
from course_app.worker import embedded as embedded_worker

logs.configure(load_settings_or_exit())

SWEEP_INTERVAL_SECONDS = 15 * 60


def _apply_migrations() -> None:
    """Lifespan task: the schema is current before the first request is served."""
    migrate()


async def _upkeep_round(last_sweep: float) -> float:
    """Carry out pending storage deletions (retried until storage confirms) and,
    every SWEEP_INTERVAL, expire abandoned resumable uploads, expired log-in
    sessions and saved answers of idempotent requests, and purge trash older than
    COURSE_TRASH_DAYS. Returns when the last sweep ran."""
    from datetime import timedelta

    from course_app.auth.tokens import purge_expired_sessions
    from course_app.db import run_in_session, session_scope
    from course_app.services.trash import sweep_trash
    from course_app.services.upload_sweep import sweep
    from course_app.services import idempotency, outbox
    from course_app.storage import get_storage

    if time.monotonic() - last_sweep > SWEEP_INTERVAL_SECONDS:
        last_sweep = time.monotonic()
        await asyncio.to_thread(sweep, session_factory=session_scope, storage=get_storage(),
                                stale_after=timedelta(hours=load_settings_or_exit().upload_stale_hours))
        await run_in_session(purge_expired_sessions)
        await run_in_session(idempotency.purge_expired)
        await asyncio.to_thread(sweep_trash, session_factory=session_scope)  # files: the outbox, below
    await outbox.carry_out()
    return last_sweep


async def _keep_renewing(lock, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(lock.keep)


async def _background_upkeep() -> None:
    """Lifespan task: every COURSE_UPKEEP_INTERVAL_SECONDS, one upkeep round, in
    one process at a time across every worker and machine: the one holding the
    shared "upkeep" lock (course_app/locks.py), which keeps renewing it, during a
    long round too. A process that stops lets it go; one killed loses it with its
    database connection, or when its Redis key expires (three intervals, at least
    10 s); another process takes it at its next try."""
    from course_app import metrics
    from course_app.locks import shared_lock

    log = logging.getLogger(__name__)
    interval = load_settings_or_exit().upkeep_interval_seconds
    lock = shared_lock("upkeep", ttl=max(3 * interval, 10))
    last_sweep = 0.0
    try:
        while True:
            try:
                if await asyncio.to_thread(lambda: lock.keep() or lock.acquire(blocking=False)):
                    log.info("upkeep round", extra={logs.FIELDS_ATTRIBUTE: {"event": "upkeep"}})
                    renewing = asyncio.create_task(_keep_renewing(lock, interval))  # a long sweep keeps it
                    try:
                        last_sweep = await _upkeep_round(last_sweep)
                    finally:
                        renewing.cancel()
            except Exception:
                metrics.upkeep_failed()
                log.exception("Background upkeep failed; trying again later")
            await asyncio.sleep(interval)
    finally:
        await asyncio.to_thread(lock.release)


def index() -> rx.Component:
    return rx.fragment()


app = SecuredApp(
    # The API under the app's routes, the socket's caps, and around them the request id,
    # log line and metrics of every request (security headers: around all, SecuredApp).
    api_transformer=[build_api(), with_socket_guard, with_request_log],
    stylesheets=["/editor.css"],
)
app.add_middleware(SocketEventLimit())  # first: a flood costs no database query
app.add_middleware(IdentityGuard())  # a tab's States never outlive its log-in
app.register_lifespan_task(db.use_database_threads)
app.register_lifespan_task(_apply_migrations)
app.register_lifespan_task(_background_upkeep)
app.register_lifespan_task(watch_socket_sessions)  # a session's end resets its open tabs
app.register_lifespan_task(embedded_worker)
app.add_page(index, route="/", title="Course Studio", on_load=rx.redirect("/dashboard"))
app.add_page(login_page, route="/login", title="Log in · Course Studio",
             on_load=[AuthFormState.load, SessionState.redirect_if_logged_in])
app.add_page(signup_page, route="/signup", title="Sign up · Course Studio",
             on_load=[AuthFormState.load, SessionState.redirect_if_logged_in])
app.add_page(dashboard_page, route="/dashboard", title="My courses · Course Studio",
             on_load=[SessionState.require_login, DashboardState.load])
app.add_page(editor_page, route="/courses/[course_id]", title="Course editor · Course Studio",
             on_load=[SessionState.require_login, CourseState.load])
app.add_page(preview_page, route="/courses/[course_id]/preview", title="Student preview · Course Studio",
             on_load=[SessionState.require_login, PreviewState.load])
app.add_page(trash_page, route="/courses/[course_id]/trash", title="Trash · Course Studio",
             on_load=[SessionState.require_login, TrashState.load])
app.add_page(settings_page, route="/settings", title="Settings · Course Studio",
             on_load=[SessionState.require_login, TokensState.load])
