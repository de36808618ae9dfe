"""Memory and speed of one large upload through the real app, next to a bare server.

Run from the repository root (the test extras need not be installed; only the
app's own dependencies are used):

    .venv/bin/python benchmarks/upload_memory.py --size 1G
    .venv/bin/python benchmarks/upload_memory.py --size 256M --output /tmp/upload.json

What it does:

1. Starts the production build once with ``tests.server.AppServer`` (``reflex run
   --env prod --single-port`` on a free port) with a temporary data folder, and its
   own web build folder (``benchmarks/results/.web-bench`` unless ``--web-dir``), so
   it does not clash with ``.web`` or the tests' ``.web-test``; without a processing
   worker (``COURSE_EMBEDDED_WORKERS=0``), so nothing transcodes the upload in the
   measured process group and a finished upload stays ``processing``.
2. Signs up a user, creates a course and a chapter through the JSON API.
3. Streams a ``multipart/form-data`` body to ``POST /api/upload``: the form fields,
   then a file made of a valid MP4 ``ftyp`` header followed by deterministic
   pseudo-random filler up to ``--size`` bytes. The body is generated on the fly
   (never held whole) with an exact Content-Length; the client computes the
   file's SHA1 while generating it.
4. While uploading, a thread samples every 50 ms the RSS (``VmRSS`` from
   ``/proc/<pid>/status``) of every process in the server's process group (the
   ``reflex run`` process and its Granian worker) and of this client process.
   Baseline is taken after a small warm-up upload (so first-request imports do
   not count as upload memory); growth = peak during the upload - baseline.
   The serving worker is the process of the group that used the most CPU time
   during the upload.
5. Checks that the server's answer (``sha1``, ``size_bytes``, ``status``: uploaded)
   matches what the client sent and that the stored file on disk has that size and
   SHA1; any mismatch stops the script with exit code 1. Then the video goes to the
   trash and out of it again, and storage must be empty before the next upload (the
   warm-up's video too).
   With ``--repeat N`` each server takes N measured uploads: the table shows the
   median time and the largest memory growth; the JSON has every run.
6. Repeats the measurement against a bare Starlette app served by Granian (the
   server Reflex uses) in its own process, whose one route writes
   ``request.stream()`` to a file and hashes it: the floor for throughput and
   memory on this machine.

Prints a table and writes JSON to ``benchmarks/results/upload_memory.json``
(``--output``). Every server the script starts is stopped on exit. Throughput is
in MB/s (10^6 bytes per second); memory in MiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB = 1024 * 1024
SAMPLE_INTERVAL = 0.05
WARMUP_BYTES = 2 * MIB
GROWTH_BUDGET_MIB = 64
UPLOADED = ("processing", "ready")  # what a finished upload answers (processing waits for a worker)

# The smallest MP4 start that `filetype` (the app's sniffer) calls video/mp4: an
# `ftyp` box of 24 bytes, brand mp42, compatible brands mp42 and isom.
MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


class BenchmarkFailure(Exception):
    """A check failed: the numbers are not to be trusted."""


def parse_size(text: str) -> int:
    """'1G', '256M', '1.5GiB', '4096' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1G, 256M or 4096")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * 1024 ** " kmgt".index(unit or " "))
    if size < len(MP4_HEADER) + 8192:
        raise argparse.ArgumentTypeError("the size must be at least 8 KiB (the app sniffs the first 8 KiB)")
    return size


def human(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.2f} {unit}"
    return f"{size} B"


# The upload body ---------------------------------------------------------------


class MultipartUpload:
    """A multipart/form-data body generated while it is sent: the fields, then a
    file of ``file_size`` bytes (MP4 header + deterministic filler, or what
    ``source()`` yields). Iterate it once; afterwards ``file_sha1`` and ``body_sha1``
    hold the digests of what was sent (unless ``digests`` is False: a client that
    knows its file's SHA1 already need not spend CPU on the way)."""

    POOL_BLOCKS = 8

    def __init__(self, fields: dict[str, str], file_size: int, *, chunk_size: int = MIB, seed: int = 0,
                 source: Callable[[], Iterable[bytes]] | None = None, digests: bool = True) -> None:
        self.file_size = file_size
        self.chunk_size = chunk_size
        self.seed = seed
        self.source = source  # the file's bytes (exactly file_size of them); None: generated here
        self.digests = digests
        self.boundary = "bench-" + uuid.uuid4().hex
        head = b""
        for name, value in fields.items():
            head += (
                f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ).encode()
        head += (
            f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        self.head = head
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.content_length = len(head) + file_size + len(self.tail)
        self.headers = {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.content_length),
        }
        self.file_sha1: str | None = None
        self.body_sha1: str | None = None
        self.sent = 0

    def _file_chunks(self) -> Iterator[bytes]:
        # A few random blocks from a seeded generator, each chunk stamped with its
        # index: every chunk differs, and generating costs a copy, not a PRNG pass
        # (the client shares two cores with the server).
        rng = random.Random(self.seed)
        pool = [rng.randbytes(self.chunk_size) for _ in range(self.POOL_BLOCKS)]
        remaining, index = self.file_size, 0
        first = MP4_HEADER
        while remaining > 0:
            block = pool[index % self.POOL_BLOCKS]
            chunk = first + index.to_bytes(8, "big") + block[len(first) + 8 :]
            first = b""
            if len(chunk) > remaining:
                chunk = chunk[:remaining]
            remaining -= len(chunk)
            index += 1
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        file_digest, body_digest = hashlib.sha1(), hashlib.sha1()
        body_digest.update(self.head)
        self.sent = len(self.head)
        yield self.head
        for chunk in self._file_chunks() if self.source is None else self.source():
            if self.digests:
                file_digest.update(chunk)
                body_digest.update(chunk)
            self.sent += len(chunk)
            yield chunk
        body_digest.update(self.tail)
        self.sent += len(self.tail)
        if self.digests:
            self.file_sha1, self.body_sha1 = file_digest.hexdigest(), body_digest.hexdigest()
        yield self.tail


# Memory sampling -----------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return 0


def rss_mib(pid: int) -> float | None:
    kib = _status_kib(pid, "VmRSS")
    return None if kib is None else kib / 1024


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def group_pids(pgid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    pids.append(int(name))
            except OSError:
                pass
    return sorted(pids)


def process_name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return " ".join(a.decode(errors="replace") for a in args if a)[:120]
    except OSError:
        return "?"


class RssSampler:
    """Samples the RSS of a process group and of this process every 50 ms."""

    def __init__(self, pgid: int, interval: float = SAMPLE_INTERVAL) -> None:
        self.pgid = pgid
        self.interval = interval
        self.pids = group_pids(pgid)
        self.samples: list[tuple[float, dict[int, float], float]] = []  # (t, {pid: MiB}, client MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def snapshot(self) -> tuple[dict[int, float], float]:
        per_pid = {pid: rss for pid in self.pids if (rss := rss_mib(pid)) is not None}
        return per_pid, rss_mib(os.getpid()) or 0.0

    def _run(self) -> None:
        ticks = 0
        while not self._stop.is_set():
            if ticks % 20 == 0:  # a worker could be respawned: look again every second
                self.pids = group_pids(self.pgid)
            per_pid, client = self.snapshot()
            self.samples.append((time.monotonic(), per_pid, client))
            ticks += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_upload(
    client, url: str, body: MultipartUpload, pgid: int, *, label: str, auth_headers: dict[str, str] | None = None
) -> dict:
    """POST ``body`` to ``url`` while sampling memory; returns the measurements and
    the server's JSON answer."""
    import httpx

    pids = group_pids(pgid)
    time.sleep(1.0)  # let the server settle after the warm-up
    baseline_per_pid = {pid: rss_mib(pid) or 0.0 for pid in pids}
    client_baseline = rss_mib(os.getpid()) or 0.0
    cpu_before = {pid: cpu_seconds(pid) for pid in pids}
    print(f"[{label}] uploading {human(body.file_size)} ...", flush=True)
    with RssSampler(pgid) as sampler:
        started = time.perf_counter()
        response = client.post(
            url, content=body, headers={**body.headers, **(auth_headers or {})},
            timeout=httpx.Timeout(60.0, read=600.0, write=600.0),
        )
        wall = time.perf_counter() - started
    time.sleep(2.0)
    after_per_pid = {pid: rss_mib(pid) or 0.0 for pid in pids}
    cpu_used = {pid: cpu_seconds(pid) - cpu_before.get(pid, 0.0) for pid in pids}
    if response.status_code not in (200, 201):
        raise BenchmarkFailure(f"[{label}] upload answered {response.status_code}: {response.text[:500]}")
    if body.sent != body.content_length:
        raise BenchmarkFailure(f"[{label}] sent {body.sent} bytes, announced {body.content_length}")

    worker = max(pids, key=lambda pid: cpu_used.get(pid, 0.0))
    worker_peak = max((per_pid.get(worker, 0.0) for _, per_pid, _ in sampler.samples), default=0.0)
    group_baseline = sum(baseline_per_pid.values())
    group_peak = max((sum(per_pid.get(p, 0.0) for p in pids) for _, per_pid, _ in sampler.samples), default=0.0)
    client_peak = max((client for _, _, client in sampler.samples), default=client_baseline)
    processes = {
        str(pid): {
            "command": process_name(pid),
            "cpu_seconds": round(cpu_used.get(pid, 0.0), 2),
            "rss_baseline_mib": round(baseline_per_pid.get(pid, 0.0), 1),
            "rss_peak_mib": round(max((s.get(pid, 0.0) for _, s, _ in sampler.samples), default=0.0), 1),
            "rss_after_mib": round(after_per_pid.get(pid, 0.0), 1),
        }
        for pid in pids
    }
    worker_baseline = baseline_per_pid.get(worker, 0.0)
    return {
        "response": response.json(),
        "file_size_bytes": body.file_size,
        "body_bytes": body.content_length,
        "wall_seconds": round(wall, 3),
        "throughput_mb_s": round(body.content_length / wall / 1e6, 1),
        "samples": len(sampler.samples),
        "worker_pid": worker,
        "worker_rss_baseline_mib": round(worker_baseline, 1),
        "worker_rss_peak_mib": round(worker_peak, 1),
        "worker_rss_growth_mib": round(worker_peak - worker_baseline, 1),
        "worker_rss_after_mib": round(after_per_pid.get(worker, 0.0), 1),
        "group_rss_baseline_mib": round(group_baseline, 1),
        "group_rss_peak_mib": round(group_peak, 1),
        "group_rss_growth_mib": round(group_peak - group_baseline, 1),
        "client_rss_baseline_mib": round(client_baseline, 1),
        "client_rss_peak_mib": round(client_peak, 1),
        "client_rss_growth_mib": round(client_peak - client_baseline, 1),
        "processes": processes,
        "rss_timeline": [  # (seconds since start, worker MiB), every 10th sample
            (round(t - sampler.samples[0][0], 2), round(per_pid.get(worker, 0.0), 1))
            for t, per_pid, _ in sampler.samples[::10]
        ],
    }


def summarize(runs: list[dict]) -> dict:
    """One column of the table from several runs: median time, worst memory."""
    ordered = sorted(runs, key=lambda r: r["throughput_mb_s"])
    median = ordered[len(ordered) // 2]
    worst = max(runs, key=lambda r: r["worker_rss_growth_mib"])
    worst_group = max(runs, key=lambda r: r["group_rss_growth_mib"])
    return {
        "repeat": len(runs),
        "wall_seconds": median["wall_seconds"],
        "throughput_mb_s": median["throughput_mb_s"],
        "throughput_mb_s_all": [r["throughput_mb_s"] for r in runs],
        **{key: worst[key] for key in ("worker_pid", "worker_rss_baseline_mib", "worker_rss_peak_mib",
                                       "worker_rss_growth_mib", "worker_rss_after_mib")},
        **{key: worst_group[key] for key in ("group_rss_baseline_mib", "group_rss_peak_mib", "group_rss_growth_mib")},
        "client_rss_growth_mib": max(r["client_rss_growth_mib"] for r in runs),
        "samples": sum(r["samples"] for r in runs),
        "verified": all(r.get("verified") for r in runs),
        "runs": runs,
    }


def sha1_of_file(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        while block := handle.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkFailure(message)


# The real app ----------------------------------------------------------------------


def app_env(web_dir: Path, max_bytes: int) -> dict[str, str]:
    """The app's settings for a benchmark: its own web build folder, the project's
    tools on PATH, room for the file, and no processing worker (it would transcode
    the uploads while the next one is measured, in the measured process group): a
    finished upload stays "processing"."""
    return {
        "REFLEX_WEB_WORKDIR": str(web_dir),
        "PATH": os.pathsep.join([str(ROOT / ".venv" / "bin"), str(ROOT / ".tools" / "node_modules" / ".bin"),
                                 os.environ.get("PATH", "")]),
        "COURSE_MAX_UPLOAD_BYTES": str(max_bytes),
        "COURSE_EMBEDDED_WORKERS": "0",
    }


def sign_up_with_chapter(client, label: str, title: str) -> tuple[str, str]:
    """A new instructor signed up on ``client`` with a course and one chapter: (course id, chapter id)."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    reply = client.post("/api/auth/signup", json={"email": email, "password": "benchmark password 123"})
    check(reply.status_code == 201, f"[{label}] sign-up answered {reply.status_code}: {reply.text[:300]}")
    reply = client.post("/api/courses", json={"title": title})
    check(reply.status_code == 201, f"[{label}] creating the course answered {reply.status_code}: {reply.text[:300]}")
    course_id = reply.json()["id"]
    reply = client.post(f"/api/courses/{course_id}/chapters", json={"title": "Large files"})
    check(reply.status_code == 201, f"[{label}] creating the chapter answered {reply.status_code}: {reply.text[:300]}")
    return course_id, reply.json()["id"]


def delete_for_good(client, video_ids: list[str], storage_root: Path, label: str) -> None:
    """Each video to the trash and out of it again; then its files go from storage,
    which must be empty within 10 s (so the next upload has the disk)."""
    from tests.polling import wait_for
    from tests.stored import files_under

    for video_id in video_ids:
        for url in (f"/api/videos/{video_id}", f"/api/trash/videos/{video_id}"):
            reply = client.delete(url)
            check(reply.status_code == 204, f"[{label}] DELETE {url} answered {reply.status_code}")
    try:
        wait_for(lambda: files_under(storage_root), "storage to empty", until=lambda files: not files, timeout=10,
                 interval=0.2, describe=lambda files: str(sorted(files)[:5]))
    except AssertionError as failure:
        raise BenchmarkFailure(f"[{label}] files left in storage after deleting the videos: {failure}") from None


def run_app(size: int, work: Path, web_dir: Path, chunk_size: int, repeat: int) -> dict:
    import httpx

    sys.path.insert(0, str(ROOT))
    from tests.server import AppServer

    data_dir = work / "app" / "data"
    data_dir.mkdir(parents=True)
    server = AppServer(data_dir=data_dir, log_path=work / "app" / "server.log",
                       extra_env=app_env(web_dir, max(size, 5 * 1024**3)))
    print(f"[app] starting reflex run --env prod on port {server.port} (web build in {web_dir}) ...", flush=True)
    started = time.perf_counter()
    try:
        server.start()
        print(f"[app] up after {time.perf_counter() - started:.1f}s", flush=True)
        pgid = os.getpgid(server.process.pid)
        cold = sum(rss_mib(pid) or 0.0 for pid in group_pids(pgid))
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            course_id, chapter_id = sign_up_with_chapter(client, "app", "Upload benchmark")

            def body(file_size: int, seed: int) -> MultipartUpload:
                fields = {"course_id": course_id, "chapter_id": chapter_id, "title": f"bench {human(file_size)}",
                          "size": str(file_size)}
                return MultipartUpload(fields, file_size, chunk_size=chunk_size, seed=seed)

            warm = body(WARMUP_BYTES, seed=1)
            reply = client.post("/api/upload", content=warm, headers=warm.headers)
            check(reply.status_code == 201, f"warm-up upload answered {reply.status_code}: {reply.text[:300]}")
            delete_for_good(client, [reply.json()["id"]], data_dir / "storage", "app warm-up")

            runs = []
            for attempt in range(repeat):
                upload = body(size, seed=2 + attempt)
                run = measure_upload(client, "/api/upload", upload, pgid, label=f"app {attempt + 1}/{repeat}")
                runs.append(_verify_app_run(run, upload, data_dir, size))
                delete_for_good(client, [run["video_id"]], data_dir / "storage", f"app {attempt + 1}/{repeat}")
        return {
            **summarize(runs),
            "server": "reflex run --env prod --single-port (Granian, FastAPI route /api/upload)",
            "group_rss_cold_mib": round(cold, 1),
        }
    except BaseException:
        print(f"[app] server log (last lines):\n{server.log_tail(40)}", file=sys.stderr)
        raise
    finally:
        server.stop()


def _verify_app_run(result: dict, upload: MultipartUpload, data_dir: Path, size: int) -> dict:
    answer = result.pop("response")
    check(answer.get("status") in UPLOADED, f"[app] the video is {answer.get('status')!r}, not uploaded")
    check(answer.get("size_bytes") == size, f"[app] server size_bytes {answer.get('size_bytes')} != sent {size}")
    check(answer.get("sha1") == upload.file_sha1,
          f"[app] server sha1 {answer.get('sha1')} != client sha1 {upload.file_sha1}")
    stored = _stored_file(data_dir / "storage", answer["sha1"], size)
    check(stored.stat().st_size == size, f"[app] stored file {stored} has {stored.stat().st_size} bytes")
    disk_sha1 = sha1_of_file(stored)
    check(disk_sha1 == upload.file_sha1, f"[app] stored file's sha1 {disk_sha1} != client sha1 {upload.file_sha1}")
    result.update({
        "video_id": answer["id"],
        "sha1": upload.file_sha1,
        "server_sha1": answer["sha1"],
        "server_size_bytes": answer["size_bytes"],
        "stored_path": str(stored.relative_to(data_dir)),
        "stored_size_bytes": stored.stat().st_size,
        "stored_sha1": disk_sha1,
        "verified": True,
    })
    return result


def _stored_file(storage_root: Path, sha1: str, size: int) -> Path:
    """The stored object with this SHA1 (from its sidecar) and size."""
    found = []
    for meta_path in storage_root.rglob("*.meta.json"):
        if ".part-" in meta_path.name:
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        data_path = meta_path.with_name(meta_path.name[: -len(".meta.json")])
        if meta.get("sha1") == sha1 and data_path.is_file() and data_path.stat().st_size == size:
            found.append(data_path)
    check(len(found) == 1, f"[app] expected one stored file with sha1 {sha1} under {storage_root}, found {found}")
    return found[0]


# The bare baseline -------------------------------------------------------------------


def make_bare_app():
    """Granian factory: a Starlette app whose one route streams the raw request
    body to a file (hashing it, as the app does) and fsyncs it."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    target_dir = Path(os.environ["BENCH_BARE_DIR"])

    async def upload(request):
        target = target_dir / f"upload-{uuid.uuid4().hex}.bin"
        digest, size = hashlib.sha1(), 0
        with target.open("wb") as out:
            async for chunk in request.stream():
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return JSONResponse({"size_bytes": size, "sha1": digest.hexdigest(), "path": str(target)}, status_code=201)

    async def ping(request):
        return PlainTextResponse("pong")

    return Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/ping", ping)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_bare(size: int, work: Path, chunk_size: int, repeat: int) -> dict:
    import httpx

    target_dir = work / "bare" / "files"
    target_dir.mkdir(parents=True)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = work / "bare" / "server.log"
    env = {**os.environ, "BENCH_BARE_DIR": str(target_dir), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--working-dir", str(HERE), "upload_memory:make_bare_app"]
    print(f"[bare] starting granian + Starlette on port {port} ...", flush=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise BenchmarkFailure(f"[bare] granian exited early:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{base_url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchmarkFailure(f"[bare] granian did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        pgid = os.getpgid(process.pid)
        cold = sum(rss_mib(pid) or 0.0 for pid in group_pids(pgid))
        with httpx.Client(base_url=base_url, timeout=30) as client:
            warm = MultipartUpload({"title": "warm-up"}, WARMUP_BYTES, chunk_size=chunk_size, seed=1)
            reply = client.post("/upload", content=warm, headers=warm.headers)
            check(reply.status_code == 201, f"[bare] warm-up answered {reply.status_code}: {reply.text[:300]}")
            runs = []
            for attempt in range(repeat):
                upload = MultipartUpload({"title": "bench"}, size, chunk_size=chunk_size, seed=2 + attempt)
                run = measure_upload(client, "/upload", upload, pgid, label=f"bare {attempt + 1}/{repeat}")
                answer = run.pop("response")
                # The bare route stores the raw body (form fields and boundaries included).
                check(answer["size_bytes"] == upload.content_length,
                      f"[bare] server size_bytes {answer['size_bytes']} != sent {upload.content_length}")
                check(answer["sha1"] == upload.body_sha1,
                      f"[bare] server sha1 {answer['sha1']} != client {upload.body_sha1}")
                stored = Path(answer["path"])
                stored_size = stored.stat().st_size
                check(stored_size == upload.content_length, f"[bare] stored file has {stored_size} bytes")
                stored.unlink()
                run.update({"sha1": upload.body_sha1, "server_sha1": answer["sha1"],
                            "server_size_bytes": answer["size_bytes"], "stored_size_bytes": stored_size,
                            "verified": True})
                runs.append(run)
        return {
            **summarize(runs),
            "server": "granian --interface asgi, Starlette route writing request.stream() to a file",
            "group_rss_cold_mib": round(cold, 1),
        }
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# Report -------------------------------------------------------------------------------


def table(size: int, app: dict, bare: dict | None) -> str:
    rows = [
        ("file size", lambda r: f"{human(size)} ({size} B)"),
        ("measured uploads", lambda r: str(r["repeat"])),
        ("wall time (s)", lambda r: f"{r['wall_seconds']:.2f}"),
        ("throughput (MB/s)", lambda r: f"{r['throughput_mb_s']:.1f}"),
        ("worker RSS baseline (MiB)", lambda r: f"{r['worker_rss_baseline_mib']:.1f}"),
        ("worker RSS peak (MiB)", lambda r: f"{r['worker_rss_peak_mib']:.1f}"),
        ("worker RSS growth (MiB)", lambda r: f"{r['worker_rss_growth_mib']:+.1f}"),
        ("worker RSS 2 s after (MiB)", lambda r: f"{r['worker_rss_after_mib']:.1f}"),
        ("server group RSS base/peak", lambda r: f"{r['group_rss_baseline_mib']:.0f} / {r['group_rss_peak_mib']:.0f}"),
        ("server group RSS growth (MiB)", lambda r: f"{r['group_rss_growth_mib']:+.1f}"),
        ("client RSS growth (MiB)", lambda r: f"{r['client_rss_growth_mib']:+.1f}"),
        ("RSS samples (every 50 ms)", lambda r: str(r["samples"])),
        ("sha1 + size verified", lambda r: "yes" if r.get("verified") else "NO"),
    ]
    columns = [("app (Reflex prod)", app)] + ([("bare (Granian+Starlette)", bare)] if bare else [])
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{'':<{width}}" + "".join(f"{title:>26}" for title, _ in columns)]
    lines.append("-" * len(lines[0]))
    for name, cell in rows:
        lines.append(f"{name:<{width}}" + "".join(f"{cell(result):>26}" for _, result in columns))
    lines.append("-" * len(lines[0]))
    if bare:
        lines.append(f"throughput app/bare: {app['throughput_mb_s'] / bare['throughput_mb_s']:.2f}"
                     f"   worker RSS growth app - bare: "
                     f"{app['worker_rss_growth_mib'] - bare['worker_rss_growth_mib']:+.1f} MiB")
    verdict = "within" if app["worker_rss_growth_mib"] <= GROWTH_BUDGET_MIB else "OVER"
    lines.append(f"app worker RSS growth {app['worker_rss_growth_mib']:+.1f} MiB: {verdict} the "
                 f"{GROWTH_BUDGET_MIB} MiB budget")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"),
                        help="file size, e.g. 1G, 256M, 4096 (binary units; default 1G)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "upload_memory.json",
                        help="where to write the JSON results (default benchmarks/results/upload_memory.json)")
    parser.add_argument("--web-dir", type=Path, default=HERE / "results" / ".web-bench",
                        help="the app's web build folder (REFLEX_WEB_WORKDIR; default benchmarks/results/.web-bench)")
    parser.add_argument("--chunk-size", type=parse_size, default=MIB, help="client write size (default 1M)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measured uploads per server (default 1); the table shows the median time "
                             "and the largest memory growth")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare Granian+Starlette baseline")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    import filetype

    kind = filetype.guess(MP4_HEADER + bytes(8192))
    if kind is None or kind.mime != "video/mp4":
        print(f"filetype does not see the generated header as video/mp4 ({kind})", file=sys.stderr)
        return 1

    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < 2.5 * args.size:
        print(f"not enough room in {tempfile.gettempdir()}: {human(free)} free, need about "
              f"{human(int(2.5 * args.size))}", file=sys.stderr)
        return 1

    work = Path(tempfile.mkdtemp(prefix="course-upload-bench-"))
    try:
        app = run_app(args.size, work, args.web_dir.resolve(), args.chunk_size, args.repeat)
        bare = None if args.no_bare else run_bare(args.size, work, args.chunk_size, args.repeat)
    except BenchmarkFailure as failure:
        print(f"\nBENCHMARK FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = table(args.size, app, bare)
    print()
    print(report)
    results = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "size_bytes": args.size,
        "chunk_size_bytes": args.chunk_size,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "app": app,
        "bare": bare,
        "throughput_ratio_app_over_bare": round(app["throughput_mb_s"] / bare["throughput_mb_s"], 3) if bare else None,
        "table": report,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
