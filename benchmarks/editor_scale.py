"""The course editor at scale: load time, click latency, socket traffic and database
queries for courses of growing size, in the production build, in Chromium.

Run from the repository root (``source scripts/env.sh`` first, or use .venv/bin/python):

    python benchmarks/editor_scale.py                                   # 10x10, 50x20, 200x20; 20 reps
    python benchmarks/editor_scale.py --sizes 10x10,20x20 --reps 10
    python benchmarks/editor_scale.py --url http://localhost:3000 --database-url sqlite:////path/course_studio.db

What it does, for each size ``CxV`` (C chapters of V videos each):

1. Seeds a course through the services (``create_user``, ``create_course``,
   ``add_chapter``, ``begin_upload`` / ``finish_upload`` / ``fail_upload``), one
   transaction per chapter, into the app's database: about 5 % of the videos stay
   ``uploading``, 2 % are ``failed`` (row kept), the rest ``ready`` (marked as
   processing leaves them, with a duration and resolution, without a worker). Titles and
   file names have the same length at every size (``Chapter 007``,
   ``Video 007-12``, ``c007-v12.mp4``), so socket bytes compare across sizes.
2. Counts the SQL statements (SQLAlchemy ``before_cursor_execute``) of one call
   of the service the editor's load uses,
   ``course_app.services.outline.editor_outline(session=, user=, course_id=,
   open_chapter_ids=[...])``, in this process, with 0, 1 and 3 chapters open
   (a warm-up call first; the second call is counted). Goal: the same number at
   every size.
3. Logs in through ``POST /api/auth/login`` (JSON, same Origin) in a fresh
   browser context and opens ``/courses/<id>`` ``--loads`` times (default 3):
   "rows shown" = navigation start -> every chapter row
   (``li[data-testid=chapter-row]``) is in the DOM; "quiet" = navigation start ->
   the last DOM mutation before 500 ms without any (as the prototype's
   measure.py). Both are measured inside the page (``performance.now()``, whose
   origin is the navigation start). If the outline never puts all C rows in the
   DOM (a virtualised list), the time of the last change in the row count is
   used and the table says how many rows were there.
4. Measures each action ``--reps`` times (default 20). Every click is a real
   Playwright click (or Enter key press); the page records the event's
   timestamp, then checks the DOM in a requestAnimationFrame loop:
   - click -> visible: until the change is in the DOM (found by
     data-chapter-id / data-video-id where the page has them, else by the
     chapter's title input / the video's "Title of <file>" label);
   - click -> confirmed: the last socket frame received after the click, once
     the socket has been quiet for ``--quiet-ms`` (250 ms). The time is when the
     page received the frame (a listener on the page's WebSocket, registered
     before the app's own): if the main thread is busy redrawing after an
     earlier frame, the wait is part of it, as it is for the user;
   - DOM settled: the last DOM mutation after the click within that window
     (when the page finished redrawing; shown next to "confirmed");
   - bytes sent and received over the socket between the click and that
     confirmation: Playwright ``page.on("websocket")`` ``framesent`` /
     ``framereceived`` payloads (UTF-8 length; socket.io pings left out), checked
     against the page's own count (kept in the JSON as ``page_bytes_*``).
   For renames the typed text is already on screen, so click -> visible is the
   time until the first socket frame after Enter (the server's answer); the
   redraw that follows shows in "DOM settled".
   Actions: publish toggle; rename chapter; move chapter down; expand a chapter
   (collapsed again after each, untimed); move video up; move a video to another
   chapter through the move dialog (the dialog's opening is reported on its
   own row); rename video; select 20 videos (the first checkbox click is
   reported on its own row) and move them to another chapter. Moves go back and
   forth, so the open chapters keep their sizes. Before the actions the editor is
   set to: "Collapse all", then the top chapters opened (video source, target,
   the batch's source chapters and target, then more until 80 video rows are
   shown, so every size redraws the same number of rows; two chapters stay
   closed); the chapter actions use closed chapters from the middle of the
   outline. An action whose controls are not on the page is reported as
   "n/a: <why>" (the editor before the outline UI shows every chapter open, has
   no expand button, selection or move dialog); an action that fails (timeout)
   keeps the samples it has and stops.

Prints a table with each goal next to its figure and writes JSON to
``benchmarks/results/editor_scale.json`` (``--json``). Without ``--url`` it starts
the production build with ``tests.server.AppServer`` (its own data folder and
web build folder ``/tmp/bench-web``) and stops it on exit.

Goals: 50x20: load (median "quiet") < 1.0 s, every action click->visible p95 <
100 ms, click->confirmed p95 < 300 ms; 200x20: load < 2 s, action p95 < 150 ms;
p95 at 50x20 at most 1.25 x p95 at 10x10; socket bytes per action (median, sent +
received) at most 1.1 x + 64 B those of the smallest size with as many videos per
chapter (200x20 against 50x20; an opened chapter carries its videos), else of the
smallest size; queries per load the same at every size. The open-the-dialog and
select-a-checkbox rows are reported without goals of their own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "benchmark password 123"
LOAD_QUIET_MS = 500
LOAD_MAX_MS = 120_000
ACTION_TIMEOUT_MS = 60_000
CLICK_TIMEOUT_MS = 60_000  # a page that redraws 1,000 rows can block its main thread that long
PAUSE_MS = 100
BATCH = 20
OPEN_VIDEO_ROWS = 80  # video rows on screen during the actions, the same at every size (where chapters allow)
MAX_BYTES = 1 << 40

# Goals --------------------------------------------------------------------------------------
LOAD_GOAL_MS = {"50x20": 1000, "200x20": 2000}
VISIBLE_P95_GOAL_MS = {"50x20": 100, "200x20": 150}
CONFIRM_P95_GOAL_MS = {"50x20": 300}
P95_GROWTH_LIMIT = 1.25  # p95 at 50x20 / p95 at 10x10
BYTES_GROWTH_FACTOR, BYTES_GROWTH_SLACK = 1.10, 64

# In the page: socket hooks, the load watcher and the action probe ----------------------------
# Installed with add_init_script, so it runs in every document before the app's scripts.
PAGE_HARNESS = r"""
(() => {
  if (window.__bench) return;
  const B = window.__bench = { frames: [], lastFrame: 0, st: null };
  const enc = new TextEncoder();
  const size = (d) => typeof d === 'string' ? enc.encode(d).length : (d ? (d.byteLength ?? d.size ?? 0) : 0);
  const isPing = (d) => d === '2' || d === '3';  // socket.io heartbeats
  const record = (dir, data) => {
    if (isPing(data)) return;
    const t = performance.now();
    B.frames.push([t, dir, size(data)]);
    B.lastFrame = t;
  };
  const Native = window.WebSocket;
  class BenchSocket extends Native {
    constructor(...args) {
      super(...args);
      // Registered before the app's own onmessage: the time is the frame's arrival.
      this.addEventListener('message', (e) => record(1, e.data));
    }
    send(data) { record(0, data); return super.send(data); }
  }
  window.WebSocket = BenchSocket;

  // DOM helpers ------------------------------------------------------------------
  const nameOf = (el) => {
    if (!el) return '';
    const label = el.getAttribute('aria-label');
    if (label) return label.trim();
    const ids = el.getAttribute('aria-labelledby');
    if (ids) return ids.split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
    if (el.labels && el.labels.length) return el.labels[0].textContent.trim();
    return (el.textContent || '').trim();
  };
  B.nameOf = nameOf;
  const CH = 'li[data-testid="chapter-row"]', VR = 'li[data-testid="video-row"]';
  B.chapterRows = () => [...document.querySelectorAll(CH)];
  B.videoRows = (root) => [...(root || document).querySelectorAll(VR)];
  const own = (li, el) => el.closest(CH) === li && !el.closest(VR);
  B.chapterTitleInput = (li) => {
    const inputs = [...li.querySelectorAll('input')].filter((i) => own(li, i));
    return inputs.find((i) => /^Chapter \d+ title$/.test(nameOf(i))) ||
      inputs.find((i) => !i.type || i.type === 'text') || null;
  };
  B.expandButton = (li) => [...li.querySelectorAll('button')].find((b) => own(li, b) && /^Videos of /.test(nameOf(b))) || null;
  B.videoTitleInput = (li) => [...li.querySelectorAll('input')].find((i) => /^Title of /.test(nameOf(i))) || null;
  B.chapterKey = (li) => li.getAttribute('data-chapter-id') || ((B.chapterTitleInput(li) || {}).value ?? null);
  B.videoKey = (li) => li.getAttribute('data-video-id') || nameOf(B.videoTitleInput(li)) || null;
  B.findChapter = (key) => B.chapterRows().find((li) => B.chapterKey(li) === key) || null;
  B.shown = (el) => el.getClientRects().length > 0;
  B.snapshot = () => B.chapterRows().map((li, index) => {
    const title = B.chapterTitleInput(li), expand = B.expandButton(li);
    return {
      key: B.chapterKey(li), id: li.getAttribute('data-chapter-id'), index,
      title: title ? title.value : null,
      expanded: expand ? expand.getAttribute('aria-expanded') === 'true' : null,
      videos: B.videoRows(li).filter(B.shown).map((v) => {
        const input = B.videoTitleInput(v);
        return { key: B.videoKey(v), id: v.getAttribute('data-video-id'), title: input ? input.value : null,
                 label: nameOf(input) };
      }),
    };
  });

  // The load: row counts per animation frame, the last DOM mutation ---------------
  const L = B.load = { counts: [], lastMutation: 0, stopped: false };
  const observer = new MutationObserver(() => { L.lastMutation = performance.now(); });
  observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  let lastCount = -1;
  const watch = () => {
    if (L.stopped) return;
    const n = document.querySelectorAll(CH).length;
    if (n !== lastCount) { L.counts.push([performance.now(), n]); lastCount = n; }
    requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
  B.loadResult = (expected, quietMs, maxMs) => new Promise((resolve) => {
    const poll = () => {
      const now = performance.now();
      const last = L.counts.length ? L.counts[L.counts.length - 1] : [0, 0];
      const reached = L.counts.find((c) => c[1] >= expected);
      const stable = last[1] > 0 && now - last[0] >= 2000;  // a virtualised outline: fewer rows, stable
      const quiet = now - L.lastMutation >= quietMs;
      if (((reached || stable) && quiet) || now > maxMs) {
        L.stopped = true;
        observer.disconnect();
        const hydrated = document.getElementById('hydrated');
        resolve({ rowsShown: reached ? reached[0] : last[0], quiet: L.lastMutation, rows: last[1],
                  reached: !!reached, timedOut: now > maxMs && !((reached || stable) && quiet),
                  hydrated: hydrated ? hydrated.textContent : null });
      } else setTimeout(poll, 25);
    };
    poll();
  });

  // Idle: no socket frame for socketMs and no DOM change for domMs (before each click) --
  B.idle = (socketMs, domMs, maxMs) => new Promise((resolve) => {
    const start = performance.now();
    let lastMutation = start;
    const observer = new MutationObserver(() => { lastMutation = performance.now(); });
    observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    const poll = () => {
      const now = performance.now();
      const idle = now - B.lastFrame >= socketMs && now - lastMutation >= domMs;
      if (idle || now - start > maxMs) { observer.disconnect(); resolve({ waited: now - start, idle }); }
      else setTimeout(poll, 20);
    };
    setTimeout(poll, domMs);
  });

  // One action: arm, then the test clicks; result() resolves once visible + quiet ----
  B.arm = (spec) => {
    if (B.st && B.st.cleanup) B.st.cleanup();
    B.frames = [];
    const st = B.st = { t0: null, visible: null, done: false, lastMutation: null };
    // The last DOM change after the click: when the page finished redrawing.
    const mutations = new MutationObserver(() => { if (st.t0 !== null) st.lastMutation = performance.now(); });
    mutations.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    const check = spec.check ? new Function('args', 'B', spec.check) : null;
    let resolve;
    st.promise = new Promise((r) => { resolve = r; });
    const type = spec.trigger === 'enter' ? 'keydown' : 'click';
    const finish = (error) => {
      if (st.done) return;
      st.done = true;
      st.cleanup();
      const after = B.frames.filter((f) => f[0] >= st.t0);
      const ins = after.filter((f) => f[1] === 1), outs = after.filter((f) => f[1] === 0);
      const sum = (fs) => fs.reduce((a, f) => a + f[2], 0);
      resolve({
        visible: st.visible === null ? null : st.visible - st.t0,
        firstIn: ins.length ? ins[0][0] - st.t0 : null,
        confirm: ins.length ? ins[ins.length - 1][0] - st.t0 : null,
        settled: st.lastMutation === null ? null : st.lastMutation - st.t0,
        framesIn: ins.length, framesOut: outs.length, bytesIn: sum(ins), bytesOut: sum(outs),
        error: error || null,
      });
    };
    const tick = () => {
      if (st.done) return;
      const now = performance.now();
      if (st.visible === null) {
        if (spec.visibleBy === 'frame') {
          const f = B.frames.find((f) => f[1] === 1 && f[0] >= st.t0);
          if (f) st.visible = f[0];
        } else {
          let ok = false;
          try { ok = !!check(spec.args, B); } catch (e) { ok = false; }
          if (ok) st.visible = now;
        }
      }
      if (st.visible !== null) {
        let last = st.visible;
        for (const f of B.frames) if (f[0] >= st.t0 && f[0] > last) last = f[0];
        if (now - last >= spec.quietMs) return finish(null);
      }
      if (now - st.t0 > spec.timeoutMs) {
        return finish(st.visible === null ? `not visible within ${spec.timeoutMs} ms` : 'the socket never went quiet');
      }
      requestAnimationFrame(tick);
    };
    const onEvent = (e) => {
      if (st.t0 !== null || (type === 'keydown' && e.key !== 'Enter')) return;
      st.t0 = e.timeStamp;  // same clock as performance.now()
      requestAnimationFrame(tick);
    };
    window.addEventListener(type, onEvent, true);
    const never = setTimeout(() => { if (st.t0 === null) { st.t0 = performance.now(); finish(`no ${type} arrived`); } },
                             spec.timeoutMs);
    st.cleanup = () => { window.removeEventListener(type, onEvent, true); clearTimeout(never); mutations.disconnect(); };
  };
  B.result = () => B.st.promise;
  B.disarm = () => { if (B.st && !B.st.done) { B.st.done = true; B.st.cleanup(); } };
})();
"""

# Visibility checks: bodies of function(args, B) -> bool, run once per animation frame.
CHECK_PUBLISH = r"""
const b = [...document.querySelectorAll('button')].find((b) => /^(Publish|Unpublish)$/.test(b.textContent.trim()));
return !!b && b.textContent.trim() === args.want;
"""
CHECK_CHAPTER_AT = r"""
const r = B.chapterRows()[args.index];
return !!r && B.chapterKey(r) === args.key;
"""
CHECK_EXPANDED = r"""
const c = B.findChapter(args.key);
if (!c) return false;
const b = B.expandButton(c);
if (b && b.getAttribute('aria-expanded') !== 'true') return false;
return B.videoRows(c).filter(B.shown).length >= args.count;
"""
CHECK_VIDEO_AT = r"""
const c = B.findChapter(args.chapter);
if (!c) return false;
const r = B.videoRows(c)[args.index];
return !!r && B.videoKey(r) === args.key;
"""
CHECK_IN_CHAPTER = r"""
const want = new Set(args.keys), seen = new Map();
for (const v of B.videoRows()) {
  const k = B.videoKey(v);
  if (!want.has(k)) continue;
  const li = v.closest('li[data-testid="chapter-row"]');
  const inTarget = !!li && B.chapterKey(li) === args.target && B.shown(v);
  seen.set(k, (seen.get(k) ?? true) && inTarget);
}
return args.keys.every((k) => seen.get(k) === true);
"""
CHECK_DIALOG = r"""
return [...document.querySelectorAll('[role="dialog"]')].some((d) =>
  B.shown(d) && [...d.querySelectorAll('button')].some((b) => /^Move to chapter \d+: /.test(B.nameOf(b))));
"""
CHECK_CHECKED = r"""
const v = B.videoRows().find((v) => B.videoKey(v) === args.key);
const cb = v && v.querySelector('[role="checkbox"], input[type="checkbox"]');
return !!cb && (cb.getAttribute('aria-checked') === 'true' || cb.checked === true || cb.getAttribute('data-state') === 'checked');
"""

ACTIONS = [
    ("publish", "publish toggle"),
    ("rename_chapter", "rename chapter"),
    ("move_chapter_down", "move chapter down"),
    ("expand_chapter", "expand a chapter"),
    ("move_video_up", "move video up"),
    ("open_move_dialog", "  open the move dialog"),
    ("move_video_to_chapter", "move video to another chapter"),
    ("rename_video", "rename video"),
    ("select_video", "  select a video (checkbox)"),
    ("batch_move", f"select {BATCH} videos, move them"),
]
# Rows reported alongside a main action, not goals of their own.
SECONDARY = {"open_move_dialog", "select_video"}


class BenchmarkFailure(Exception):
    """The benchmark cannot go on (server, seeding, log-in)."""


class ActionFailed(Exception):
    """One repetition of an action did not complete."""


class NotAvailable(Exception):
    """The page has no controls for this action."""


# Numbers ------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", part)
        if not match:
            raise argparse.ArgumentTypeError(f"{part!r} is not a size such as 50x20")
        chapters, videos = int(match.group(1)), int(match.group(2))
        if not 2 <= chapters <= 500 or not 2 <= videos <= 1000:
            raise argparse.ArgumentTypeError(f"{part!r}: 2..500 chapters of 2..1000 videos")
        sizes.append((chapters, videos))
    return sizes


def size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def summarize(values: list[float | None]) -> dict | None:
    xs = [v for v in values if v is not None]
    if not xs:
        return None
    return {"n": len(xs), "p50": round(statistics.median(xs), 1), "p95": round(percentile(xs, 0.95), 1),
            "min": round(min(xs), 1), "max": round(max(xs), 1)}


def load_average() -> dict:
    one, five, fifteen = os.getloadavg()
    try:
        text = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        text = ""
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2), "uptime": text}


# Seeding through the services -----------------------------------------------------------------


def create_bench_user(engine) -> tuple[int, str]:
    from sqlmodel import Session

    from course_app.services.users import create_user

    email = f"editor-scale-{uuid.uuid4().hex[:10]}@example.com"
    with Session(engine, expire_on_commit=False) as session:
        user = create_user(session=session, email=email, password=PASSWORD, role="instructor")
        session.commit()
        return user.id, email


def seed_course(engine, user_id: int, chapters: int, videos: int) -> dict:
    """A course of ``chapters`` x ``videos``; one transaction per chapter."""
    from sqlmodel import Session

    from course_app.models import User
    from course_app.services.courses import add_chapter, create_course
    from course_app.services.processing import set_enqueuer, transition
    from course_app.services.videos import begin_upload, fail_upload, finish_upload
    from course_app.storage.base import StoredObject

    started = time.perf_counter()
    set_enqueuer(lambda video_id, delay: None)  # ready at once (below): nothing for the app's worker
    with Session(engine, expire_on_commit=False) as session:
        user = session.get(User, user_id)
        course = create_course(session=session, user=user, title=f"Editor scale {chapters:03d}x{videos:02d}",
                               description="Seeded by benchmarks/editor_scale.py.")
        session.commit()
        course_id = course.id
    chapter_ids: list[str] = []
    status_by_key: dict[str, str] = {}  # video id and "Title of <file>" label -> status
    counts = {"ready": 0, "uploading": 0, "failed": 0}
    for c in range(chapters):
        with Session(engine, expire_on_commit=False) as session:
            user = session.get(User, user_id)
            chapter = add_chapter(session=session, user=user, course_id=course_id, title=f"Chapter {c + 1:03d}")
            for v in range(videos):
                j = c * videos + v
                filename = f"c{c + 1:03d}-v{v + 1:02d}.mp4"
                size = 5_000_000 + (j * 7_919_993) % 900_000_000
                video = begin_upload(session=session, user=user, course_id=course_id, chapter_id=chapter.id,
                                     filename=filename, title=f"Video {c + 1:03d}-{v + 1:02d}",
                                     content_type="video/mp4", declared_size=size, max_bytes=MAX_BYTES)
                if j % 20 == 7:  # 5 %: still uploading
                    status = "uploading"
                elif j % 50 == 13:  # 2 %: failed, row kept with its reason
                    fail_upload(session=session, video_id=video.id, remove_row=False,
                                reason="Storage did not confirm the upload (seeded by the benchmark).")
                    status = "failed"
                else:
                    finish_upload(session=session, video_id=video.id, stored=StoredObject(
                        key=video.storage_key, file_id=f"bench-{video.id}", size=size,
                        sha1=hashlib.sha1(video.id.bytes).hexdigest(), content_type="video/mp4"))
                    # As processing leaves it (no bytes are stored, so no worker may run it).
                    transition(session, video.id, status="ready", stage=None, lease_owner=None, lease_expires_at=None,
                               duration_seconds=60.0 + j, width=1280, height=720)
                    status = "ready"
                counts[status] += 1
                status_by_key[str(video.id)] = status
                status_by_key[f"Title of {filename}"] = status
            session.commit()
            chapter_ids.append(str(chapter.id))
    return {"course_id": str(course_id), "chapter_ids": chapter_ids, "status_by_key": status_by_key,
            "statuses": counts, "seconds": round(time.perf_counter() - started, 2)}


# Queries per load ----------------------------------------------------------------------------


@contextmanager
def all_ready(engine, course_id: str):
    """The course's videos that are not ready marked ready, put back on exit."""
    from sqlmodel import Session, select

    from course_app.models import Video

    with Session(engine) as session:
        rows = session.exec(select(Video).where(Video.course_id == uuid.UUID(course_id),
                                                Video.status != "ready")).all()
        before = {row.id: row.status for row in rows}
        for row in rows:
            row.status = "ready"
        session.commit()
    try:
        yield
    finally:
        with Session(engine) as session:
            for row in session.exec(select(Video).where(Video.id.in_(list(before)))).all():  # type: ignore[attr-defined]
                row.status = before[row.id]
            session.commit()


def count_queries(engine, user_id: int, course_id: str, chapter_ids: list[str]) -> dict:
    """SQL statements of one ``editor_outline`` call, with 0, 1 and 3 chapters open."""
    try:
        from course_app.services.outline import editor_outline
    except ImportError:
        return {"error": "n/a (services.outline.editor_outline missing)"}
    from sqlalchemy import event
    from sqlmodel import Session

    from course_app.models import User

    statements: list[str] = []
    counting = [False]

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if counting[0]:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    result: dict = {"by_open_chapters": {}, "id_type": "str"}
    try:
        for open_count in (0, 1, 3):
            opened = chapter_ids[:open_count]
            runs = []
            for _ in range(2):  # warm-up, then counted
                with Session(engine, expire_on_commit=False) as session:
                    user = session.get(User, user_id)
                    statements.clear()
                    counting[0] = True
                    try:
                        ids: list = opened if result["id_type"] == "str" else [uuid.UUID(i) for i in opened]
                        try:
                            editor_outline(session=session, user=user, course_id=course_id, open_chapter_ids=ids)
                        except Exception:
                            if result["id_type"] != "str" or not opened:
                                raise
                            result["id_type"] = "uuid.UUID"  # the service wants UUIDs, not the page's strings
                            statements.clear()
                            editor_outline(session=session, user=user, course_id=uuid.UUID(course_id),
                                           open_chapter_ids=[uuid.UUID(i) for i in opened])
                    finally:
                        counting[0] = False
                    runs.append(len(statements))
                    session.rollback()
            result["by_open_chapters"][str(open_count)] = runs[-1]
            if runs[0] != runs[-1]:
                result.setdefault("first_call", {})[str(open_count)] = runs[0]
    except Exception as exc:  # the service is being written: report, do not stop
        return {"error": f"error: {type(exc).__name__}: {exc}"[:300]}
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return result


# The browser side --------------------------------------------------------------------------


class EditorBench:
    """One size: a logged-in page on the seeded course's editor."""

    def __init__(self, page, frames: list, seed: dict, chapters: int, videos: int, reps: int, quiet_ms: int,
                 label: str) -> None:
        self.page = page
        self.frames = frames  # Playwright: ("out" | "in", bytes)
        self.seed = seed
        self.chapters = chapters
        self.videos = videos
        self.reps = reps
        self.quiet_ms = quiet_ms
        self.label = label
        self.seeded_count = {cid: videos for cid in seed["chapter_ids"]}
        self.plan: dict = {}
        self.partial: dict[str, list[dict]] = {}

    # Primitives ------------------------------------------------------------------------
    def settle(self) -> None:
        """Before a click: the socket quiet for --quiet-ms and the DOM for 100 ms (at most 10 s)."""
        self.page.evaluate("([s, d, m]) => window.__bench.idle(s, d, m)", [self.quiet_ms, 100, 10_000])

    def snapshot(self) -> list[dict]:
        return self.page.evaluate("() => window.__bench.snapshot()")

    def find(self, snap: list[dict], key: str) -> dict:
        for chapter in snap:
            if chapter["key"] == key:
                return chapter
        raise ActionFailed(f"chapter {key!r} is not on the page")

    def chapter_row(self, index: int):
        return self.page.locator('li[data-testid="chapter-row"]').nth(index)

    def video_row(self, chapter_index: int, video_key: str):
        chapter = self.chapter_row(chapter_index)
        if not video_key.startswith("Title of "):
            return chapter.locator(f'li[data-testid="video-row"][data-video-id="{video_key}"]')
        return chapter.locator('li[data-testid="video-row"]').filter(
            has=self.page.get_by_label(video_key, exact=True))

    def measure(self, do: Callable[[], None], *, check: str | None = None, args: dict | None = None,
                trigger: str = "click", visible_by: str = "dom") -> dict:
        self.settle()
        self.frames.clear()
        self.page.evaluate("s => window.__bench.arm(s)", {
            "check": check, "args": args or {}, "trigger": trigger, "visibleBy": visible_by,
            "quietMs": self.quiet_ms, "timeoutMs": ACTION_TIMEOUT_MS})
        try:
            do()
        except Exception:
            self.page.evaluate("() => window.__bench.disarm()")
            raise
        res = self.page.evaluate("() => window.__bench.result()")
        if res["error"]:
            raise ActionFailed(res["error"])
        sent = [n for direction, n in self.frames if direction == "out"]
        received = [n for direction, n in self.frames if direction == "in"]
        if not sent and not received and (res["bytesIn"] or res["bytesOut"]):
            sent, received = [res["bytesOut"]], [res["bytesIn"]]  # Playwright saw no frames: the page's count
        rounded = lambda x: None if x is None else round(x, 1)  # noqa: E731
        return {
            "visible_ms": rounded(res["visible"]),
            "confirm_ms": rounded(res["confirm"]),
            "settled_ms": rounded(res["settled"]),
            "first_frame_ms": rounded(res["firstIn"]),
            "bytes_sent": sum(sent), "bytes_received": sum(received),
            "frames_sent": len(sent), "frames_received": len(received),
            "page_bytes_sent": res["bytesOut"], "page_bytes_received": res["bytesIn"],
        }

    def click(self, locator) -> Callable[[], None]:
        return lambda: locator.click(timeout=CLICK_TIMEOUT_MS)

    def wait_for(self, body: str, args: dict, timeout: int = ACTION_TIMEOUT_MS) -> None:
        self.page.wait_for_function(f"(args) => {{ const B = window.__bench; {body} }}", arg=args, timeout=timeout)

    def ready_first(self, videos: list[dict], start: int, lowest: int = 0) -> int:
        """The index from ``start`` on (wrapping, not below ``lowest``) of a ``ready`` video."""
        span = len(videos) - lowest
        for step in range(span):
            index = lowest + (start - lowest + step) % span
            if self.seed["status_by_key"].get(videos[index]["key"]) == "ready":
                return index
        return start

    def middle_index(self, n: int, i: int) -> int:
        """A chapter from the middle of the outline, never the last (C >= 2)."""
        low = max(self.plan.get("first_free", 0), n // 2)
        low = min(low, n - 2)
        return low + i % max(1, min(10, n - 1 - low))

    # Load ------------------------------------------------------------------------------
    def load(self, url: str) -> dict:
        self.page.goto(url, wait_until="domcontentloaded")
        res = self.page.evaluate("([n, q, m]) => window.__bench.loadResult(n, q, m)",
                                 [self.chapters, LOAD_QUIET_MS, LOAD_MAX_MS])
        if res["timedOut"] and res["rows"] == 0:
            raise BenchmarkFailure(f"the editor showed no chapter row within {LOAD_MAX_MS / 1000:.0f} s")
        return {"rows_shown_ms": round(res["rowsShown"], 1), "quiet_ms": round(res["quiet"], 1),
                "rows_in_dom": res["rows"], "all_rows": res["reached"], "hydrated": res["hydrated"]}

    # Preparing the outline ------------------------------------------------------------------
    def prepare(self) -> None:
        """Collapse all, then open the chapters the video actions use (the outline's top
        chapters: S = source, T = target, the batch's source chapters, T2 = batch target)."""
        from playwright.sync_api import expect

        snap = self.snapshot()
        n = len(snap)
        batch_sources = min(max(1, math.ceil(BATCH / self.videos)), max(1, n - 3))
        roles = ["S", "T"] + [f"B{k + 1}" for k in range(batch_sources)] + ["T2"]
        # More open chapters until OPEN_VIDEO_ROWS video rows are shown, so every size redraws
        # the same number of rows (two chapters stay closed for the chapter actions).
        fillers = max(0, min(math.ceil((OPEN_VIDEO_ROWS - self.videos * len(roles)) / self.videos),
                             n - len(roles) - 2))
        roles = (roles + [f"F{k + 1}" for k in range(fillers)])[:n]
        self.plan = {"roles": {role: snap[i]["key"] for i, role in enumerate(roles)},
                     "first_free": len(roles), "expandable": any(c["expanded"] is not None for c in snap)}
        if not self.plan["expandable"]:
            return  # every chapter shows its videos already
        collapse = self.page.get_by_role("button", name="Collapse all", exact=True)
        if collapse.count():
            self.settle()
            collapse.first.click(timeout=CLICK_TIMEOUT_MS)
            self.wait_for("return B.chapterRows().every((li) => { const b = B.expandButton(li); "
                          "return !b || b.getAttribute('aria-expanded') !== 'true'; });", {})
        for role in roles:
            key = self.plan["roles"][role]
            chapter = self.find(self.snapshot(), key)
            if chapter["expanded"]:
                continue
            self.settle()
            button = self.chapter_row(chapter["index"]).get_by_role("button", name=f"Videos of {chapter['title']}",
                                                                    exact=True)
            button.click(timeout=CLICK_TIMEOUT_MS)
            expect(button).to_have_attribute("aria-expanded", "true", timeout=ACTION_TIMEOUT_MS)
            self.wait_for(CHECK_EXPANDED, {"key": key, "count": self.seeded_count.get(key, 1)})
        self.settle()

    # Actions ----------------------------------------------------------------------------------
    def run_action(self, name: str) -> dict:
        self.partial = {}
        return getattr(self, f"act_{name}")()

    def samples_of(self, key: str) -> list[dict]:
        """The list an action appends to; kept in ``partial`` if the action fails mid-way."""
        return self.partial.setdefault(key, [])

    def act_publish(self) -> dict:
        button = self.page.get_by_role("button", name=re.compile(r"^(Publish|Unpublish)$")).first
        if not button.count():
            raise NotAvailable("no Publish/Unpublish button")
        samples = self.samples_of("publish")
        # Publishing refuses while videos are not ready: the seed's uploading and failed
        # rows count as ready in the database for this action only (the page is not told).
        with all_ready(self.seed["engine"], self.seed["course_id"]):
            for _ in range(self.reps):
                want = "Unpublish" if button.inner_text().strip() == "Publish" else "Publish"
                samples.append(self.measure(self.click(button), check=CHECK_PUBLISH, args={"want": want}))
                self.page.wait_for_timeout(PAUSE_MS)
        return {"publish": samples}

    def _rename(self, box, title: str, i: int) -> dict:
        new_title = re.sub(r" \(r\d+\)$", "", title) + f" (r{i})"
        box.fill(new_title, timeout=CLICK_TIMEOUT_MS)
        sample = self.measure(lambda: box.press("Enter", timeout=CLICK_TIMEOUT_MS), trigger="enter",
                              visible_by="frame")
        sample["new_title"] = new_title
        return sample

    def act_rename_chapter(self) -> dict:
        samples = self.samples_of("rename_chapter")
        for i in range(self.reps):
            snap = self.snapshot()
            k = self.middle_index(len(snap), i)
            box = self.page.get_by_label(f"Chapter {k + 1} title", exact=True)
            if not box.count():
                raise NotAvailable(f"no input labelled 'Chapter {k + 1} title'")
            sample = self._rename(box, snap[k]["title"], i)
            after = self.find(self.snapshot(), snap[k]["key"] if snap[k]["id"] else sample["new_title"])
            if after["title"] != sample["new_title"]:
                raise ActionFailed(f"chapter {k + 1} reads {after['title']!r}, not {sample['new_title']!r}")
            samples.append(sample)
            self.page.wait_for_timeout(PAUSE_MS)
        return {"rename_chapter": samples}

    def act_move_chapter_down(self) -> dict:
        samples = self.samples_of("move_chapter_down")
        for i in range(self.reps):
            snap = self.snapshot()
            k = self.middle_index(len(snap), i)
            chapter = snap[k]
            button = self.chapter_row(k).get_by_role("button", name=f"Move {chapter['title']} down", exact=True)
            if not button.count():
                raise NotAvailable(f"no 'Move {chapter['title']} down' button")
            samples.append(self.measure(self.click(button), check=CHECK_CHAPTER_AT,
                                        args={"index": k + 1, "key": chapter["key"]}))
            self.page.wait_for_timeout(PAUSE_MS)
        return {"move_chapter_down": samples}

    def act_expand_chapter(self) -> dict:
        if not self.plan.get("expandable"):
            raise NotAvailable("no expand button ('Videos of <title>' with aria-expanded): every chapter is open")
        snap = self.snapshot()
        targets = [c["key"] for c in snap[self.plan["first_free"]:] if self.seeded_count.get(c["key"])]
        if not targets:
            raise NotAvailable("no collapsed chapter with known videos to expand")
        samples = self.samples_of("expand_chapter")
        for i in range(self.reps):
            key = targets[i % len(targets)]
            chapter = self.find(self.snapshot(), key)
            button = self.chapter_row(chapter["index"]).get_by_role("button", name=f"Videos of {chapter['title']}",
                                                                    exact=True)
            if chapter["expanded"]:  # left open by something else: close it first (untimed)
                self.settle()
                button.click(timeout=CLICK_TIMEOUT_MS)
                self.wait_for("const c = B.findChapter(args.key); const b = c && B.expandButton(c); "
                              "return !!b && b.getAttribute('aria-expanded') === 'false';", {"key": key})
            samples.append(self.measure(self.click(button), check=CHECK_EXPANDED,
                                        args={"key": key, "count": self.seeded_count[key]}))
            self.settle()
            button.click(timeout=CLICK_TIMEOUT_MS)  # collapse again, untimed
            self.wait_for("const c = B.findChapter(args.key); const b = c && B.expandButton(c); "
                          "return !!b && b.getAttribute('aria-expanded') === 'false' && "
                          "B.videoRows(c).filter(B.shown).length === 0;", {"key": key})
            self.page.wait_for_timeout(PAUSE_MS)
        return {"expand_chapter": samples}

    def act_move_video_up(self) -> dict:
        source = self.plan["roles"]["S"]
        samples = self.samples_of("move_video_up")
        for i in range(self.reps):
            chapter = self.find(self.snapshot(), source)
            videos = chapter["videos"]
            if len(videos) < 2:
                raise ActionFailed(f"the source chapter shows {len(videos)} videos")
            k = self.ready_first(videos, 1 + i % (len(videos) - 1), lowest=1)
            video = videos[k]
            button = self.video_row(chapter["index"], video["key"]).get_by_role(
                "button", name=f"Move video {video['title']} up", exact=True)
            if not button.count():
                raise NotAvailable(f"no 'Move video {video['title']} up' button")
            samples.append(self.measure(self.click(button), check=CHECK_VIDEO_AT,
                                        args={"chapter": source, "index": k - 1, "key": video["key"]}))
            self.page.wait_for_timeout(PAUSE_MS)
        return {"move_video_up": samples}

    def _dialog_target(self, snap: list[dict], target_key: str):
        target = self.find(snap, target_key)
        dialog = self.page.get_by_role("dialog", name="Move to chapter")
        return dialog.get_by_role("button", name=f"Move to chapter {target['index'] + 1}: {target['title']}",
                                  exact=True)

    def act_move_video_to_chapter(self) -> dict:
        roles = self.plan["roles"]
        if not self.page.get_by_role("button", name=re.compile(r"^Move video .+ to another chapter$")).count():
            raise NotAvailable("no 'Move video <title> to another chapter' button on the page")
        dialog_samples, samples = self.samples_of("open_move_dialog"), self.samples_of("move_video_to_chapter")
        moving = None
        for i in range(self.reps):
            source, target = (roles["S"], roles["T"]) if i % 2 == 0 else (roles["T"], roles["S"])
            snap = self.snapshot()
            chapter = self.find(snap, source)
            if moving is None or i % 2 == 0:
                if not chapter["videos"]:
                    raise ActionFailed("the source chapter shows no videos")
                moving = chapter["videos"][self.ready_first(chapter["videos"], (i // 2) % len(chapter["videos"]))]
            else:
                moving = next((v for v in chapter["videos"] if v["key"] == moving["key"]), None)
                if moving is None:
                    raise ActionFailed("the video moved on the previous repetition is not in its new chapter")
            opener = self.video_row(chapter["index"], moving["key"]).get_by_role(
                "button", name=f"Move video {moving['title']} to another chapter", exact=True)
            if not opener.count():
                raise NotAvailable(f"no 'Move video {moving['title']} to another chapter' button")
            dialog_samples.append(self.measure(self.click(opener), check=CHECK_DIALOG))
            choice = self._dialog_target(snap, target)
            if not choice.count():
                raise NotAvailable("no dialog 'Move to chapter' with a 'Move to chapter <N>: <title>' button")
            samples.append(self.measure(self.click(choice), check=CHECK_IN_CHAPTER,
                                        args={"keys": [moving["key"]], "target": target}))
            self.page.wait_for_timeout(PAUSE_MS)
        return {"open_move_dialog": dialog_samples, "move_video_to_chapter": samples}

    def act_rename_video(self) -> dict:
        source = self.plan["roles"]["S"]
        samples = self.samples_of("rename_video")
        for i in range(self.reps):
            chapter = self.find(self.snapshot(), source)
            videos = chapter["videos"]
            if not videos:
                raise ActionFailed("the source chapter shows no videos")
            video = videos[self.ready_first(videos, i % len(videos))]
            box = self.video_row(chapter["index"], video["key"]).get_by_label(video["label"], exact=True)
            if not box.count():
                raise NotAvailable(f"no input labelled {video['label']!r}")
            sample = self._rename(box, video["title"], i)
            after = next((v for v in self.find(self.snapshot(), source)["videos"] if v["key"] == video["key"]), None)
            if after is None or after["title"] != sample["new_title"]:
                raise ActionFailed(f"{video['label']} reads {after and after['title']!r}, not {sample['new_title']!r}")
            samples.append(sample)
            self.page.wait_for_timeout(PAUSE_MS)
        return {"rename_video": samples}

    def act_batch_move(self) -> dict:
        roles = self.plan["roles"]
        if not self.page.locator('li[data-testid="video-row"]').get_by_role("checkbox").count():
            raise NotAvailable("no 'Select <title>' checkbox in the video rows")
        sources = [key for role, key in roles.items() if role.startswith("B")]
        snap = self.snapshot()
        keys = [v["key"] for key in sources for v in self.find(snap, key)["videos"]][:BATCH]
        if len(keys) < BATCH:
            raise ActionFailed(f"the batch chapters show {len(keys)} videos, not {BATCH}")
        toolbar = self.page.get_by_role("toolbar", name="Selected videos")
        select_samples, samples = self.samples_of("select_video"), self.samples_of("batch_move")
        for i in range(self.reps):
            target = roles["T2"] if i % 2 == 0 else sources[0]
            if toolbar.count():  # a selection left from the previous move
                self.settle()
                clear = toolbar.get_by_role("button", name="Clear selection", exact=True)
                if clear.count():  # the toolbar may go on its own meanwhile (the move's answer)
                    try:
                        clear.click(timeout=5_000)
                    except Exception:  # Playwright's TimeoutError
                        if toolbar.count():
                            raise
                toolbar.wait_for(state="detached", timeout=ACTION_TIMEOUT_MS)
            snap = self.snapshot()
            where = {v["key"]: (c, v) for c in snap for v in c["videos"]}
            for n, key in enumerate(keys):
                if key not in where:
                    raise ActionFailed(f"video {key} is not shown in an open chapter")
                chapter, video = where[key]
                box = self.video_row(chapter["index"], key).get_by_role("checkbox", name=f"Select {video['title']}",
                                                                        exact=True)
                if not box.count():
                    raise NotAvailable(f"no checkbox 'Select {video['title']}'")
                if n == 0:
                    select_samples.append(self.measure(self.click(box), check=CHECK_CHECKED, args={"key": key}))
                else:
                    box.click(timeout=CLICK_TIMEOUT_MS)
                    self.wait_for(CHECK_CHECKED, {"key": key})
            opener = toolbar.get_by_role("button", name="Move selected videos", exact=True)
            if not opener.count():
                raise NotAvailable("no toolbar 'Selected videos' with 'Move selected videos'")
            self.settle()
            opener.click(timeout=CLICK_TIMEOUT_MS)
            self.wait_for(CHECK_DIALOG, {})
            choice = self._dialog_target(snap, target)
            if not choice.count():
                raise NotAvailable("no dialog 'Move to chapter' with a 'Move to chapter <N>: <title>' button")
            samples.append(self.measure(self.click(choice), check=CHECK_IN_CHAPTER,
                                        args={"keys": keys, "target": target}))
            self.page.wait_for_timeout(PAUSE_MS)
        return {"select_video": select_samples, "batch_move": samples}


def summarize_action(samples: list[dict]) -> dict:
    return {
        "visible_ms": summarize([s["visible_ms"] for s in samples]),
        "confirm_ms": summarize([s["confirm_ms"] for s in samples]),
        "settled_ms": summarize([s["settled_ms"] for s in samples]),
        "first_frame_ms": summarize([s["first_frame_ms"] for s in samples]),
        "bytes_sent_median": int(statistics.median(s["bytes_sent"] for s in samples)),
        "bytes_received_median": int(statistics.median(s["bytes_received"] for s in samples)),
        "bytes_received_max": max(s["bytes_received"] for s in samples),
        "frames_received_median": statistics.median(s["frames_received"] for s in samples),
    }


def measure_size(browser, base_url: str, email: str, seed: dict, chapters: int, videos: int, reps: int,
                 loads: int, quiet_ms: int) -> dict:
    label = size_name((chapters, videos))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        context.add_init_script(PAGE_HARNESS)
        page = context.new_page()
        frames: list[tuple[str, int]] = []

        def payload_size(payload) -> int:
            if isinstance(payload, dict):  # older Playwright passed {"payload": ...}
                payload = payload.get("payload", "")
            if isinstance(payload, str):
                return 0 if payload in ("2", "3") else len(payload.encode())
            return len(payload or b"")

        def on_socket(ws) -> None:
            ws.on("framesent", lambda p: (n := payload_size(p)) and frames.append(("out", n)))
            ws.on("framereceived", lambda p: (n := payload_size(p)) and frames.append(("in", n)))

        page.on("websocket", on_socket)
        reply = page.request.post(f"{base_url}/api/auth/login", data={"email": email, "password": PASSWORD},
                                  headers={"Origin": base_url})
        if reply.status != 200:
            raise BenchmarkFailure(f"log-in answered {reply.status}: {reply.text()[:300]}")

        bench = EditorBench(page, frames, seed, chapters, videos, reps, quiet_ms, label)
        url = f"{base_url}/courses/{seed['course_id']}"
        result: dict = {"loads": [], "actions": {}}
        for attempt in range(loads):
            load = bench.load(url)
            result["loads"].append(load)
            print(f"[{label}] load {attempt + 1}/{loads}: rows shown {load['rows_shown_ms']:.0f} ms, quiet "
                  f"{load['quiet_ms']:.0f} ms ({load['rows_in_dom']} rows in the DOM)", flush=True)
        from playwright.sync_api import expect

        expect(page.locator("#hydrated")).to_have_text("true", timeout=ACTION_TIMEOUT_MS)
        bench.prepare()
        result["plan"] = bench.plan
        for name, _ in ACTIONS:
            if name in SECONDARY:
                continue
            began = time.perf_counter()
            try:
                measured = bench.run_action(name)
                for key, samples in measured.items():
                    result["actions"][key] = {"samples": samples, **summarize_action(samples)}
            except NotAvailable as why:
                for key in _rows_of(name):
                    result["actions"][key] = {"na": str(why)}
                print(f"[{label}] {name}: n/a: {why}", flush=True)
                _close_dialogs(page)
                continue
            except Exception as exc:  # keep what was measured, report, go on with the next action
                for key in _rows_of(name):
                    samples = bench.partial.get(key) or []
                    result["actions"][key] = {"error": f"{type(exc).__name__}: {exc}"[:400], "samples": samples,
                                              **(summarize_action(samples) if samples else {})}
                print(f"[{label}] {name}: FAILED after {len(bench.partial.get(name) or [])} samples: "
                      f"{type(exc).__name__}: {str(exc)[:300]}", flush=True)
                _close_dialogs(page)
                continue
            for key in _rows_of(name):
                r = result["actions"].get(key, {})
                if r.get("visible_ms"):
                    v, c = r["visible_ms"], r["confirm_ms"]
                    confirmed = "-" if not c else f"p50 {c['p50']:.0f} p95 {c['p95']:.0f} ms"
                    print(f"[{label}] {key}: click->visible p50 {v['p50']:.0f} p95 {v['p95']:.0f} ms; confirmed "
                          f"{confirmed}; bytes out {r['bytes_sent_median']} in {r['bytes_received_median']} "
                          f"({time.perf_counter() - began:.0f} s)", flush=True)
        return result
    finally:
        context.close()


def _close_dialogs(page) -> None:
    """Escape out of a dialog an interrupted action left open."""
    try:
        if page.get_by_role("dialog").count():
            page.keyboard.press("Escape")
            page.wait_for_timeout(300)
    except Exception:
        pass


def _rows_of(action: str) -> list[str]:
    return {"move_video_to_chapter": ["open_move_dialog", "move_video_to_chapter"],
            "batch_move": ["select_video", "batch_move"]}.get(action, [action])


# Report --------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def build_rows(results: dict, names: list[str]) -> list[dict]:
    rows: list[dict] = []

    def add(size: str, measure: str, figure: str, goal: str = "-", met: bool | None = None, key: str = "") -> None:
        rows.append({"size": size, "measure": measure, "figure": figure, "goal": goal, "met": met, "key": key})

    for name in names:
        r = results[name]
        loads = r.get("loads", [])
        if loads:
            shown = [x["rows_shown_ms"] for x in loads]
            quiet = [x["quiet_ms"] for x in loads]
            note = "" if all(x["all_rows"] for x in loads) else f" (only {loads[-1]['rows_in_dom']} rows in the DOM)"
            add(name, f"load: rows shown ({len(loads)} loads)",
                f"median {fmt_ms(statistics.median(shown))} [{' / '.join(f'{x:,.0f}' for x in shown)}]{note}",
                key="load_rows_shown")
            goal = LOAD_GOAL_MS.get(name)
            median_quiet = statistics.median(quiet)
            add(name, f"load: quiet 500 ms ({len(loads)} loads)",
                f"median {fmt_ms(median_quiet)} [{' / '.join(f'{x:,.0f}' for x in quiet)}]",
                f"median < {goal / 1000:.1f} s" if goal else "-",
                None if not goal else median_quiet < goal, key="load_quiet")
        queries = r.get("queries", {})
        if "error" in queries:
            add(name, "queries per load (editor_outline)", queries["error"], "same at every size", None, "queries")
        elif queries:
            counts = queries["by_open_chapters"]
            add(name, "queries per load (editor_outline)",
                ", ".join(f"{k} open: {v}" for k, v in counts.items()), "same at every size", None, "queries")
        for key, label in ACTIONS:
            a = r.get("actions", {}).get(key)
            if a is None:
                continue
            if "na" in a or "error" in a:
                add(name, label.strip(), f"n/a: {a['na']}" if "na" in a else f"FAILED: {a['error']}",
                    "-", None if "na" in a else False, key)
                continue
            v, c = a["visible_ms"], a["confirm_ms"]
            secondary = key in SECONDARY
            goal_v = None if secondary else VISIBLE_P95_GOAL_MS.get(name)
            goal_c = None if secondary else CONFIRM_P95_GOAL_MS.get(name)
            unit = " (first socket answer)" if key in ("rename_chapter", "rename_video") else ""
            add(name, f"{label.strip()}: click->visible{unit}",
                f"p50 {fmt_ms(v['p50'])}, p95 {fmt_ms(v['p95'])} (n={v['n']})" if v else "-",
                f"p95 < {goal_v} ms" if goal_v else "-", None if not goal_v or not v else v["p95"] < goal_v,
                f"{key}.visible")
            settled = a.get("settled_ms")
            extra = f"; DOM settled p95 {fmt_ms(settled['p95'])}" if settled else ""
            add(name, f"{label.strip()}: click->confirmed",
                f"p50 {fmt_ms(c['p50'])}, p95 {fmt_ms(c['p95'])}{extra}" if c else "no frame received",
                f"p95 < {goal_c} ms" if goal_c else "-", None if not goal_c or not c else c["p95"] < goal_c,
                f"{key}.confirm")
            add(name, f"{label.strip()}: socket bytes",
                f"out {a['bytes_sent_median']:,} B, in {a['bytes_received_median']:,} B (median; max in "
                f"{a['bytes_received_max']:,} B)", "see across sizes", None, f"{key}.bytes")
    # Across sizes
    if "10x10" in results and "50x20" in results:
        for key, label in ACTIONS:
            if key in SECONDARY:
                continue
            small = results["10x10"].get("actions", {}).get(key, {}).get("visible_ms")
            large = results["50x20"].get("actions", {}).get(key, {}).get("visible_ms")
            if small and large:
                ratio = large["p95"] / small["p95"] if small["p95"] else float("inf")
                add("50x20/10x10", f"{label.strip()}: p95 ratio",
                    f"{ratio:.2f} ({fmt_ms(large['p95'])} vs {fmt_ms(small['p95'])})",
                    f"<= {P95_GROWTH_LIMIT:.2f}", ratio <= P95_GROWTH_LIMIT, f"{key}.p95_ratio")
    if len(names) > 1:
        for name in names:
            base = bytes_baseline(results, names, name)
            if base is None:
                continue
            for key, label in ACTIONS:
                if key in SECONDARY:
                    continue
                a0 = results[base].get("actions", {}).get(key, {})
                a = results[name].get("actions", {}).get(key, {})
                if "bytes_sent_median" not in a0 or "bytes_sent_median" not in a:
                    continue
                b0 = a0["bytes_sent_median"] + a0["bytes_received_median"]
                b = a["bytes_sent_median"] + a["bytes_received_median"]
                add(f"{name}/{base}", f"{label.strip()}: socket bytes", f"{b:,} B vs {b0:,} B",
                    f"<= {BYTES_GROWTH_FACTOR:.1f} x + {BYTES_GROWTH_SLACK} B",
                    b <= b0 * BYTES_GROWTH_FACTOR + BYTES_GROWTH_SLACK, f"{key}.bytes_growth")
        counted = {name: results[name].get("queries", {}).get("by_open_chapters") for name in names}
        if all(counted.values()):
            same = len({json.dumps(v, sort_keys=True) for v in counted.values()}) == 1
            add("all", "queries per load", "; ".join(f"{n}: {json.dumps(v)}" for n, v in counted.items()),
                "same at every size", same, "queries_constant")
    return rows


def bytes_baseline(results: dict, names: list[str], name: str) -> str | None:
    """The size ``name``'s socket bytes are compared with: the smallest other size with as
    many videos per chapter (an opened chapter or a moved batch carries that many rows),
    else the smallest size; None for the baseline itself."""
    def weight(n: str) -> int:
        return results[n]["chapters"] * results[n]["videos_per_chapter"]

    same = [n for n in names if results[n]["videos_per_chapter"] == results[name]["videos_per_chapter"]]
    pool = same if len(same) > 1 else names
    base = min(pool, key=weight)
    return None if base == name else base


def render(rows: list[dict]) -> str:
    headers = ["size", "measure", "figure", "goal", "met?"]
    cells = [headers] + [[r["size"], r["measure"], r["figure"], r["goal"],
                          "-" if r["met"] is None else ("yes" if r["met"] else "NO")] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def render_matrix(results: dict, names: list[str]) -> str:
    """Click -> visible p50/p95 and the load, one column per size."""
    headers = ["click -> visible p50 / p95 (ms)"] + names
    body = []
    loads = ["load quiet, median (ms)"]
    for name in names:
        q = [x["quiet_ms"] for x in results[name].get("loads", [])]
        loads.append(f"{statistics.median(q):,.0f}" if q else "-")
    body.append(loads)
    for key, label in ACTIONS:
        line = [label]
        for name in names:
            a = results[name].get("actions", {}).get(key, {})
            if "na" in a:
                line.append("n/a")
            elif "error" in a:
                line.append("failed")
            elif a.get("visible_ms"):
                line.append(f"{a['visible_ms']['p50']:,.0f} / {a['visible_ms']['p95']:,.0f}")
            else:
                line.append("-")
        body.append(line)
    cells = [headers] + body
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


# Main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("10x10,50x20,200x20"),
                        help="courses to measure, chapters x videos (default 10x10,50x20,200x20)")
    parser.add_argument("--reps", type=int, default=20, help="repetitions of each action (default 20)")
    parser.add_argument("--loads", type=int, default=3, help="page loads per size (default 3)")
    parser.add_argument("--quiet-ms", type=int, default=250,
                        help="socket silence that marks the server's confirmation as complete (default 250)")
    parser.add_argument("--url", help="an already running app (e.g. http://localhost:3000) instead of starting one")
    parser.add_argument("--database-url",
                        help="with --url: the app's database, seeded through the services "
                             "(default COURSE_DATABASE_URL, else the settings' database)")
    parser.add_argument("--web-dir", type=Path, default=Path("/tmp/bench-web"),
                        help="REFLEX_WEB_WORKDIR of the started app (default /tmp/bench-web)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "editor_scale.json",
                        help="where to write the results (default benchmarks/results/editor_scale.json)")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.loads < 1:
        parser.error("--reps and --loads must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="course-editor-scale-"))
    # This process imports course_app (seeding, query counts): give it a data folder of its own.
    os.environ.setdefault("COURSE_DATA_DIR", str(work / "client-data"))

    from playwright.sync_api import sync_playwright

    from course_app.db import make_engine

    started_at = datetime.now(timezone.utc)
    load_before = load_average()
    print(f"[machine] {os.cpu_count()} CPUs; {load_before['uptime']}", flush=True)
    server = None
    results: dict = {}
    names = [size_name(s) for s in args.sizes]
    try:
        if args.url:
            base_url = args.url.rstrip("/")
            database_url = args.database_url or os.environ.get("COURSE_DATABASE_URL")
            if not database_url:
                from course_app.settings import get_settings

                database_url = get_settings().resolved_database_url
        else:
            from tests.server import AppServer

            extra_env = {
                "REFLEX_WEB_WORKDIR": str(args.web_dir.resolve()),
                "COURSE_SIGNUP_RATE_LIMIT": "1000/hour",
                "COURSE_API_RATE_LIMIT": "100000/minute",
                "COURSE_LOGIN_RATE_LIMIT": "1000/minute",
                "PATH": os.pathsep.join([str(ROOT / ".venv" / "bin"), str(ROOT / ".tools" / "node_modules" / ".bin"),
                                         os.environ.get("PATH", "")]),
            }
            server = AppServer(data_dir=work / "app" / "data", log_path=work / "server.log", extra_env=extra_env)
            print(f"[app] starting reflex run --env prod on port {server.port} (web build in {args.web_dir}) ...",
                  flush=True)
            began = time.perf_counter()
            server.start()
            print(f"[app] up after {time.perf_counter() - began:.1f} s", flush=True)
            base_url, database_url = server.base_url, server.database_url
        engine = make_engine(database_url)
        user_id, email = create_bench_user(engine)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for (chapters, videos), name in zip(args.sizes, names):
                    print(f"[{name}] seeding {chapters} chapters x {videos} videos ...", flush=True)
                    seed = seed_course(engine, user_id, chapters, videos)
                    seed["engine"] = engine
                    print(f"[{name}] seeded in {seed['seconds']:.1f} s ({seed['statuses']})", flush=True)
                    queries = count_queries(engine, user_id, seed["course_id"], seed["chapter_ids"])
                    print(f"[{name}] queries per load: {queries.get('error') or queries['by_open_chapters']}",
                          flush=True)
                    measured = measure_size(browser, base_url, email, seed, chapters, videos, args.reps,
                                            args.loads, args.quiet_ms)
                    results[name] = {"chapters": chapters, "videos_per_chapter": videos,
                                     "course_id": seed["course_id"], "seed_seconds": seed["seconds"],
                                     "statuses": seed["statuses"], "queries": queries, **measured}
            finally:
                browser.close()
        engine.dispose()
    except BenchmarkFailure as failure:
        print(f"\nBENCHMARK FAILED: {failure}", file=sys.stderr)
        if server is not None:
            print(f"[app] server log (last lines):\n{server.log_tail(40)}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    load_after = load_average()
    rows = build_rows(results, names)
    matrix = render_matrix(results, names)
    report = render(rows)
    print()
    print(matrix)
    print()
    print(report)
    print(f"\nload average before {load_before['load_1m']} / after {load_after['load_1m']} (1 min), "
          f"{os.cpu_count()} CPUs")
    output = {
        "created_at": started_at.isoformat(timespec="seconds"),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_before": load_before, "load_after": load_after},
        "goals": {"load_ms": LOAD_GOAL_MS, "visible_p95_ms": VISIBLE_P95_GOAL_MS,
                  "confirm_p95_ms": CONFIRM_P95_GOAL_MS, "p95_growth_50x20_over_10x10": P95_GROWTH_LIMIT,
                  "bytes_growth": f"<= {BYTES_GROWTH_FACTOR} x smallest size + {BYTES_GROWTH_SLACK} B",
                  "queries": "same at every size"},
        "rows": rows,
        "results": results,
        "table": matrix + "\n\n" + report,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
