"""From the editor to the student's view: publishing is refused while a video is not
ready (the notice names it), then allowed; "Preview as a student" plays lesson 1
from a signed link, Next moves to lesson 2 and highlights it; an expired link is
refused (403) and the player fetches a fresh one by itself."""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from course_app.services import playback
from tests.e2e.conftest import open_editor, seed_course, sign_up
from tests.server import wait_processed

PLAYS = ("() => { const v = document.querySelector('video');"
         " return !!v && v.readyState >= 1 && v.duration > 0.5 && v.currentSrc.includes('/api/media/'); }")


def _set_status(engine, video_id: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE videos SET status = :s WHERE id = :id"), {"s": status, "id": uuid.UUID(video_id).hex})


def _storage_key(engine, video_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT storage_key FROM videos WHERE id = :id"),
                            {"id": uuid.UUID(video_id).hex}).scalar_one()


def test_publish_then_preview_plays_lesson_one_then_two_and_an_expired_link_is_refused(
        page: Page, base_url, clip, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Preview course", {"Basics": ["First lesson"], "More": ["Second lesson"]}, clip)
    first, second = made["videos"]["First lesson"], made["videos"]["Second lesson"]
    assert wait_processed(server_engine, [first, second]) == {first: "ready", second: "ready"}
    open_editor(page, base_url, made["course"])
    details = page.locator("main")

    # Publishing waits for every video: the refusal names the one still processing.
    _set_status(server_engine, second, "processing")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_role("alert").filter(has_text="1 video is not ready: 'Second lesson' (processing)")).to_be_visible()
    expect(details.get_by_text("draft", exact=True)).to_be_visible()
    _set_status(server_engine, second, "ready")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(details.get_by_text("published", exact=True)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)

    # The preview: lesson 1 highlighted and playing from a signed link, its thumbnail as the poster.
    page.get_by_role("link", name="Preview as a student").click()
    expect(page).to_have_url(f"{base_url}/courses/{made['course']}/preview")
    expect(page.get_by_role("heading", name="Preview course", level=1)).to_be_visible()
    lesson_1 = page.get_by_role("button", name="Lesson 1: First lesson")
    lesson_2 = page.get_by_role("button", name="Lesson 2: Second lesson")
    expect(lesson_1).to_have_attribute("aria-current", "true")
    expect(lesson_2).to_have_attribute("aria-current", "false")
    expect(lesson_1).to_contain_text("0:01")  # its duration
    expect(page.get_by_role("heading", name="First lesson", level=2)).to_be_visible()
    page.wait_for_function(PLAYS)
    assert "/large/" in page.locator("video").get_attribute("poster")
    first_src = page.locator("video").get_attribute("src")

    page.get_by_role("button", name="Next lesson").click()
    expect(lesson_2).to_have_attribute("aria-current", "true")
    expect(lesson_1).to_have_attribute("aria-current", "false")
    expect(page.get_by_text("Lesson 2 of 2")).to_be_visible()
    expect(page.get_by_role("button", name="Next lesson")).to_be_disabled()
    expect(page.locator("video")).not_to_have_attribute("src", first_src)
    page.wait_for_function(PLAYS)
    assert f"/api/media/{second}/video/" in page.locator("video").get_attribute("src")

    # An expired link is refused; the player then asks for a fresh one and plays on.
    expired = playback.sign(video_id=second, kind="video", key=_storage_key(server_engine, second),
                            expires=int(time.time()) - 60, audience=playback.OWNER)
    refused = page.request.get(f"{base_url}{expired}")
    assert refused.status == 403 and refused.json()["code"] == "link_expired"
    with page.expect_response(lambda r: "signature=" in r.url and r.status == 403):
        page.evaluate("(url) => { const v = document.querySelector('video'); v.src = url; v.load(); }", expired)
    page.wait_for_function(
        "(old) => { const v = document.querySelector('video'); return !!v && v.readyState >= 1"
        " && v.currentSrc.includes('/api/media/') && !v.currentSrc.endsWith(old); }",
        arg=expired.split("?")[1])
