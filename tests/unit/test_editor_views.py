"""The editor's browser-facing vars are views of its backend vars (state/editor_store.py
``Views``): only the views that changed reach the browser, and no event of any page
makes Reflex recompute them."""

from __future__ import annotations

import reflex as rx

from course_app.state.editor_store import BUCKETS, ChapterRow, VideoRow, bucket_of
from course_app.state.outline import PAGE, OutlineState
from course_app.state.session import _app_states
from course_app.state.videos import VideosState


def _fresh(cls):
    root = rx.State(_reflex_internal_init=True)
    return root, root.get_substate(cls.get_full_name().split(".")[1:])


def _sent(root) -> dict[str, set[str]]:
    delta = root.get_delta()
    root._clean()
    names = {cls.get_full_name(): cls.__name__ for cls in (OutlineState, VideosState)}
    return {names.get(state, state): {key.removesuffix("_rx_state_") for key in values} for state, values in delta.items()}


def _video(chapter_id: str, n: int) -> VideoRow:
    return VideoRow(id=f"{chapter_id}-v{n}", chapter_id=chapter_id, title=f"Video {n}", filename=f"{n}.mp4",
                    status="ready", status_label="Ready", size_bytes=1, size="1 B", duration="", error="")


def test_renaming_a_chapter_in_place_sends_only_its_page():
    root, outline = _fresh(OutlineState)
    outline._chapters = [ChapterRow(id=f"c{i}", title=f"Chapter {i}") for i in range(5 * PAGE)]
    first = _sent(root)["OutlineState"]
    assert {f"page_{k}" for k in range(5)} | {"chapter_count"} <= first
    assert outline.chapter_count == 5 * PAGE and outline.page_2[0].id == f"c{2 * PAGE}"

    outline._chapters[2 * PAGE + 1] = ChapterRow(id=f"c{2 * PAGE + 1}", title="Renamed")  # in place, as handlers do

    assert _sent(root) == {"OutlineState": {"page_2"}}
    assert outline.page_2[1].title == "Renamed"


def test_moving_a_chapter_across_a_page_boundary_sends_two_pages_and_nothing_else_sends_none():
    root, outline = _fresh(OutlineState)
    outline._chapters = [ChapterRow(id=f"c{i}", title=f"Chapter {i}") for i in range(3 * PAGE)]
    _sent(root)
    rows = list(outline._chapters)
    rows[PAGE - 1], rows[PAGE] = rows[PAGE], rows[PAGE - 1]
    outline._chapters = rows
    assert _sent(root) == {"OutlineState": {"page_0", "page_1"}}

    outline.filter_text = "x"  # another var of the same State: the pages stay put
    assert _sent(root) == {"OutlineState": {"filter_text"}}


def test_changing_one_chapters_videos_sends_only_its_bucket():
    root, videos = _fresh(VideosState)
    chapters = [f"chapter-{i}" for i in range(40)]
    videos._by_chapter = {c: [_video(c, n) for n in range(3)] for c in chapters}
    _sent(root)
    target = chapters[7]

    videos._by_chapter[target][1] = _video(target, 99)

    assert _sent(root) == {"VideosState": {f"videos_{bucket_of(target)}"}}
    assert getattr(videos, f"videos_{bucket_of(target)}")[target][1].id == f"{target}-v99"
    assert sum(len(getattr(videos, f"videos_{b}")) for b in range(BUCKETS)) == len(chapters)


def test_no_state_of_the_app_is_recomputed_on_every_event():
    """Uncached computed vars make Reflex load and recompute their State on every
    event of every page; the app has none."""
    always = {cls.__name__: sorted(cls._always_dirty_computed_vars) for cls in _app_states()
              if cls._always_dirty_computed_vars}
    assert always == {}
    assert not {name for name in rx.State._always_dirty_substates if "course_app" in name}


def test_each_open_chapter_has_a_bucket_of_its_own_and_keeps_it():
    root, videos = _fresh(VideosState)
    chapters = [f"chapter-{i}" for i in range(BUCKETS)]
    videos._by_chapter = {c: [_video(c, 0)] for c in chapters[:-1]}
    _sent(root)
    assert sorted(videos.slots.values()) == list(range(BUCKETS - 1))
    before = dict(videos.slots)

    videos._by_chapter = {**videos._by_chapter, chapters[-1]: [_video(chapters[-1], 0)]}  # one more opened
    sent = _sent(root)["VideosState"]
    assert {c: videos.slots[c] for c in before} == before
    assert sent == {"slots", f"videos_{videos.slots[chapters[-1]]}"}

    target = chapters[3]
    videos._by_chapter[target][0] = _video(target, 7)
    bucket = f"videos_{videos.slots[target]}"
    assert _sent(root) == {"VideosState": {bucket}}
    assert list(getattr(videos, bucket)) == [target]  # the bucket carries that chapter's rows alone
