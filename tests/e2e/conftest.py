"""Playwright in Debian's Chromium against the session's app: the production build
on SQLite, or with --production-app `course-app serve` on PostgreSQL with Redis and
two workers. Faults go through tests/db_faults.py, which speaks both databases."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.accounts import PASSWORD
from tests.polling import wait_for

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }


@pytest.fixture(scope="session")
def base_url(app_server) -> str:
    return app_server.base_url


@pytest.fixture(autouse=True)
def _no_csp_violations(request):
    """Every browser test runs with the app's Content-Security-Policy on: a violation
    reported in the console of any page of the test's browser context fails it."""
    if "page" not in request.fixturenames and "context" not in request.fixturenames:
        yield
        return
    context = request.getfixturevalue("context")
    violations: list[str] = []
    context.on("console", lambda message: violations.append(f"{message.page.url if message.page else '?'}: "
                                                            f"{message.text}")
               if "Content Security Policy" in message.text else None)
    yield
    assert violations == [], f"CSP violations in the browser console: {violations}"


@pytest.fixture(autouse=True)
def _expect_timeout():
    expect.set_options(timeout=15_000)


def eventually(page: Page, check, what: str, timeout: float = 20.0):
    """Poll a condition outside the page (the database, storage) until it is truthy,
    and return it, while the page keeps running: Playwright's route handlers only
    run while the test waits through Playwright."""
    return wait_for(check, what, timeout=timeout, interval=0.1,
                    sleep=lambda seconds: page.wait_for_timeout(seconds * 1000))


def wait_live(page: Page) -> None:
    """The page has hydrated and its socket is connected."""
    expect(page.locator("#hydrated")).to_have_text("true")


def sign_up(page: Page, base_url: str, email: str | None = None) -> str:
    email = email or f"{uuid.uuid4().hex[:10]}@example.com"
    page.goto(f"{base_url}/signup")
    wait_live(page)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="My courses")).to_be_visible()
    wait_live(page)
    return email


def log_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login")
    wait_live(page)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My courses")).to_be_visible()
    wait_live(page)


def create_course(page: Page, title: str) -> str:
    """From the dashboard: create a course, land in its editor, return its id."""
    page.get_by_label("New course title").fill(title)
    page.get_by_role("button", name="New course").click()
    expect(page).to_have_url(re.compile(r"/courses/[0-9a-f-]{36}"))
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    wait_live(page)
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def chapter_titles(page: Page) -> list[str]:
    rows = page.get_by_test_id("chapter-row")
    return [rows.nth(i).get_by_role("textbox").input_value() for i in range(rows.count())]


def expect_chapters(page: Page, titles: list[str]) -> None:
    expect(page.get_by_test_id("chapter-row")).to_have_count(len(titles))
    for index, title in enumerate(titles, start=1):
        expect(page.get_by_label(f"Chapter {index} title")).to_have_value(title)


def add_chapter(page: Page, title: str) -> None:
    count = page.get_by_test_id("chapter-row").count()
    page.get_by_label("New chapter title").fill(title)
    page.get_by_role("button", name="Add chapter").click()
    expect(page.get_by_label(f"Chapter {count + 1} title")).to_have_value(title)
    # the row's real id has come back from the database
    expect(page.get_by_test_id("chapter-row")).to_have_count(count + 1)


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> bytes:
    """A small real video, uploaded under many names by the tests that need a full course."""
    from tests.media import make_video

    return make_video(tmp_path_factory.mktemp("e2e-clip") / "clip.mp4", seconds=1, seed=7).read_bytes()


def seed_course(page: Page, base_url: str, title: str, chapters: dict[str, list[str]], clip: bytes) -> dict:
    """A course made through the JSON API with the page's own log-in: chapters in
    order, each with videos uploaded under the given titles (file "<title>.mp4").
    Returns {"course": id, "chapters": {title: id}, "videos": {title: id}}."""
    from tests.api.test_videos_api import MULTIPART, multipart

    api = page.request
    response = api.post(f"{base_url}/api/courses", data={"title": title})
    assert response.status == 201, response.text()
    made = {"course": response.json()["id"], "chapters": {}, "videos": {}}
    for chapter, videos in chapters.items():
        response = api.post(f"{base_url}/api/courses/{made['course']}/chapters", data={"title": chapter})
        assert response.status == 201, response.text()
        chapter_id = made["chapters"][chapter] = response.json()["id"]
        for video in videos:
            body = multipart([("course_id", made["course"]), ("chapter_id", chapter_id), ("title", video)], clip,
                             filename=f"{video}.mp4")
            response = api.post(f"{base_url}/api/upload", data=body, headers={"content-type": MULTIPART})
            assert response.status == 201, response.text()
            made["videos"][video] = response.json()["id"]
    return made


def open_editor(page: Page, base_url: str, course_id: str) -> None:
    page.goto(f"{base_url}/courses/{course_id}")
    wait_live(page)
    expect(page.locator("ol[aria-label=Chapters]")).to_be_visible()


def chapter(page: Page, title: str):
    """A chapter's row (its header and, when open, its videos)."""
    return page.get_by_test_id("chapter-row").filter(has=page.get_by_role("button", name=f"Videos of {title}", exact=True))


def video_titles(page: Page, chapter_title: str) -> list[str]:
    rows = chapter(page, chapter_title).get_by_test_id("video-row")
    return [rows.nth(i).get_by_role("textbox").input_value() for i in range(rows.count())]


# Marking ----------------------------------------------------------------------------------

_BROWSER_TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    """Every test under tests/e2e is a browser test: marked ``e2e`` (registered in
    pyproject.toml), so ``-m "not e2e"`` leaves them out and ``-m e2e`` runs only them."""
    for item in items:
        if _BROWSER_TESTS in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)
