"""Proof under load (issue "Production", item 6): two app instances (`course-app
serve`, two workers each) over one PostgreSQL database, one Redis and one storage
folder.

1. ``--sockets`` (200) socket clients connect at once, alternately to the two
   instances, each hydrating the log-in page: how many were answered, and how fast.
2. ``--uploads`` (50) concurrent resumable uploads of ``--size-mb`` (20) MB each,
   whose requests alternate between the instances (what a round-robin balancer
   does), while ``--editors`` (20) instructors edit their courses over real sockets
   (optimistic chapter renames, as the editor sends them): the time from an edit
   to the optimistic change on the socket, and to the change saved (the Undo toast
   the editor shows once the database took it; no error shown).
3. Part-way through the uploads (``--kill-at``, 40 % of all parts sent) one
   instance is killed (SIGKILL, its whole process group). Requests that reached it
   fail and are sent again to the other (as a balancer retries a dead backend);
   editors on it reconnect to the other with their tab's token (page state is in
   Redis) and carry on.

Afterwards: every upload complete with its SHA1, processed, and `course-app
check-videos` clean (no orphans). Goals: 0 errors, 0 orphans, editor p95 < 300 ms
during the load. The editors' figures are also given apart for the five courses the
uploads go into (whose open pages reload as each upload moves on) and for the others.
Prints a summary; writes JSON to benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
os.environ.setdefault("COURSE_SECRET_KEY", "load-secret-" + uuid.uuid4().hex)
os.environ.setdefault("COURSE_DATA_DIR", tempfile.mkdtemp(prefix="course-load-"))

import httpx  # noqa: E402

from editor_scale import load_average, percentile  # noqa: E402

PASSWORD = "correct horse battery"
GOAL_P95_MS = 300
SAVED = "Chapter renamed"  # the Undo toast the editor shows once a rename is saved
MIB = 1024 * 1024
UPLOADERS = 5  # the uploads go into the courses of the first five editors


def by_second(times: list[float], values: list[float]) -> dict[int, list[float]]:
    grouped: dict[int, list[float]] = {}
    for at, value in zip(times, values):
        grouped.setdefault(int(at), []).append(value)
    return grouped


def summarize(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(percentile(values, 0.5), 1), "p95_ms": round(percentile(values, 0.95), 1),
            "max_ms": round(max(values), 1)}


class Cluster:
    """The instances' addresses, which of them are alive (as far as this process
    knows), and the next one in turn."""

    def __init__(self, urls: list[str], processes: list | None = None) -> None:
        self.urls = urls
        self.processes = processes or []
        self.alive = [True] * len(urls)
        self._turn = 0

    def next_url(self, avoid: str | None = None) -> str:
        for _ in range(2 * len(self.urls)):
            index = self._turn % len(self.urls)
            self._turn += 1
            url = self.urls[index]
            if self.alive[index] and url != avoid:
                return url
        return next(url for url, ok in zip(self.urls, self.alive) if ok)

    def kill(self, index: int) -> None:
        self.alive[index] = False
        os.killpg(self.processes[index].pid, signal.SIGKILL)


class Stats:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.retried_requests = 0
        self.parts_sent = 0
        self.parts_total = 0
        self.edit_optimistic_ms: list[float] = []
        self.edit_saved_ms: list[float] = []
        self.editor_reconnects = 0
        self.edit_times: list[float] = []  # when each optimistic sample was taken (epoch seconds)
        self.edit_busy: list[bool] = []  # whether the sample's course was receiving uploads


async def request(cluster: Cluster, stats: Stats, client: httpx.AsyncClient, method: str, path: str, **kwargs):
    """Send to the next instance; on a dead one (connection error or 502/503 of a
    dying worker), send again to another, as a balancer would."""
    avoid = None
    for attempt in range(6):
        url = cluster.next_url(avoid)
        try:
            response = await client.request(method, url + path, **kwargs)
            if response.status_code < 500:
                return response
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as error:
            last = f"{type(error).__name__}"
        stats.retried_requests += 1
        avoid = url
        await asyncio.sleep(0.2 * attempt)
    raise RuntimeError(f"{method} {path}: {last}")


def prepared_file(base: bytes, index: int, part_bytes: int) -> dict:
    """Upload ``index``'s bytes (each file differs), its SHA1 and its parts' SHA1s,
    made before the load starts: the client's own hashing would otherwise take CPU
    from the server it measures (both share this machine's two cores)."""
    data = bytearray(base)
    tweak = hashlib.sha1(f"upload-{index}-{uuid.uuid4()}".encode()).digest()
    data[len(data) // 2: len(data) // 2 + len(tweak)] = tweak  # in the padding
    data = bytes(data)
    parts = [hashlib.sha1(data[at:at + part_bytes]).hexdigest() for at in range(0, len(data), part_bytes)]
    return {"data": data, "sha1": hashlib.sha1(data).hexdigest(), "part_sha1s": parts, "part_bytes": part_bytes}


async def one_upload(cluster, stats, client, cookie, course_id, chapter_id, prepared: dict, index: int,
                     kill_event: asyncio.Event, kill_after: int) -> dict:
    data, sha1 = prepared["data"], prepared["sha1"]
    headers = {"Cookie": f"cs_session={cookie}"}
    import base64

    body = {"course_id": course_id, "chapter_id": chapter_id, "filename": f"load-{index}.mp4", "size": len(data),
            "fingerprint": "v1:" + sha1, "head": base64.b64encode(data[:8192]).decode()}
    created = await request(cluster, stats, client, "POST", "/api/uploads", json=body, headers=headers)
    if created.status_code not in (200, 201):
        raise RuntimeError(f"create: {created.status_code} {created.text[:200]}")
    upload = created.json()
    size = upload["chunk_size"]
    for number in range(1, upload["part_count"] + 1):
        chunk = memoryview(data)[(number - 1) * size: number * size]
        part_sha1 = prepared["part_sha1s"][number - 1] if size == prepared["part_bytes"] else \
            hashlib.sha1(chunk).hexdigest()
        response = await request(cluster, stats, client, "PUT", f"/api/uploads/{upload['id']}/parts/{number}",
                                 content=bytes(chunk), headers={**headers, "X-Part-SHA1": part_sha1})
        if response.status_code != 200:
            raise RuntimeError(f"part {number}: {response.status_code} {response.text[:200]}")
        stats.parts_sent += 1
        if stats.parts_sent >= kill_after:
            kill_event.set()
    done = await request(cluster, stats, client, "POST", f"/api/uploads/{upload['id']}/complete",
                         json={"sha1": sha1}, headers=headers)
    if done.status_code != 200 or done.json()["sha1"] != sha1:
        raise RuntimeError(f"complete: {done.status_code} {done.text[:200]}")
    return done.json()


async def open_editor(cluster, stats, tab_factory, editor: dict, first_url: str, token: str | None = None):
    """The editor's tab on ``first_url``, else (that instance dead) on another; the
    same client token reaches the same page state (kept in Redis)."""
    from tests.security.support import TokenTaken

    url, last = first_url, None
    for attempt in range(40):
        tab = tab_factory(url, editor["cookie"], token)
        try:
            await tab.connect(f"/courses/{editor['course']}", {"course_id": editor["course"]})
            return tab
        except TokenTaken:
            # Redis still links the token to the dead instance's socket: the server hands
            # out a new one, and the page loads again from the database (as the browser does).
            token = None
        except Exception as error:  # noqa: BLE001 - a dead instance: the next one
            last = f"{type(error).__name__}: {str(error)[:200]}"
            url = cluster.next_url(avoid=url)
        await tab.close()
        await asyncio.sleep(0.25)
    raise RuntimeError(f"the editor could not connect: {last}")


async def one_editor(cluster, stats, tab_factory, editor: dict, stop) -> None:
    from tests.security.support import errors_shown

    rename = editor["rename"]
    tab = await open_editor(cluster, stats, tab_factory, editor, editor["url"])
    rng = random.Random(editor["course"])
    while not stop.is_set():
        chapter = rng.choice(editor["chapters"])
        title = f"Chapter {uuid.uuid4().hex[:8]}"
        start = len(tab.frames)
        began = time.perf_counter()
        try:
            await tab.emit(rename, {"chapter_id": chapter, "title": title})
            await tab.wait_for(lambda f: title in json.dumps(f), start=start, what="the optimistic rename")
            stats.edit_optimistic_ms.append((time.perf_counter() - began) * 1000)
            stats.edit_times.append(time.time())
            stats.edit_busy.append(editor["receives_uploads"])
            # Saved: the toast offering Undo comes once the database took the rename.
            done = await tab.wait_for(lambda f: SAVED in json.dumps(f) or bool(errors_shown([f])), start=start,
                                      what="the rename saved", timeout=30)
            stats.edit_saved_ms.append((time.perf_counter() - began) * 1000)
            shown = errors_shown(tab.frames[start:done + 1])
            if shown:
                stats.errors.append(f"editor: {shown}")
        except Exception:
            if tab.sio.connected:
                raise
            # Its instance was killed mid-edit: reconnect elsewhere with the same token and go on.
            stats.editor_reconnects += 1
            tab = await open_editor(cluster, stats, tab_factory, editor, cluster.next_url(), token=tab.token)
        await asyncio.sleep(0.5)  # a person edits every half second or so
    await tab.close()


def editors_process(urls: list[str], editors: list[dict], stop, results) -> None:
    """The editors, in a process of their own (started with ``spawn``): the upload
    client's loop, busy sending 50 uploads, would otherwise delay the editors' socket
    frames and be measured as the server's latency. Puts its figures on ``results``."""
    from tests.security.support import Tab

    async def run() -> dict:
        stats = Stats()
        cluster = Cluster(urls)

        def tab_factory(url, cookie, token=None):
            return Tab(url, cookie=cookie, **({"token": token} if token else {}))

        outcomes = await asyncio.gather(*(one_editor(cluster, stats, tab_factory, e, stop) for e in editors),
                                        return_exceptions=True)
        stats.errors += [f"editor: {type(r).__name__}: {str(r)[:200]}" for r in outcomes if isinstance(r, BaseException)]
        return {"optimistic": stats.edit_optimistic_ms, "saved": stats.edit_saved_ms, "errors": stats.errors,
                "times": stats.edit_times, "busy": stats.edit_busy,
                "reconnects": stats.editor_reconnects}

    results.put(asyncio.run(run()))


async def sockets_phase(cluster, count: int) -> dict:
    from tests.security.support import Tab

    tabs = [Tab(cluster.next_url(), origin="same") for _ in range(count)]
    times: list[float] = []
    failures: list[str] = []

    async def connect(tab) -> None:
        began = time.perf_counter()
        try:
            await tab.connect("/login")
            times.append((time.perf_counter() - began) * 1000)
        except Exception as error:  # noqa: BLE001 - counted
            failures.append(f"{type(error).__name__}: {str(error)[:100]}")

    await asyncio.gather(*(connect(tab) for tab in tabs))
    connected = sum(1 for tab in tabs if tab.sio.connected)
    await asyncio.gather(*(tab.close() for tab in tabs))
    return {"clients": count, "answered": len(times), "connected_at_once": connected, "failures": failures[:5],
            "hydrate": summarize(times)}


def check_videos(server) -> dict:
    result = subprocess.run([str(Path(sys.executable).parent / "course-app"), "check-videos", "--json",
                             "--grace-minutes", "0"], env=server.env, capture_output=True, text=True, timeout=600)
    return json.loads(result.stdout)


async def load(args, cluster, users_, editors, base: bytes) -> dict:
    stats = Stats()
    files = [prepared_file(base, i, args.part_mb * MIB) for i in range(args.uploads)]
    part_bytes = args.part_mb * MIB
    parts_per_upload = -(-len(base) // part_bytes)
    stats.parts_total = parts_per_upload * args.uploads
    kill_after = int(stats.parts_total * args.kill_at) if args.kill_at else stats.parts_total + 1
    kill_event = asyncio.Event()

    async def killer() -> None:
        await kill_event.wait()
        if args.kill_at:
            cluster.kill(1)
            killed_at["t"] = time.perf_counter() - started

    spawn = multiprocessing.get_context("spawn")
    editors_stop, editors_results = spawn.Event(), spawn.Queue()
    editing = spawn.Process(target=editors_process, args=(cluster.urls, editors, editors_stop, editors_results))
    editing.start()
    killed_at: dict = {}
    await asyncio.sleep(3)  # the editors' process imports and connects before the uploads begin
    started, wall_started = time.perf_counter(), time.time()
    limits = httpx.Limits(max_connections=args.uploads * 2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        kill_task = asyncio.create_task(killer())
        uploads = await asyncio.gather(*(
            one_upload(cluster, stats, client, users_[i % len(users_)]["cookie"], users_[i % len(users_)]["course"],
                       users_[i % len(users_)]["chapter"], files[i], i, kill_event, kill_after)
            for i in range(args.uploads)), return_exceptions=True)
        upload_seconds = time.perf_counter() - started
        editors_stop.set()
        edited = await asyncio.to_thread(editors_results.get, True, 120)
        await asyncio.to_thread(editing.join, 30)
        stats.edit_optimistic_ms, stats.edit_saved_ms = edited["optimistic"], edited["saved"]
        stats.edit_times = [t - wall_started for t in edited["times"]]
        stats.edit_busy = edited["busy"]
        stats.errors += edited["errors"]
        stats.editor_reconnects = edited["reconnects"]
        kill_task.cancel()
    videos = [u for u in uploads if isinstance(u, dict)]
    stats.errors += [f"upload: {type(u).__name__}: {str(u)[:200]}" for u in uploads if isinstance(u, BaseException)]
    return {"stats": stats, "videos": videos, "upload_seconds": upload_seconds, "killed_at_s": killed_at.get("t")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--part-mb", type=int, default=5)
    parser.add_argument("--editors", type=int, default=20)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--kill-at", type=float, default=0.4, help="kill instance 2 after this share of parts (0: never)")
    parser.add_argument("--out", default=str(HERE / "results" / "load.json"))
    args = parser.parse_args()

    from course_app.db import make_engine, session_scope
    from course_app.services import users
    from tests.api.test_upload_sessions_api import _clip
    from tests.server import AppServer, fresh_postgres, production_env, start_together, wait_processed
    from tests.security.test_state_handlers import full_name

    home = Path(tempfile.mkdtemp(prefix="course-load-"))
    clip = _clip(5)
    base = clip + random.Random(5).randbytes(args.size_mb * MIB - len(clip))
    with fresh_postgres("course_load") as database_url:
        shared = {**production_env(database_url), "COURSE_STORAGE_DIR": str(home / "storage"),
                  "COURSE_UPLOAD_CHUNK_BYTES": str(args.part_mb * MIB), "COURSE_LOG_FORMAT": "json",
                  "COURSE_API_RATE_LIMIT": "1000000/minute", "COURSE_PART_RATE_LIMIT": "1000000/minute",
                  "COURSE_UPLOAD_RATE_LIMIT": "1000000/minute", "COURSE_SOCKET_EVENT_RATE_LIMIT": "100000/second",
                  "COURSE_SOCKET_CONNECTIONS_PER_IP": "100000", "COURSE_LOGIN_RATE_LIMIT": "100000/minute"}
        servers = [AppServer(data_dir=home / n / "data", log_path=home / n / "server.log", production=True,
                             extra_env={**shared, "REFLEX_WEB_WORKDIR": str(home / n / "web")}) for n in ("one", "two")]
        start_together(servers)
        cluster = Cluster([s.base_url for s in servers], [s.process for s in servers])
        engine = make_engine(database_url)
        try:
            print(f"two instances up: {[s.base_url for s in servers]}", flush=True)
            people = []
            with httpx.Client(timeout=60) as http:
                for i in range(max(args.editors, UPLOADERS)):
                    email = f"load-{i}-{uuid.uuid4().hex[:6]}@example.com"
                    with session_scope(engine) as session:
                        users.create_user(session=session, email=email, password=PASSWORD)
                    url = servers[i % 2].base_url
                    login = http.post(f"{url}/api/auth/login", json={"email": email, "password": PASSWORD})
                    cookie = login.cookies["cs_session"]
                    headers = {"Cookie": f"cs_session={cookie}"}
                    course = http.post(f"{url}/api/courses", json={"title": f"Load {i}"}, headers=headers).json()["id"]
                    chapters = [http.post(f"{url}/api/courses/{course}/chapters", json={"title": f"Chapter {n}"},
                                          headers=headers).json()["id"] for n in range(10)]
                    people.append({"cookie": cookie, "course": course, "chapter": chapters[0], "chapters": chapters,
                                   "url": url, "rename": full_name("OutlineState.rename_chapter"),
                                   "receives_uploads": i < UPLOADERS})

            sockets = asyncio.run(sockets_phase(cluster, args.sockets))
            print(f"sockets: {sockets['answered']}/{sockets['clients']} answered, hydrate {sockets['hydrate']}",
                  flush=True)
            result = asyncio.run(load(args, cluster, people[:UPLOADERS], people[:args.editors], base))
            stats = result["stats"]
            ids = [v["id"] for v in result["videos"]]
            survivor = servers[0]
            processed = wait_processed(engine, ids, timeout=900) if ids else {}
            report = check_videos(survivor)
        finally:
            for server in servers:
                server.stop()
            engine.dispose()

    not_ready = {k: v for k, v in processed.items() if v != "ready"}
    figures = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), **load_average()},
        "setup": {"instances": 2, "workers_per_instance": 2, "database": "PostgreSQL", "state": "Redis",
                  "uploads": args.uploads, "size_mb": args.size_mb, "part_mb": args.part_mb, "editors": args.editors,
                  "kill_at": args.kill_at},
        "sockets": sockets,
        "uploads": {"completed": len(result["videos"]), "seconds": round(result["upload_seconds"], 1),
                    "mb_per_s": round(len(result["videos"]) * args.size_mb / result["upload_seconds"], 1),
                    "retried_requests": stats.retried_requests, "killed_instance_at_s":
                        round(result["killed_at_s"], 1) if result["killed_at_s"] else None,
                    "processed_ready": sum(1 for v in processed.values() if v == "ready"), "not_ready": not_ready},
        "editors": {"optimistic": summarize(stats.edit_optimistic_ms), "saved": summarize(stats.edit_saved_ms),
                    "reconnects_after_kill": stats.editor_reconnects,
                    # the editors of the courses the uploads go into (their pages reload as uploads move on)
                    "optimistic_courses_receiving_uploads": summarize(
                        [v for v, busy in zip(stats.edit_optimistic_ms, stats.edit_busy) if busy]),
                    "optimistic_other_courses": summarize(
                        [v for v, busy in zip(stats.edit_optimistic_ms, stats.edit_busy) if not busy]),
                    # p95 of the optimistic edits taken in each second of the load (from its start)
                    "p95_by_second": {str(second): round(percentile(values, 0.95), 1) for second, values in sorted(
                        by_second(stats.edit_times, stats.edit_optimistic_ms).items())}},
        "errors": stats.errors[:20], "error_count": len(stats.errors),
        "check_videos": {"ok": report.get("ok"), "problems": report.get("problems", [])[:10]},
    }
    shown_p95 = figures["editors"]["optimistic"].get("p95_ms")  # what the editor sees; "saved" is reported too
    figures["goals"] = {"zero_errors": not stats.errors and not not_ready, "zero_orphans": bool(report.get("ok")),
                        f"editor_p95_under_{GOAL_P95_MS}ms": shown_p95 is not None and shown_p95 < GOAL_P95_MS,
                        "sockets_all_answered": sockets["answered"] == sockets["clients"]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: figures[k] for k in ("sockets", "uploads", "editors", "error_count", "goals")}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
