"""The course outline: chapter rows, and the video rows of open chapters.

Rows are ``rx.memo`` components with primitive props, so React skips every row whose
props did not change (a rename re-renders one row, not a thousand). Rows carry no
course-wide widgets: moving to another chapter and confirming a deletion open the
one shared dialog (``editor_dialogs.py``), and drag and drop is handled for the
whole outline by ``outline_dnd`` through the rows' data attributes.
"""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from course_app.components.elements import BLUR_ON_ENTER
from course_app.components.layout import error_callout
from course_app.models import TITLE_MAX
from course_app.state.editor_store import BUCKETS, ChapterRow, VideoRow
from course_app.state.notice import NoticeState
from course_app.state.outline import PAGE, PAGES, OutlineState
from course_app.state.selection import DialogState, SelectionState
from course_app.state.videos import PlayerState, VideosState

# Row styles are classes in assets/editor.css (no per-row style processing at 1,000 rows).


def _notice(message: rx.Var) -> rx.Component:
    return error_callout(message, on_dismiss=NoticeState.dismiss, size="1")


def _grip(**attrs) -> rx.Component:
    return rx.el.span(
        rx.icon("grip_vertical", size=16),
        custom_attrs={"draggable": "true", **attrs},
        title="Drag to move",
        class_name="cs-grip",
    )


def _button(label, *, on_click=None, danger: bool = False, tone: str = "", **attrs) -> rx.Component:
    """A small soft button: a plain element with a class (see assets/editor.css), not a
    Radix Themes button, so a row of them mounts in a fraction of the time."""
    cls = "cs-btn cs-danger" if danger else ("cs-btn cs-" + tone if tone else "cs-btn")
    return rx.el.button(label, on_click=on_click, type="button", class_name=cls, **attrs)


def _icon_button(icon: str, *, on_click=None, big: bool = False, **attrs) -> rx.Component:
    return rx.el.button(rx.icon(icon, size=16 if big else 14), on_click=on_click, type="button",
                        class_name="cs-icon-btn", **attrs)


@rx.memo
def video_row(video_id: rx.Var[str], title: rx.Var[str], filename: rx.Var[str], status: rx.Var[str],
              status_label: rx.Var[str], size: rx.Var[str], duration: rx.Var[str], problem: rx.Var[str],
              thumbnail: rx.Var[str], resolution: rx.Var[str], can_retry: rx.Var[bool],
              replacement: rx.Var[str], replacement_failed: rx.Var[bool], replacement_can_retry: rx.Var[bool],
              selected: rx.Var[bool], first: rx.Var[bool], last: rx.Var[bool], notice: rx.Var[str]) -> rx.Component:
    # Plain elements with classes throughout: a chapter opened or a batch moved mounts
    # its rows in one frame (a Radix Themes row cost several times as much to mount).
    return rx.el.li(
        rx.el.div(
            _grip(**{"data-drag-video": video_id}),
            rx.cond(thumbnail != "", rx.el.img(src=thumbnail, alt="Thumbnail of " + title, loading="lazy",
                                               class_name="cs-thumb"),
                    rx.el.span(class_name="cs-thumb")),
            rx.el.input(
                type="checkbox",
                checked=selected,
                read_only=True,
                on_click=lambda event: SelectionState.toggle_video(video_id, event.shift_key),
                aria_label="Select " + title,
                custom_attrs={"data-select-video": video_id},
            ),
            rx.el.input(
                default_value=title,
                key=video_id + title,
                aria_label="Title of " + filename,
                max_length=TITLE_MAX,
                on_blur=lambda value: VideosState.rename(video_id, value),
                on_key_down=BLUR_ON_ENTER,
                class_name="cs-title",
            ),
            rx.el.span(status_label, aria_label="Status: " + status_label, class_name="cs-badge",
                       custom_attrs={"role": "status", "data-tone": status}),
            rx.el.span(size, class_name="cs-meta"),
            rx.cond(duration != "", rx.el.span(duration, aria_label="Duration " + duration, class_name="cs-meta")),
            rx.cond(resolution != "", rx.el.span(resolution, class_name="cs-meta")),
            rx.cond(can_retry, _button("Retry", on_click=VideosState.retry_processing(video_id),
                                       aria_label="Retry processing " + title, tone="amber")),
            _button("Play", on_click=PlayerState.play(video_id), disabled=status != "ready",
                    aria_label="Play " + title),
            rx.el.button(  # the file picker is OutlineDnd's one shared input
                "Replace file",
                custom_attrs={"data-replace-for": video_id},
                disabled=(status == "uploading") | (status == "processing")
                | ((replacement != "") & ~replacement_failed),  # one new file at a time
                aria_label="Replace the file of " + title,
                type="button",
                class_name="cs-upload",
            ),
            _icon_button("arrow_up", on_click=VideosState.move(video_id, -1), disabled=first,
                         aria_label="Move video " + title + " up"),
            _icon_button("arrow_down", on_click=VideosState.move(video_id, 1), disabled=last,
                         aria_label="Move video " + title + " down"),
            _button("Move…", on_click=DialogState.open_move(video_id),
                    aria_label="Move video " + title + " to another chapter"),
            _button("Delete", on_click=DialogState.ask_delete_video(video_id), aria_label="Delete video " + title,
                    danger=True),
            class_name="cs-row",
        ),
        rx.cond(problem != "", rx.el.p(problem, class_name="cs-problem")),
        rx.cond(replacement != "", _replacement(video_id, title, replacement, replacement_failed,
                                                replacement_can_retry)),
        _notice(notice),
        custom_attrs={"data-testid": "video-row", "data-video-id": video_id, "data-status": status},
        class_name="cs-video",
    )


def _replacement(video_id: rx.Var[str], title: rx.Var[str], text: rx.Var[str], failed: rx.Var[bool],
                 can_retry: rx.Var[bool]) -> rx.Component:
    """What the row says of a new file on its way (or failed) to replace its own."""
    return rx.el.div(
        rx.el.span(text, class_name=rx.cond(failed, "cs-meta cs-wraps cs-failed", "cs-meta cs-wraps"),
                   custom_attrs={"role": "status", "aria-label": "Replacement of " + title + ": " + text}),
        rx.cond(can_retry, _button("Retry", on_click=VideosState.retry_replacement(video_id), tone="amber",
                                   aria_label="Retry the replacement of " + title)),
        rx.cond(failed, _button("Dismiss", on_click=VideosState.dismiss_replacement(video_id),
                                aria_label="Dismiss the failed replacement of " + title)),
        class_name="cs-row",
    )


@rx.memo
def chapter_header(chapter_id: rx.Var[str], number: rx.Var[str], title: rx.Var[str], count: rx.Var[int],
                   size: rx.Var[str], duration: rx.Var[str], summary: rx.Var[str], is_open: rx.Var[bool],
                   selected: rx.Var[bool],
                   first: rx.Var[bool], last: rx.Var[bool], saving: rx.Var[bool], notice: rx.Var[str]) -> rx.Component:
    return rx.fragment(
        rx.el.div(
            _grip(**{"data-drag-chapter": chapter_id}),
            rx.el.button(
                rx.cond(is_open, rx.icon("chevron_down", size=18), rx.icon("chevron_right", size=18)),
                on_click=OutlineState.toggle_open(chapter_id),
                disabled=saving,
                aria_expanded=rx.cond(is_open, "true", "false"),
                aria_controls="videos-" + chapter_id,
                aria_label="Videos of " + title,
                type="button",
                class_name="cs-icon-btn",
            ),
            rx.el.input(
                type="checkbox",
                checked=selected,
                read_only=True,
                disabled=saving,
                on_click=SelectionState.toggle_chapter(chapter_id),
                aria_label="Select chapter " + title,
            ),
            rx.el.span(number + ".", class_name="cs-number"),
            rx.el.input(
                default_value=title,
                key=chapter_id + title,
                aria_label="Chapter " + number + " title",
                max_length=TITLE_MAX,
                read_only=saving,
                on_blur=lambda value: OutlineState.rename_chapter(chapter_id, value),
                on_key_down=BLUR_ON_ENTER,
                class_name="cs-title cs-chapter-title",
            ),
            rx.el.span(count.to_string() + rx.cond(count == 1, " video", " videos"), class_name="cs-meta cs-big"),
            rx.cond(size != "", rx.el.span(size, class_name="cs-meta cs-big")),
            rx.cond(duration != "", rx.el.span(duration, aria_label="Duration of " + title + ": " + duration,
                                               class_name="cs-meta cs-big")),
            rx.cond(summary != "", rx.el.span(summary, aria_label="Status: " + summary, class_name="cs-badge",
                                              custom_attrs={"data-tone": "summary"})),
            rx.el.button(
                rx.icon("upload", size=14), "Upload",
                custom_attrs={"data-upload-for": chapter_id},
                disabled=saving,
                aria_label="Upload videos to " + title,
                type="button",
                class_name="cs-upload",
            ),
            rx.el.input(
                type="file",
                multiple=True,
                accept="video/*",
                hidden=True,
                tab_index=-1,
                aria_label="Upload videos to chapter " + number + ": " + title,
                custom_attrs={"data-upload-chapter": chapter_id},
            ),
            _icon_button("arrow_up", on_click=OutlineState.move_chapter(chapter_id, -1), big=True,
                         disabled=first | saving, aria_label="Move " + title + " up"),
            _icon_button("arrow_down", on_click=OutlineState.move_chapter(chapter_id, 1), big=True,
                         disabled=last | saving, aria_label="Move " + title + " down"),
            _button("Delete", on_click=DialogState.ask_delete_chapter(chapter_id), disabled=saving,
                    aria_label="Delete " + title, danger=True),
            class_name="cs-row",
        ),
        _notice(notice),
    )


@rx.memo
def chapter_videos(chapter_id: rx.Var[str], title: rx.Var[str], count: rx.Var[int]) -> rx.Component:
    """An open chapter's videos. A memo component of its own that reads the videos,
    the selection and the notice itself: a change there re-renders the open chapters'
    lists only, never the chapter rows (whose pages read the outline alone)."""
    buckets = rx.Var.create([getattr(VideosState, f"videos_{b}") for b in range(BUCKETS)])
    bucket = buckets.to(list[dict])[VideosState.slots.get(chapter_id, 0).to(int)]
    rows = bucket.to(dict[str, list[VideoRow]]).get(chapter_id, []).to(list[VideoRow])
    shown = rows.length()
    return rx.el.div(
        rx.cond(
            shown > 0,
            rx.fragment(
                rx.el.div(
                    rx.button("Select all", on_click=SelectionState.toggle_chapter_videos(chapter_id), size="1",
                              variant="ghost", aria_label="Select all videos in " + title),
                ),
                rx.el.ul(
                    rx.foreach(rows, lambda v, i: video_row(
                        video_id=v.id.to(str), title=v.title.to(str), filename=v.filename.to(str),
                        status=v.status.to(str), status_label=v.status_label.to(str), size=v.size.to(str),
                        duration=v.duration.to(str), problem=v.error.to(str), thumbnail=v.thumbnail.to(str),
                        resolution=v.resolution.to(str), can_retry=v.can_retry.to(bool),
                        replacement=v.replacement.to(str), replacement_failed=v.replacement_failed.to(bool),
                        replacement_can_retry=v.replacement_can_retry.to(bool),
                        selected=SelectionState.videos.contains(v.id), first=i == 0, last=i == shown - 1,
                        notice=rx.cond(NoticeState.error_target == v.id, NoticeState.error, ""),
                    )),
                    aria_label="Videos of " + title,
                ),
            ),
            rx.text(
                rx.cond(count > 0, "Loading videos…", "No videos yet. Drop video files here or use Upload."),
                size="2", color_scheme="gray",
            ),
        ),
        id="videos-" + chapter_id,
        class_name="cs-videos",
    )


def _chapter(chapter: ChapterRow, index: rx.Var[int], total: rx.Var[int], open_ids: rx.Var, filtering: rx.Var[bool],
             hits: rx.Var, selected: rx.Var, notice_target: rx.Var[str], notice: rx.Var[str]) -> rx.Component:
    is_open = rx.cond(filtering, hits.contains(chapter.id), open_ids.contains(chapter.id))
    return rx.cond(
        ~filtering | hits.contains(chapter.id),
        rx.el.li(
            chapter_header(
                chapter_id=chapter.id.to(str), number=(index + 1).to_string(), title=chapter.title.to(str),
                count=chapter.count.to(int), size=chapter.size.to(str), duration=chapter.duration.to(str),
                summary=chapter.summary.to(str),
                is_open=is_open, selected=selected.contains(chapter.id),
                first=index == 0, last=index == total - 1, saving=chapter.saving.to(bool),
                notice=rx.cond(notice_target == chapter.id, notice, ""),
            ),
            rx.cond(is_open, chapter_videos(chapter_id=chapter.id.to(str), title=chapter.title.to(str),
                                             count=chapter.count.to(int))),
            custom_attrs={"data-testid": "chapter-row", "data-chapter-id": chapter.id},
            aria_busy=chapter.saving,
            class_name="cs-chapter",
        ),
    )


@rx.memo
def chapter_page(rows: rx.Var[list[dict]], start: rx.Var[int], total: rx.Var[int], open_ids: rx.Var[dict[str, bool]],
                 filtering: rx.Var[bool], hits: rx.Var[dict[str, bool]], selected: rx.Var[dict[str, bool]],
                 notice_target: rx.Var[str], notice: rx.Var[str]) -> rx.Component:
    """One page of chapter rows (see OutlineState). A memo component whose props are the
    page's rows and the few course-wide values a row shows: renaming or moving a chapter
    changes one or two pages' rows, so React redraws those pages and skips the others."""
    return rx.fragment(rx.foreach(
        rows.to(list[ChapterRow]),
        lambda chapter, i: _chapter(chapter, i + start, total, open_ids, filtering, hits, selected, notice_target,
                                    notice),
    ))


def each_chapter(render: Callable[[rx.Var, rx.Var[int]], rx.Component]) -> list[rx.Component]:
    """``render(chapter, index)`` for every chapter, in order, page by page (see OutlineState)."""
    def of_page(k: int) -> rx.Component:
        return rx.foreach(getattr(OutlineState, f"page_{k}"), lambda chapter, i: render(chapter, i + k * PAGE))

    return [of_page(k) for k in range(PAGES)]


def all_chapters() -> rx.Var:
    """Every chapter as one list, joined in the browser from the pages."""
    pages = [getattr(OutlineState, f"page_{k}").to(list[dict]) for k in range(PAGES)]
    joined = pages[0]
    for page in pages[1:]:
        joined = joined + page
    return joined


def outline_list() -> rx.Component:
    pages = [
        chapter_page(
            rows=getattr(OutlineState, f"page_{k}").to(list[dict]), start=k * PAGE, total=OutlineState.chapter_count,
            open_ids=OutlineState.open_ids, filtering=OutlineState.filtering, hits=OutlineState.hits,
            selected=SelectionState.chapters, notice_target=NoticeState.error_target, notice=NoticeState.error,
        )
        for k in range(PAGES)
    ]
    return rx.el.ol(
        *pages,
        aria_label="Chapters",
        style={"display": "flex", "flex_direction": "column", "gap": "8px", "padding": "0", "width": "100%"},
    )
