"""Replacing a lesson's file in place, and the duplicate warning, as the instructor
sees them in an open editor: the lesson stays ready with its old file until the
new one is processed, then shows the new duration and size in the same place
under the same title; a replacement that fails leaves the lesson and says why;
a file already uploaded is held with where it already is, to skip or upload anyway."""

from __future__ import annotations

import hashlib
import uuid

from playwright.sync_api import Page, expect
from sqlmodel import Session

from course_app.models import Video
from tests.e2e.conftest import chapter, eventually, open_editor, seed_course, sign_up, video_titles
from tests.media import make_video, mp4_header_then_garbage
from tests.server import wait_processed


def _video(engine, video_id: str) -> Video:
    with Session(engine) as session:
        return session.get(Video, uuid.UUID(video_id))


def test_replace_lesson_one_in_place_then_the_duplicate_warning(page: Page, base_url, clip, server_engine, tmp_path):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Replacing", {"Intro": ["Lesson one", "Lesson two"]}, clip)
    wait_processed(server_engine, made["videos"].values())
    lesson = made["videos"]["Lesson one"]
    open_editor(page, base_url, made["course"])
    page.get_by_role("button", name="Expand all").click()
    # The row by its video's id: the file name in its labels changes with the file.
    row = chapter(page, "Intro").locator(f'[data-testid="video-row"][data-video-id="{lesson}"]')
    expect(row.get_by_label("Status: Ready")).to_be_visible()
    expect(row.get_by_label("Duration 0:01")).to_be_visible()
    expect(row.get_by_text("64×48")).to_be_visible()

    # The new file's upload is held at its last step, so the lesson can be seen meanwhile.
    held = []
    page.route("**/api/uploads/*/complete", lambda route: held.append(route))
    new = make_video(tmp_path / "lesson-one-v2.mp4", seconds=3, fps=10, size=(96, 64), seed=31)
    with page.expect_file_chooser() as chooser:
        row.get_by_role("button", name="Replace the file of Lesson one").click()
    chooser.value.set_files(str(new))
    eventually(page, lambda: held, "the upload to ask to complete")
    expect(row.get_by_label("Replacement of Lesson one: Replacing with lesson-one-v2.mp4: uploading…")).to_be_visible()

    # Meanwhile the lesson plays its old file: still ready, same duration, nothing new in the outline.
    expect(row.get_by_label("Status: Ready")).to_be_visible()
    expect(row.get_by_role("button", name="Play Lesson one")).to_be_enabled()
    expect(row.get_by_label("Duration 0:01")).to_be_visible()
    assert video_titles(page, "Intro") == ["Lesson one", "Lesson two"]
    assert _video(server_engine, lesson).sha1 == hashlib.sha1(clip).hexdigest()

    held[0].continue_()
    page.unroute("**/api/uploads/*/complete")
    # Swapped: the new duration, picture size and file size, same title and place.
    expect(row.get_by_label("Duration 0:03")).to_be_visible(timeout=30_000)
    expect(row.get_by_text("96×64")).to_be_visible()
    expect(row.get_by_text(f"{new.stat().st_size / 1024:.1f} KiB")).to_be_visible()
    expect(row.get_by_label("Status: Ready")).to_be_visible()
    expect(row.get_by_role("status").filter(has_text="Replacing")).to_have_count(0)
    assert video_titles(page, "Intro") == ["Lesson one", "Lesson two"]
    swapped = _video(server_engine, lesson)
    assert (str(swapped.id), swapped.title, swapped.position) == (lesson, "Lesson one", 0)
    assert swapped.sha1 == hashlib.sha1(new.read_bytes()).hexdigest()

    # A replacement that fails leaves the lesson as it was and says why, until dismissed.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(mp4_header_then_garbage())
    two = chapter(page, "Intro").locator(f'[data-testid="video-row"][data-video-id="{made["videos"]["Lesson two"]}"]')
    with page.expect_file_chooser() as chooser:
        two.get_by_role("button", name="Replace the file of Lesson two").click()
    chooser.value.set_files(str(broken))
    failure = two.get_by_role("status").filter(has_text="Replacement failed: We could not find a playable video")
    expect(failure).to_be_visible(timeout=30_000)
    expect(two.get_by_label("Status: Ready")).to_be_visible()
    expect(two.get_by_label("Duration 0:01")).to_be_visible()
    expect(two.get_by_role("button", name="Retry the replacement of Lesson two")).to_have_count(0)  # cannot help
    two.get_by_role("button", name="Dismiss the failed replacement of Lesson two").click()
    expect(failure).to_have_count(0)
    assert _video(server_engine, made["videos"]["Lesson two"]).sha1 == hashlib.sha1(clip).hexdigest()

    # Lesson two's file chosen again for the chapter: held with where it already is.
    again = tmp_path / "again.mp4"
    again.write_bytes(clip)
    upload_input = page.get_by_label("Upload videos to chapter 1: Intro")
    upload_input.set_input_files(str(again))
    warning = page.get_by_role("alert").filter(has_text="You already uploaded this file")
    expect(warning).to_contain_text("Lesson 2 (“Lesson two”) of Replacing, chapter 1 “Intro”")
    page.get_by_role("button", name="Skip again.mp4").click()
    expect(warning).to_have_count(0)
    expect(page.get_by_role("list", name="Files being uploaded")).to_have_count(0)

    upload_input.set_input_files(str(again))
    expect(warning).to_be_visible()
    page.get_by_role("button", name="Upload again.mp4 anyway").click()
    expect(chapter(page, "Intro").get_by_test_id("video-row")).to_have_count(3, timeout=30_000)
    assert video_titles(page, "Intro") == ["Lesson one", "Lesson two", "again"]
