"""The student preview at scale: a course of 50 chapters x 20 videos (about 930 of
them ready; the rest uploading or failed, left out), in the production build, in
Chromium.

    python benchmarks/preview_scale.py                   # 50x20, 20 clicks of each kind
    python benchmarks/preview_scale.py --size 10x10 --reps 10

Measured inside the page (``performance.now()``):
- load: navigation start -> every lesson button is in the DOM, and the socket
  bytes received by then (the outline is sent once);
- "Next lesson": click -> the highlight (``aria-current``) is on the next lesson,
  and the socket bytes received for it (the new lesson's title and links only);
- a lesson far down the list clicked: the same.
The course is seeded through the services as benchmarks/editor_scale.py does."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from editor_scale import CHROMIUM, CHROMIUM_ARGS, PASSWORD, create_bench_user, seed_course  # noqa: E402

CLICK_AND_WAIT = """async ([selector, expected]) => {
  const started = performance.now();
  document.querySelector(selector).click();
  return await new Promise((resolve) => {
    const check = () => {
      const current = document.querySelector('button.cs-lesson[aria-current="true"]');
      if (current && current.getAttribute('aria-label').startsWith(expected)) resolve(performance.now() - started);
      else requestAnimationFrame(check);
    };
    check();
  });
}"""


def stats(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"median {statistics.median(values):.0f} ms, p95 {p95:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="50x20")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--web-dir", type=Path, default=Path("/tmp/bench-web"))
    args = parser.parse_args()
    chapters, videos = (int(n) for n in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="course-preview-scale-"))
    os.environ.setdefault("COURSE_DATA_DIR", str(work / "client-data"))

    from playwright.sync_api import sync_playwright

    from course_app.db import make_engine
    from tests.server import AppServer

    server = AppServer(data_dir=work / "app" / "data", log_path=work / "server.log",
                       extra_env={"REFLEX_WEB_WORKDIR": str(args.web_dir.resolve()),
                                  "COURSE_API_RATE_LIMIT": "100000/minute", "COURSE_LOGIN_RATE_LIMIT": "1000/minute",
                                  "COURSE_SOCKET_EVENT_RATE_LIMIT": "1000/second"})
    server.start()
    try:
        engine = make_engine(server.database_url)
        user_id, email = create_bench_user(engine)
        seeded = seed_course(engine, user_id, chapters, videos)
        ready = seeded["statuses"]["ready"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context().new_page()
            received: list[int] = [0]
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.__setitem__(
                0, received[0] + len(payload if isinstance(payload, (bytes, bytearray)) else payload.encode()))))
            login = page.request.post(f"{server.base_url}/api/auth/login", data={"email": email, "password": PASSWORD},
                                      headers={"Origin": server.base_url})
            assert login.ok, login.text()
            loads = []
            for _ in range(3):
                received[0] = 0
                page.goto(f"{server.base_url}/courses/{seeded['course_id']}/preview")
                shown = page.wait_for_function(
                    f"() => document.querySelectorAll('button.cs-lesson').length >= {ready} && performance.now()",
                    polling="raf", timeout=120_000).json_value()
                page.wait_for_function("() => document.querySelector('video')")
                loads.append((shown, received[0]))
            nexts, next_bytes, far, far_bytes = [], [], [], []
            for rep in range(args.reps):
                received[0] = 0
                nexts.append(page.evaluate(CLICK_AND_WAIT, ["[data-next-lesson]", f"Lesson {rep + 2}:"]))
                time.sleep(0.3)  # let the socket settle before reading the bytes
                next_bytes.append(received[0])
            for rep in range(args.reps):
                number = ready - rep * 7
                received[0] = 0
                far.append(page.evaluate(CLICK_AND_WAIT, [f"button[aria-label^='Lesson {number}:']", f"Lesson {number}:"]))
                time.sleep(0.3)
                far_bytes.append(received[0])
            browser.close()
        result = {
            "size": args.size, "lessons": ready, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
            "load_ms": [round(s) for s, _ in loads], "load_socket_bytes": [b for _, b in loads],
            "next": stats(nexts), "next_socket_bytes": statistics.median(next_bytes),
            "far_click": stats(far), "far_click_socket_bytes": statistics.median(far_bytes),
        }
        print(json.dumps(result, indent=2))
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
