"""The Reflex app: pages, the API and start-up tasks; nothing else."""

import asyncio
import logging

import reflex as rx

from course_app.api import build_api
from course_app.db import migrate
from course_app.pages.auth import login_page, signup_page
from course_app.pages.dashboard import dashboard_page
from course_app.pages.editor import editor_page
from course_app.pages.settings import settings_page
from course_app.settings import load_settings_or_exit
from course_app.state.auth_forms import AuthFormState
from course_app.state.dashboard import DashboardState
from course_app.state.editor import EditorState
from course_app.state.session import SessionState
from course_app.state.settings_page import TokensState
from course_app.state.videos import VideosState

load_settings_or_exit()

OUTBOX_INTERVAL_SECONDS = 30


def _apply_migrations() -> None:
    """Lifespan task: the schema is current before the first request is served."""
    migrate()


async def _drain_storage_deletions() -> None:
    """Lifespan task: carry out pending storage deletions, retrying until storage confirms."""
    from course_app.services.uploads import run_pending_deletions
    from course_app.storage import get_storage

    while True:
        try:
            await run_pending_deletions(get_storage())
        except Exception:
            logging.getLogger(__name__).exception("Carrying out pending storage deletions failed")
        await asyncio.sleep(OUTBOX_INTERVAL_SECONDS)


def index() -> rx.Component:
    return rx.fragment()


app = rx.App(
    api_transformer=build_api(),
)
app.register_lifespan_task(_apply_migrations)
app.register_lifespan_task(_drain_storage_deletions)
app.add_page(index, route="/", title="Course Studio", on_load=rx.redirect("/dashboard"))
app.add_page(login_page, route="/login", title="Log in · Course Studio",
             on_load=[AuthFormState.load, SessionState.redirect_if_logged_in])
app.add_page(signup_page, route="/signup", title="Sign up · Course Studio",
             on_load=[AuthFormState.load, SessionState.redirect_if_logged_in])
app.add_page(dashboard_page, route="/dashboard", title="My courses · Course Studio",
             on_load=[SessionState.require_login, DashboardState.load])
app.add_page(editor_page, route="/courses/[course_id]", title="Course editor · Course Studio",
             on_load=[SessionState.require_login, EditorState.load, VideosState.load])
app.add_page(settings_page, route="/settings", title="Settings · Course Studio",
             on_load=[SessionState.require_login, TokensState.load])
