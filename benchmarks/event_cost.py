"""What one editor event costs the server: CPU seconds and latency of optimistic
chapter renames from one socket tab, against the production-mode app (`course-app
serve`: two workers, PostgreSQL, Redis page state), with nothing else running.

    python benchmarks/event_cost.py --renames 300

CPU is the user + system time of the app's whole process tree (Granian workers, the
processing worker, their children), read from /proc before and after the renames.
Prints the figures and writes JSON to benchmarks/results/event_cost.json. Run it
on an idle machine. To see where the time goes, attach ``py-spy record -p <worker
pid> -f raw`` to a worker while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
os.environ.setdefault("COURSE_SECRET_KEY", "cost-secret-" + uuid.uuid4().hex)
os.environ.setdefault("COURSE_DATA_DIR", tempfile.mkdtemp(prefix="course-cost-"))

import httpx  # noqa: E402

from editor_scale import load_average, percentile  # noqa: E402

PASSWORD = "correct horse battery"
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of ``root_pid`` and every descendant alive now (and
    of the children they waited for)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, pending = 0.0, [root_pid]
    while pending:
        pid = pending.pop()
        if pid in stats:
            f = stats[pid]
            total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / TICKS
        pending.extend(children.get(pid, []))
    return total


async def renames(base_url: str, cookie: str, course: str, chapters: list[str], count: int) -> list[float]:
    from tests.security.support import Tab
    from tests.security.test_state_handlers import full_name

    tab = Tab(base_url, cookie=cookie)
    await tab.connect(f"/courses/{course}", {"course_id": course})
    event = full_name("OutlineState.rename_chapter")
    times = []
    try:
        for n in range(count):
            title = f"Chapter {uuid.uuid4().hex[:8]}"
            start = len(tab.frames)
            began = time.perf_counter()
            await tab.emit(event, {"chapter_id": chapters[n % len(chapters)], "title": title})
            await tab.wait_for(lambda f: "Chapter renamed" in json.dumps(f), start=start, what="the rename saved")
            times.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.02)
    finally:
        await tab.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renames", type=int, default=300)
    parser.add_argument("--out", default=str(HERE / "results" / "event_cost.json"))
    args = parser.parse_args()

    from course_app.db import make_engine, session_scope
    from course_app.services import users
    from tests.server import AppServer, fresh_postgres, production_env

    home = Path(tempfile.mkdtemp(prefix="course-cost-"))
    with fresh_postgres("course_cost") as database_url:
        env = {**production_env(database_url), "COURSE_STORAGE_DIR": str(home / "storage"),
               "COURSE_SOCKET_EVENT_RATE_LIMIT": "100000/second", "COURSE_API_RATE_LIMIT": "1000000/minute",
               "REFLEX_WEB_WORKDIR": str(home / "web")}
        server = AppServer(data_dir=home / "data", log_path=home / "server.log", production=True, extra_env=env)
        server.start()
        engine = make_engine(database_url)
        try:
            email = f"cost-{uuid.uuid4().hex[:6]}@example.com"
            with session_scope(engine) as session:
                users.create_user(session=session, email=email, password=PASSWORD)
            with httpx.Client(base_url=server.base_url, timeout=60) as http:
                cookie = http.post("/api/auth/login", json={"email": email, "password": PASSWORD}).cookies["cs_session"]
                headers = {"Cookie": f"cs_session={cookie}"}
                course = http.post("/api/courses", json={"title": "Cost"}, headers=headers).json()["id"]
                chapters = [http.post(f"/api/courses/{course}/chapters", json={"title": f"Chapter {n}"},
                                      headers=headers).json()["id"] for n in range(10)]
            asyncio.run(renames(server.base_url, cookie, course, chapters, 20))  # warm-up
            time.sleep(1)
            before, wall = tree_cpu_seconds(server.process.pid), time.perf_counter()
            times = asyncio.run(renames(server.base_url, cookie, course, chapters, args.renames))
            cpu, wall = tree_cpu_seconds(server.process.pid) - before, time.perf_counter() - wall
        finally:
            server.stop()
            engine.dispose()

    figures = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), **load_average()},
        "renames": len(times),
        "server_cpu_ms_per_rename": round(cpu / len(times) * 1000, 2),
        "latency_ms": {"p50": round(percentile(times, 0.5), 1), "p95": round(percentile(times, 0.95), 1)},
        "wall_s": round(wall, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
