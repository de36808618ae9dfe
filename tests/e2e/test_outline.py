"""The course outline in a real browser: collapsible chapters with their counts,
videos moved by drag and drop and by keyboard (within and across chapters, onto
open and collapsed chapters), batch move and delete, a refused batch undone, the
uploads panel while a chapter is collapsed, and the filter."""

from __future__ import annotations

import base64
import hashlib
import os
import re

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.cli import check_videos
from tests.db_faults import failing
from tests.e2e.conftest import chapter, eventually, open_editor, seed_course, sign_up, video_titles, wait_live
from tests.e2e.test_resumable_uploads import PARTS_URL, HoldBack, _big_video


def _db_order(engine, course_id: str) -> dict[str, list[str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT c.title, v.title FROM chapters c "
                    "LEFT JOIN videos v ON v.chapter_id = c.id AND v.deleted_at IS NULL "
                    "WHERE c.course_id = :c AND c.deleted_at IS NULL ORDER BY c.position, v.position"),
            {"c": course_id.replace("-", "")},
        ).all()
    order: dict[str, list[str]] = {}
    for chapter_title, video_title in rows:
        order.setdefault(chapter_title, [])
        if video_title is not None:
            order[chapter_title].append(video_title)
    return order


def _expect_db_order(page: Page, engine, course_id: str, expected: dict[str, list[str]]) -> None:
    """The database comes to hold what the page shows (the page shows it first), the
    chapters in this order too (dicts compare equal whatever their order)."""
    eventually(page, lambda: list(_db_order(engine, course_id).items()) == list(expected.items()),
               f"the database to hold {expected}")


def _start_upload(page: Page, base_url: str, made: dict, chapter_title: str, filename: str, data: bytes) -> None:
    """A resumable upload started through the API (as from another tab): its video
    row is "uploading", and this page does not hold its file."""
    response = page.request.post(f"{base_url}/api/uploads", data={
        "course_id": made["course"], "chapter_id": made["chapters"][chapter_title], "filename": filename,
        "size": len(data), "fingerprint": "v1:" + hashlib.sha1(data).hexdigest(),
        "head": base64.b64encode(data[:8192]).decode(),
    })
    assert response.status == 201, response.text()


def _row(page: Page, title: str):
    return page.get_by_test_id("video-row").filter(has=page.get_by_label(f"Title of {title}.mp4", exact=True))


def _handle(page: Page, title: str):
    return _row(page, title).locator("[data-drag-video]")


def test_chapters_collapse_and_expand_with_their_counts_and_stay_so_after_a_reload(page: Page, base_url, clip):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Outline course", {"Basics": ["one", "two", "three"], "Advanced": ["four"]}, clip)
    # An upload that has started but not finished: the chapter's summary says so.
    _start_upload(page, base_url, made, "Basics", "half.mp4", clip + os.urandom(200_000))

    open_editor(page, base_url, made["course"])
    basics, advanced = chapter(page, "Basics"), chapter(page, "Advanced")
    toggle = basics.get_by_role("button", name="Videos of Basics", exact=True)
    # A small course opens whole on the first visit.
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(basics.get_by_test_id("video-row")).to_have_count(4)

    page.get_by_role("button", name="Collapse all").click()
    expect(page.get_by_test_id("video-row")).to_have_count(0)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    # A collapsed chapter still tells what is in it.
    expect(basics).to_contain_text("4 videos")
    expect(basics).to_contain_text("KiB")
    expect(basics.get_by_label("Status: 1 uploading")).to_be_visible()
    expect(advanced).to_contain_text("1 video")

    advanced.get_by_role("button", name="Videos of Advanced", exact=True).click()
    expect(advanced.get_by_test_id("video-row")).to_have_count(1)
    expect(advanced.get_by_role("button", name="Videos of Advanced", exact=True)).to_have_attribute("aria-expanded", "true")

    # Which chapters are open survives a reload.
    page.reload()
    wait_live(page)
    expect(chapter(page, "Advanced").get_by_test_id("video-row")).to_have_count(1)
    expect(chapter(page, "Basics").get_by_test_id("video-row")).to_have_count(0)

    page.get_by_role("button", name="Expand all").click()
    expect(page.get_by_test_id("video-row")).to_have_count(5)
    assert video_titles(page, "Basics") == ["one", "two", "three", "half"]


def test_videos_move_by_drag_and_drop_within_and_across_chapters(page: Page, base_url, clip, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Drag course",
                       {"Intro": ["a1", "a2", "a3"], "Middle": ["b1"], "End": ["c1"]}, clip)
    open_editor(page, base_url, made["course"])

    # Within a chapter: a3 onto the top half of a1 goes before it.
    _handle(page, "a3").drag_to(_row(page, "a1"), target_position={"x": 40, "y": 2})
    expect(chapter(page, "Intro").get_by_test_id("video-row").first.get_by_role("textbox")).to_have_value("a3")
    assert video_titles(page, "Intro") == ["a3", "a1", "a2"]

    # Across open chapters: a1 onto b1 goes before it.
    _handle(page, "a1").drag_to(_row(page, "b1"), target_position={"x": 40, "y": 2})
    expect(chapter(page, "Middle").get_by_test_id("video-row")).to_have_count(2)
    assert video_titles(page, "Middle") == ["a1", "b1"]
    assert video_titles(page, "Intro") == ["a3", "a2"]

    # Onto a collapsed chapter's header: appended to it.
    end = chapter(page, "End")
    end.get_by_role("button", name="Videos of End", exact=True).click()
    expect(end.get_by_test_id("video-row")).to_have_count(0)
    _handle(page, "a2").drag_to(end.get_by_label("Chapter 3 title"))
    expect(end).to_contain_text("2 videos")
    expect(chapter(page, "Intro").get_by_test_id("video-row")).to_have_count(1)
    expect(chapter(page, "Intro")).to_contain_text("1 video")

    _expect_db_order(page, server_engine, made["course"], {"Intro": ["a3"], "Middle": ["a1", "b1"], "End": ["c1", "a2"]})
    page.reload()
    wait_live(page)
    expect(chapter(page, "End").get_by_test_id("video-row")).to_have_count(0)  # still collapsed
    chapter(page, "End").get_by_role("button", name="Videos of End", exact=True).click()
    expect(chapter(page, "End").get_by_test_id("video-row")).to_have_count(2)
    assert video_titles(page, "End") == ["c1", "a2"]
    assert video_titles(page, "Middle") == ["a1", "b1"]


def test_videos_move_by_keyboard(page: Page, base_url, clip, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Keyboard course", {"First": ["k1", "k2", "k3"], "Second": ["k4"]}, clip)
    open_editor(page, base_url, made["course"])

    page.get_by_role("button", name="Move video k1 down").focus()
    page.keyboard.press("Enter")
    expect(chapter(page, "First").get_by_test_id("video-row").first.get_by_role("textbox")).to_have_value("k2")
    page.get_by_role("button", name="Move video k3 up").focus()
    page.keyboard.press("Enter")
    expect(chapter(page, "First").get_by_test_id("video-row").nth(1).get_by_role("textbox")).to_have_value("k3")

    page.get_by_role("button", name="Move video k2 to another chapter").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Move to chapter")
    expect(dialog).to_contain_text("“k2”")
    expect(dialog.get_by_role("button", name="Move to chapter 1: First")).to_be_focused()
    page.keyboard.press("Escape")  # changed my mind
    expect(dialog).to_have_count(0)
    page.get_by_role("button", name="Move video k2 to another chapter").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_contain_text("“k2”")
    dialog.get_by_role("button", name="Move to chapter 2: Second").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    expect(chapter(page, "Second").get_by_test_id("video-row")).to_have_count(2)

    _expect_db_order(page, server_engine, made["course"], {"First": ["k3", "k1"], "Second": ["k4", "k2"]})
    page.reload()
    wait_live(page)
    expect(chapter(page, "Second").get_by_test_id("video-row")).to_have_count(2)
    assert video_titles(page, "First") == ["k3", "k1"]
    assert video_titles(page, "Second") == ["k4", "k2"]


def test_batch_move_delete_and_a_refused_batch_undone(page: Page, base_url, clip, app_server, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Batch course", {"Source": ["s1", "s2", "s3", "s4"], "Target": ["t1"]}, clip)
    open_editor(page, base_url, made["course"])

    # Shift-click selects a range.
    page.get_by_label("Select s1", exact=True).click()
    page.get_by_label("Select s3", exact=True).click(modifiers=["Shift"])
    toolbar = page.get_by_role("toolbar", name="Selected videos")
    expect(toolbar).to_contain_text("3 selected")
    toolbar.get_by_role("button", name="Move selected videos").click()
    page.get_by_role("dialog", name="Move to chapter").get_by_role("button", name="Move to chapter 2: Target").click()
    expect(chapter(page, "Target").get_by_test_id("video-row")).to_have_count(4)
    assert video_titles(page, "Target") == ["t1", "s1", "s2", "s3"]
    assert video_titles(page, "Source") == ["s4"]
    expect(toolbar).to_have_count(0)  # moved rows leave the selection
    _expect_db_order(page, server_engine, made["course"], {"Source": ["s4"], "Target": ["t1", "s1", "s2", "s3"]})

    # Select all in a chapter, move them to the trash after one confirmation: the rows go, the files stay.
    with server_engine.connect() as conn:
        keys = dict(conn.execute(sa.text("SELECT title, storage_key FROM videos WHERE course_id = :c"),
                                 {"c": made["course"].replace("-", "")}).all())
    page.get_by_role("button", name="Select all videos in Target").click()
    expect(toolbar).to_contain_text("4 selected")
    toolbar.get_by_role("button", name="Delete selected videos").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("4 videos will leave the course. They can be restored from the course's Trash "
                                    "for 30 days.")
    confirm.get_by_role("button", name="Move to trash").click()
    expect(chapter(page, "Target").get_by_test_id("video-row")).to_have_count(0)
    expect(chapter(page, "Target")).to_contain_text("0 videos")
    _expect_db_order(page, server_engine, made["course"], {"Source": ["s4"], "Target": []})
    storage = app_server.data_dir / "storage"
    assert all((storage / keys[t]).exists() for t in ("t1", "s1", "s2", "s3", "s4"))  # kept until purged
    report = check_videos(app_server.env)
    assert report["ok"], report

    # The database refuses the next move: the page undoes it and says so.
    with failing(server_engine, "refuse_s4", "UPDATE OF chapter_id", "videos", when="NEW.title = 's4'"):
        page.get_by_label("Select s4", exact=True).click()
        toolbar.get_by_role("button", name="Move selected videos").click()
        page.get_by_role("dialog", name="Move to chapter").get_by_role("button", name="Move to chapter 2: Target").click()
        expect(page.get_by_role("alert").filter(has_text="Your last change was undone")).to_be_visible()
        expect(chapter(page, "Source").get_by_test_id("video-row")).to_have_count(1)
        expect(chapter(page, "Target").get_by_test_id("video-row")).to_have_count(0)
    _expect_db_order(page, server_engine, made["course"], {"Source": ["s4"], "Target": []})


def test_an_upload_keeps_its_progress_in_the_panel_while_its_chapter_is_collapsed(
        page: Page, base_url, clip, server_engine, tmp_path):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Panel course", {"Open": ["o1"], "Lessons": []}, clip)
    open_editor(page, base_url, made["course"])
    lessons = chapter(page, "Lessons")
    lessons.get_by_role("button", name="Videos of Lessons", exact=True).click()
    expect(lessons.get_by_role("button", name="Videos of Lessons", exact=True)).to_have_attribute("aria-expanded", "false")

    # Dropped onto the collapsed chapter's header, the file goes to that chapter.
    video = _big_video(tmp_path / "lecture.mp4", seed=11)
    held = HoldBack(allow=3)
    page.route(PARTS_URL, held)
    payload = base64.b64encode(video.read_bytes()).decode()
    page.evaluate("""([selector, data]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "lecture.mp4", {type: "video/mp4"}));
        const target = document.querySelector(selector);
        for (const type of ["dragenter", "dragover", "drop"]) {
            target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
        }
    }""", [f'[data-chapter-id="{made["chapters"]["Lessons"]}"] input[aria-label="Chapter 2 title"]', payload])

    panel = page.get_by_role("region", name="Uploads")
    expect(panel.get_by_role("progressbar", name="Upload progress of lecture.mp4")).to_be_visible()
    expect(panel).to_contain_text("Chapter 2. Lessons")
    # The server has the upload (a pause before that would leave it only in this page).
    expect(lessons.get_by_label("Status: 1 uploading")).to_be_visible()
    panel.get_by_role("button", name="Pause upload of lecture.mp4").click()
    expect(panel.get_by_text("Paused at")).to_be_visible()
    expect(lessons.get_by_test_id("video-row")).to_have_count(0)  # still collapsed
    expect(lessons.get_by_label("Status: 1 uploading")).to_be_visible()

    page.unroute(PARTS_URL, held)
    panel.get_by_role("button", name="Resume upload of lecture.mp4").click()
    expect(panel.get_by_role("progressbar", name="Upload progress of lecture.mp4")).to_have_attribute(
        "aria-valuenow", "100")
    expect(lessons).to_contain_text("1 video")
    expect(lessons.get_by_label("Status: 1 uploading")).to_have_count(0)
    lessons.get_by_role("button", name="Videos of Lessons", exact=True).click()
    expect(lessons.get_by_label("Status: Ready")).to_have_count(1)

    # The course-wide zone asks which chapter.
    page.get_by_label("Choose videos to upload").set_input_files(str(make_small(tmp_path, clip)))
    group = panel.get_by_role("group", name="Which chapter?")
    group.get_by_label("Chapter for the new videos").select_option(label="1. Open")
    group.get_by_role("button", name="Upload here").click()
    # The same bytes as o1: the duplicate warning holds it until told to go on.
    expect(panel.get_by_role("alert")).to_contain_text("You already uploaded this file: Lesson 1 (“o1”)")
    panel.get_by_role("button", name="Upload small.mp4 anyway").click()
    expect(chapter(page, "Open").get_by_test_id("video-row")).to_have_count(2)
    _expect_db_order(page, server_engine, made["course"], {"Open": ["o1", "small"], "Lessons": ["lecture"]})


def make_small(tmp_path, clip: bytes):
    path = tmp_path / "small.mp4"
    path.write_bytes(clip)
    return path


def test_the_filter_narrows_the_outline_to_matching_and_failing_videos(page: Page, base_url, clip):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Filter course",
                       {"Alpha": ["intro to loops", "variables"], "Beta": ["loops again", "functions"],
                        "Gamma": ["classes"]}, clip)
    _start_upload(page, base_url, made, "Gamma", "pending.mp4", clip + os.urandom(100_000))
    open_editor(page, base_url, made["course"])
    page.get_by_role("button", name="Collapse all").click()

    page.get_by_label("Filter videos").fill("LOOPS")
    expect(page.get_by_test_id("video-row")).to_have_count(2)
    expect(page.get_by_test_id("chapter-row")).to_have_count(2)  # Gamma has no match
    assert video_titles(page, "Alpha") == ["intro to loops"]
    assert video_titles(page, "Beta") == ["loops again"]

    page.get_by_label("Filter videos").fill("")
    expect(page.get_by_test_id("chapter-row")).to_have_count(3)  # the text filter is off again
    page.get_by_role("button", name="Uploading", exact=True).click()
    expect(page.get_by_test_id("video-row")).to_have_count(1)
    expect(page.get_by_test_id("chapter-row")).to_have_count(1)
    assert video_titles(page, "Gamma") == ["pending"]

    page.get_by_role("button", name="Clear filter").click()
    expect(page.get_by_test_id("chapter-row")).to_have_count(3)
    expect(page.get_by_test_id("video-row")).to_have_count(0)  # back to all collapsed


def test_retry_the_failed_uploads_of_the_selection(page: Page, base_url, clip, tmp_path):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Retry course", {"Retries": []}, clip)
    # An upload started from elsewhere: this tab does not hold its file.
    _start_upload(page, base_url, made, "Retries", "elsewhere.mp4", clip + os.urandom(100_000))
    open_editor(page, base_url, made["course"])

    # The server refuses every part: both uploads fail at once (not worth retrying by themselves).
    refuse = lambda route: route.fulfill(status=400, json={"error": "Refused for the test.", "code": "invalid_input",
                                                            "retryable": False})
    page.route(PARTS_URL, refuse)
    files = [_big_video(tmp_path / "one.mp4", seed=31), _big_video(tmp_path / "two.mp4", seed=32)]
    page.get_by_label("Upload videos to chapter 1: Retries").set_input_files([str(f) for f in files])
    expect(page.get_by_role("button", name=re.compile("^Retry upload of"))).to_have_count(2)
    expect(chapter(page, "Retries").get_by_test_id("video-row")).to_have_count(3)
    page.unroute(PARTS_URL, refuse)

    page.get_by_role("button", name="Select all videos in Retries").click()
    toolbar = page.get_by_role("toolbar", name="Selected videos")
    expect(toolbar).to_contain_text("3 selected")
    toolbar.get_by_role("button", name="Retry the selected videos' failed uploads").click()
    expect(page.get_by_role("alert").filter(has_text="1 of the selected uploads cannot be retried")).to_be_visible()
    for name in ("one.mp4", "two.mp4"):
        expect(page.get_by_role("progressbar", name=f"Upload progress of {name}")).to_have_attribute("aria-valuenow", "100")
    expect(chapter(page, "Retries").get_by_label("Status: Ready")).to_have_count(2)


def test_several_chapters_go_to_the_trash_at_once_with_their_videos(page: Page, base_url, clip, app_server, server_engine):
    sign_up(page, base_url)
    made = seed_course(page, base_url, "Chapters course", {"Keep": ["k"], "Drop one": ["d1", "d2"], "Drop two": ["d3"]},
                       clip)
    with server_engine.connect() as conn:
        keys = dict(conn.execute(sa.text("SELECT title, storage_key FROM videos WHERE course_id = :c"),
                                 {"c": made["course"].replace("-", "")}).all())
    open_editor(page, base_url, made["course"])
    page.get_by_label("Select chapter Drop one", exact=True).click()
    page.get_by_label("Select chapter Drop two", exact=True).click()
    toolbar = page.get_by_role("toolbar", name="Selected chapters")
    expect(toolbar).to_contain_text("2 chapters selected")
    toolbar.get_by_role("button", name="Delete selected chapters").click()
    confirm = page.get_by_role("alertdialog")
    expect(confirm).to_contain_text("2 chapters and their 3 videos will leave the course. They can be restored")
    confirm.get_by_role("button", name="Move to trash").click()
    expect(page.get_by_test_id("chapter-row")).to_have_count(1)
    _expect_db_order(page, server_engine, made["course"], {"Keep": ["k"]})
    storage = app_server.data_dir / "storage"
    assert all((storage / keys[t]).exists() for t in ("d1", "d2", "d3", "k"))  # kept until purged
    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("chapter-row")).to_have_count(1)
    expect(page.get_by_label("Chapter 1 title")).to_have_value("Keep")
