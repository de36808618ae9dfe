"""Resumable (chunked) uploads next to the single-request upload, a bare server, the
reference tus server, and b2sdk used directly: speed and memory, in one run.

Run from the repository root:

    .venv/bin/python benchmarks/resumable_uploads.py                 # 2 GiB, all paths
    .venv/bin/python benchmarks/resumable_uploads.py --size 512M --skip-tus
    .venv/bin/python benchmarks/resumable_uploads.py --huge          # adds a 20 GiB chunked upload

What it measures (everything on loopback, on this machine):

P1  Throughput of a ``--size`` file through the real app (``tests.server.AppServer``:
    ``reflex run --env prod --single-port``, local storage in a temp folder):
    (a) chunked: ``POST /api/uploads`` (session), the parts with ``--parallel``
        concurrent ``PUT /api/uploads/{id}/parts/{n}`` (one httpx client per thread,
        each part generated on the fly with its X-Part-SHA1), ``POST .../complete``;
    (b) single request: ``POST /api/upload`` with a streamed multipart body.
    Each is compared with a bare Starlette route served by Granian in its own
    process (``upload_memory.make_bare_app``), which streams the same bytes to a
    file, hashing and fsyncing it. Goal: >= 0.90 of bare.
P1-peer  The same file through ``@tus/server`` 2.x + ``@tus/file-store``, driven by
    ``tus-js-client`` (50 MiB chunks) in Node (``benchmarks/tus_peer.mjs``; the npm
    packages are installed into ``benchmarks/.tus`` on first use). Goal: our chunked
    path is no slower.
P2  Peak RSS growth of the app's serving worker (the process of the server's group
    that used the most CPU time) during (a) and (b), sampled every 50 ms from /proc,
    over a baseline taken after warm-up uploads. Goal: <= 64 MiB.
P3  B2 multipart through b2sdk's RawSimulator (in memory, in this process, no HTTP):
    ``B2Storage.start_multipart`` + ``put_part`` per part + ``complete_multipart``
    for a ``--b2-size`` file in ``--b2-part-size`` parts, versus the same parts sent
    with b2sdk directly (``api.session.start_large_file`` / ``upload_part`` /
    ``finish_large_file``). Median of ``--b2-repeat`` runs each. Goal: ours >= 0.80
    of direct.
5   With ``--huge``: a ``--huge-size`` (20 GiB) chunked upload through the app
    (``--huge-chunk-size`` parts) to show it works: size and SHA1 checked, time and
    RSS growth reported, the stored file deleted afterwards. Skipped by default.

The file: a 24-byte MP4 ``ftyp`` header (``filetype`` calls it video/mp4) and
deterministic filler, generated in 1 MiB blocks while it is sent (block i is one of 8
pseudo-random blocks stamped with i), never held whole: a chunked client holds at
most one block per thread. Its SHA1 and the SHA1 of every part are computed in a
pass before the timed uploads (a real client hashes each part before sending it).
Every path is verified: size and SHA1 of what the server stored must match, or the
script stops with exit code 1.

Throughput is file bytes / wall seconds in MB/s (10^6 bytes a second); memory in MiB.
Prints one table and writes it, with every measurement, as JSON (``--output``).
Every server, process and temporary file the script starts or creates is stopped
or removed on exit.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import upload_memory as um  # noqa: E402  (the sampler, the bare app, the multipart body)

MIB = 1024 * 1024
GIB = 1024 * MIB
BLOCK = MIB
POOL_BLOCKS = 8
SEED = 7
WARMUP_BYTES = 4 * MIB
RSS_BUDGET_MIB = 64
P1_GOAL = 0.90
P3_GOAL = 0.80
TUS_CHUNK = 50 * MIB
TUS_PACKAGES = ("@tus/server@2", "@tus/file-store@2", "tus-js-client@4")
TUS_DIR = HERE / ".tus"
TUS_SCRIPT = HERE / "tus_peer.mjs"
NODE = shutil.which("node") or "/usr/bin/node"
NPM = shutil.which("npm") or "/usr/bin/npm"
B2_BUCKET = "course-studio-bench"
HTTP_TIMEOUT = None  # set in main (httpx imported lazily)

BenchmarkFailure = um.BenchmarkFailure
check = um.check
human = um.human


# The generated file ----------------------------------------------------------------------


class GeneratedFile:
    """``size`` bytes: block i (``BLOCK`` bytes) is pool block i % 8 with its first
    8 bytes replaced by i (big-endian); block 0 starts with the MP4 header, then the
    index. The same bytes as ``upload_memory.MultipartUpload`` with chunk_size=1 MiB
    and the same seed, and as ``tus_peer.mjs`` given the pool."""

    def __init__(self, size: int, seed: int = SEED) -> None:
        import random

        self.size = size
        rng = random.Random(seed)
        self.pool = [rng.randbytes(BLOCK) for _ in range(POOL_BLOCKS)]
        self.sha1: str | None = None
        self.part_size: int | None = None
        self.part_sha1s: list[str] = []

    def block(self, index: int) -> bytes:
        prefix = um.MP4_HEADER if index == 0 else b""
        return prefix + index.to_bytes(8, "big") + self.pool[index % POOL_BLOCKS][len(prefix) + 8 :]

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes [start, end) in pieces of at most one block."""
        end = self.size if end is None else end
        index = start // BLOCK
        while index * BLOCK < end:
            data = self.block(index)
            low, high = max(start - index * BLOCK, 0), min(end - index * BLOCK, BLOCK)
            yield data if (low, high) == (0, BLOCK) else data[low:high]
            index += 1

    def head(self, count: int = 8192) -> bytes:
        return b"".join(self.chunks(0, min(count, self.size)))

    def part_range(self, number: int, part_size: int) -> tuple[int, int]:
        start = (number - 1) * part_size
        return start, min(start + part_size, self.size)

    def part_count(self, part_size: int) -> int:
        return -(-self.size // part_size)

    def digest(self, part_size: int) -> None:
        """One pass: the whole file's SHA1 and each part's (not timed)."""
        whole = hashlib.sha1()
        self.part_sha1s = []
        for number in range(1, self.part_count(part_size) + 1):
            part = hashlib.sha1()
            for chunk in self.chunks(*self.part_range(number, part_size)):
                whole.update(chunk)
                part.update(chunk)
            self.part_sha1s.append(part.hexdigest())
        self.sha1, self.part_size = whole.hexdigest(), part_size

    def write_pool(self, path: Path) -> None:
        path.write_bytes(b"".join(self.pool))


def sha1_of_file(path: Path) -> str:
    return um.sha1_of_file(path)


# Memory probe --------------------------------------------------------------------------------


class Probe:
    """Baseline, 50 ms RSS samples and CPU time of a process group while a block
    runs; the "worker" is the given pid or the group's busiest process."""

    def __init__(self, pgid: int, *, settle: float = 1.0) -> None:
        self.pgid = pgid
        self.settle = settle

    def __enter__(self) -> Probe:
        time.sleep(self.settle)
        self.pids = um.group_pids(self.pgid)
        self.baseline = {pid: um.rss_mib(pid) or 0.0 for pid in self.pids}
        self.cpu_before = {pid: um.cpu_seconds(pid) for pid in self.pids}
        self.own_before = client_cpu()
        self.busy_before = machine_busy_seconds()
        self.load_before = os.getloadavg()[0]
        self.sampler = um.RssSampler(self.pgid)
        self.sampler.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.sampler.__exit__(*exc)
        self.cpu_used = {pid: um.cpu_seconds(pid) - self.cpu_before.get(pid, 0.0) for pid in self.pids}
        self.own_cpu = client_cpu() - self.own_before
        self.busy = machine_busy_seconds() - self.busy_before
        self.load_after = os.getloadavg()[0]

    def report(self, worker: int | None = None) -> dict:
        samples = self.sampler.samples
        if worker is None:
            worker = max(self.pids, key=lambda pid: self.cpu_used.get(pid, 0.0))
        base = self.baseline.get(worker, 0.0)
        peak = max((per_pid.get(worker, 0.0) for _, per_pid, _ in samples), default=base)
        group_base = sum(self.baseline.values())
        group_peak = max((sum(per_pid.get(p, 0.0) for p in self.pids) for _, per_pid, _ in samples),
                         default=group_base)
        return {
            "worker_pid": worker,
            "worker_command": um.process_name(worker),
            "worker_cpu_seconds": round(self.cpu_used.get(worker, 0.0), 2),
            "worker_rss_baseline_mib": round(base, 1),
            "worker_rss_peak_mib": round(peak, 1),
            "worker_rss_growth_mib": round(peak - base, 1),
            "group_rss_growth_mib": round(group_peak - group_base, 1),
            "group_cpu_seconds": round(sum(self.cpu_used.values()), 2),
            "samples": len(samples),
            # Other work on the machine meanwhile (CPU seconds not used by the measured
            # server group nor this script), and the 1-minute load average around it.
            "foreign_cpu_seconds": round(max(0.0, self.busy - sum(self.cpu_used.values()) - self.own_cpu), 2),
            "loadavg_before_after": [round(self.load_before, 2), round(self.load_after, 2)],
        }


def client_cpu() -> float:
    return sum(os.times()[:2])


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat)."""
    with open("/proc/stat", "rb") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def summarize(runs: list[dict]) -> dict:
    """Several runs of one path: the median time (and its run's details), the
    largest worker RSS growth."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    worst = max(runs, key=lambda r: r["worker_rss_growth_mib"])
    median.update({
        "repeat": len(runs),
        "worker_rss_growth_mib": worst["worker_rss_growth_mib"],
        "mb_s_all": [r["mb_s"] for r in runs],
        "verified": all(r.get("verified") for r in runs),
        "runs": runs if len(runs) > 1 else None,
    })
    return median


# The app ---------------------------------------------------------------------------------------


class App:
    """The real app (prod build) with a signed-up user, a course and a chapter."""

    def __init__(self, work: Path, web_dir: Path, *, max_bytes: int, chunk_size: int) -> None:
        from tests.server import AppServer

        self.work = work
        self.data_dir = work / "data"
        self.data_dir.mkdir(parents=True)
        limit = "1000000/minute"
        env = {
            "REFLEX_WEB_WORKDIR": str(web_dir),
            "PATH": os.pathsep.join([str(ROOT / ".venv" / "bin"), str(ROOT / ".tools" / "node_modules" / ".bin"),
                                     os.environ.get("PATH", "")]),
            "COURSE_MAX_UPLOAD_BYTES": str(max_bytes),
            "COURSE_QUOTA_BYTES": str(4 * max_bytes),
            "COURSE_UPLOAD_CHUNK_BYTES": str(chunk_size),
            "COURSE_PART_RATE_LIMIT": limit,
            "COURSE_UPLOAD_RATE_LIMIT": limit,
            "COURSE_API_RATE_LIMIT": limit,
        }
        self.server = AppServer(data_dir=self.data_dir, log_path=work / "server.log", extra_env=env)
        self.chunk_size = chunk_size
        self.cookies = None

    def start(self) -> None:
        import httpx

        print(f"[app] starting reflex run --env prod on port {self.server.port} "
              f"(part size {human(self.chunk_size)}) ...", flush=True)
        started = time.perf_counter()
        self.server.start()
        print(f"[app] up after {time.perf_counter() - started:.1f}s", flush=True)
        self.pgid = os.getpgid(self.server.process.pid)
        self.client = httpx.Client(base_url=self.server.base_url, timeout=HTTP_TIMEOUT)
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        reply = self.client.post("/api/auth/signup", json={"email": email, "password": "benchmark password 123"})
        check(reply.status_code == 201, f"[app] sign-up answered {reply.status_code}: {reply.text[:300]}")
        reply = self.client.post("/api/courses", json={"title": "Resumable upload benchmark"})
        check(reply.status_code == 201, f"[app] creating the course answered {reply.status_code}: {reply.text[:300]}")
        self.course_id = reply.json()["id"]
        reply = self.client.post(f"/api/courses/{self.course_id}/chapters", json={"title": "Large files"})
        check(reply.status_code == 201, f"[app] creating the chapter answered {reply.status_code}: {reply.text[:300]}")
        self.chapter_id = reply.json()["id"]

    def stop(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None
        self.server.stop()

    def new_client(self):
        import httpx

        return httpx.Client(base_url=self.server.base_url, timeout=HTTP_TIMEOUT, cookies=self.client.cookies)

    # chunked ---------------------------------------------------------------

    def chunked(self, file: GeneratedFile, parallel: int, label: str) -> dict:
        """Session, parts (``parallel`` at a time), complete; returns the video JSON
        and timings. Raises BenchmarkFailure on any unexpected answer."""
        check(file.part_size == self.chunk_size, "the file's part digests do not match the app's part size")
        started = time.perf_counter()
        reply = self.client.post("/api/uploads", json={
            "course_id": self.course_id, "chapter_id": self.chapter_id, "filename": f"{label}.mp4",
            "size": file.size, "fingerprint": f"bench:{label}:{uuid.uuid4().hex}",
            "head": base64.b64encode(file.head()).decode(), "title": f"{label} {human(file.size)}",
        })
        check(reply.status_code == 201, f"[{label}] creating the upload answered {reply.status_code}: {reply.text[:300]}")
        session = reply.json()
        check(session["chunk_size"] == self.chunk_size,
              f"[{label}] the app chose parts of {session['chunk_size']} bytes, not {self.chunk_size}")
        count = session["part_count"]
        check(count == file.part_count(self.chunk_size), f"[{label}] the app expects {count} parts")
        upload_id = session["id"]
        created = time.perf_counter()

        local = threading.local()
        clients = []
        lock = threading.Lock()
        part_seconds: list[float] = []

        def send(number: int) -> None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = self.new_client()
                with lock:
                    clients.append(client)
            start, end = file.part_range(number, self.chunk_size)
            began = time.perf_counter()
            reply = client.put(
                f"/api/uploads/{upload_id}/parts/{number}", content=file.chunks(start, end),
                headers={"Content-Length": str(end - start), "Content-Type": "application/octet-stream",
                         "X-Part-SHA1": file.part_sha1s[number - 1]},
            )
            took = time.perf_counter() - began
            check(reply.status_code == 200, f"[{label}] part {number} answered {reply.status_code}: {reply.text[:300]}")
            answer = reply.json()
            check(answer["size"] == end - start and answer["sha1"] == file.part_sha1s[number - 1],
                  f"[{label}] part {number} came back as {answer}")
            with lock:
                part_seconds.append(took)

        try:
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="part") as pool:
                for future in [pool.submit(send, n) for n in range(1, count + 1)]:
                    future.result()
        finally:
            for client in clients:
                client.close()
        parts_done = time.perf_counter()
        reply = self.client.post(f"/api/uploads/{upload_id}/complete", json={})
        check(reply.status_code == 200, f"[{label}] complete answered {reply.status_code}: {reply.text[:300]}")
        finished = time.perf_counter()
        return {
            "video": reply.json(),
            "seconds": finished - started,
            "create_seconds": round(created - started, 3),
            "parts_seconds": round(parts_done - created, 3),
            "complete_seconds": round(finished - parts_done, 3),
            "part_count": count,
            "part_seconds_median": round(statistics.median(part_seconds), 3),
            "part_seconds_max": round(max(part_seconds), 3),
        }

    # single ----------------------------------------------------------------

    def single(self, file: GeneratedFile, label: str) -> dict:
        fields = {"course_id": self.course_id, "chapter_id": self.chapter_id, "title": f"{label} {human(file.size)}",
                  "size": str(file.size)}
        body = um.MultipartUpload(fields, file.size, chunk_size=BLOCK, seed=SEED)
        started = time.perf_counter()
        reply = self.client.post("/api/upload", content=body, headers=body.headers)
        finished = time.perf_counter()
        check(reply.status_code in (200, 201), f"[{label}] upload answered {reply.status_code}: {reply.text[:300]}")
        check(body.sent == body.content_length, f"[{label}] sent {body.sent} of {body.content_length} bytes")
        check(body.file_sha1 == file.sha1, f"[{label}] the multipart body's file ({body.file_sha1}) is not the "
                                           f"generated file ({file.sha1})")
        return {"video": reply.json(), "seconds": finished - started, "body_bytes": body.content_length}

    # verification ------------------------------------------------------------

    def verify_and_delete(self, video: dict, file: GeneratedFile, label: str, *, hash_on_disk: bool = True) -> dict:
        check(video.get("status") == "ready", f"[{label}] the video is {video.get('status')!r}, not 'ready'")
        check(video.get("size_bytes") == file.size, f"[{label}] size_bytes {video.get('size_bytes')} != {file.size}")
        check(video.get("sha1") == file.sha1, f"[{label}] server sha1 {video.get('sha1')} != client {file.sha1}")
        stored = um._stored_file(self.data_dir / "storage", file.sha1, file.size)
        stored_size = stored.stat().st_size
        check(stored_size == file.size, f"[{label}] the stored file has {stored_size} bytes")
        disk_sha1 = sha1_of_file(stored) if hash_on_disk else None
        if hash_on_disk:
            check(disk_sha1 == file.sha1, f"[{label}] the stored file's sha1 {disk_sha1} != client {file.sha1}")
        reply = self.client.delete(f"/api/videos/{video['id']}")
        check(reply.status_code == 204, f"[{label}] deleting the video answered {reply.status_code}")
        deadline = time.monotonic() + 10
        while (leftovers := [p for p in (self.data_dir / "storage").rglob("*") if p.is_file()]) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        check(not leftovers, f"[{label}] files left in storage after deleting the video: {leftovers[:5]}")
        return {"server_sha1": video["sha1"], "server_size_bytes": video["size_bytes"],
                "stored_sha1": disk_sha1, "stored_size_bytes": stored_size, "verified": True}

    def warm_up(self, parallel: int) -> None:
        small = GeneratedFile(WARMUP_BYTES, seed=SEED + 1)
        small.digest(self.chunk_size)
        result = self.chunked(small, parallel, "warm-up-chunked")
        self.verify_and_delete(result["video"], small, "warm-up-chunked")
        result = self.single_small(small)
        self.verify_and_delete(result, small, "warm-up-single")

    def single_small(self, file: GeneratedFile) -> dict:
        fields = {"course_id": self.course_id, "chapter_id": self.chapter_id, "title": "warm-up",
                  "size": str(file.size)}
        body = um.MultipartUpload(fields, file.size, chunk_size=BLOCK, seed=SEED + 1)
        reply = self.client.post("/api/upload", content=body, headers=body.headers)
        check(reply.status_code == 201, f"[warm-up] upload answered {reply.status_code}: {reply.text[:300]}")
        return reply.json()


def measure_app_path(app: App, file: GeneratedFile, kind: str, parallel: int, label: str,
                     *, hash_on_disk: bool = True) -> dict:
    print(f"[{label}] uploading {human(file.size)} ...", flush=True)
    cpu = client_cpu()
    with Probe(app.pgid) as probe:
        result = app.chunked(file, parallel, label) if kind == "chunked" else app.single(file, label)
    memory = probe.report()
    client_cpu_seconds = client_cpu() - cpu
    video = result.pop("video")
    verified = app.verify_and_delete(video, file, label, hash_on_disk=hash_on_disk)
    seconds = result.pop("seconds")
    return {"seconds": round(seconds, 3), "bytes": file.size, "mb_s": round(file.size / seconds / 1e6, 1),
            **result, **memory, "client_cpu_seconds": round(client_cpu_seconds, 2), **verified}


# The bare baseline --------------------------------------------------------------------------------


class Bare:
    """Granian + Starlette (``upload_memory.make_bare_app``) in its own process group."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.target = work / "files"
        self.target.mkdir(parents=True)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import httpx

        port = um._free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BENCH_BARE_DIR": str(self.target), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1", "--working-dir", str(HERE), "upload_memory:make_bare_app"]
        print(f"[bare] starting granian + Starlette on port {port} ...", flush=True)
        self.log_path = self.work / "server.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            check(self.process.poll() is None, f"[bare] granian exited:\n{self.log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.base_url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            check(time.monotonic() < deadline, "[bare] granian did not start within 60 s")
            time.sleep(0.2)
        self.pgid = os.getpgid(self.process.pid)
        self.client = httpx.Client(base_url=self.base_url, timeout=HTTP_TIMEOUT)

    def stop(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
        stop_group(self.process)

    def upload(self, file: GeneratedFile) -> dict:
        reply = self.client.post("/upload", content=file.chunks(),
                                 headers={"Content-Length": str(file.size), "Content-Type": "application/octet-stream"})
        check(reply.status_code == 201, f"[bare] upload answered {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    def warm_up(self) -> None:
        warm = GeneratedFile(WARMUP_BYTES, seed=SEED + 1)
        Path(self.upload(warm)["path"]).unlink()

    def measure(self, file: GeneratedFile, label: str = "bare") -> dict:
        print(f"[{label}] uploading {human(file.size)} ...", flush=True)
        cpu = client_cpu()
        with Probe(self.pgid) as probe:
            started = time.perf_counter()
            answer = self.upload(file)
            seconds = time.perf_counter() - started
        memory = probe.report()
        client_cpu_seconds = client_cpu() - cpu
        check(answer["size_bytes"] == file.size, f"[{label}] stored {answer['size_bytes']} bytes, sent {file.size}")
        check(answer["sha1"] == file.sha1, f"[bare] server sha1 {answer['sha1']} != client {file.sha1}")
        stored = Path(answer["path"])
        check(stored.stat().st_size == file.size, f"[bare] the stored file has {stored.stat().st_size} bytes")
        stored.unlink()
        return {"seconds": round(seconds, 3), "bytes": file.size, "mb_s": round(file.size / seconds / 1e6, 1),
                **memory, "client_cpu_seconds": round(client_cpu_seconds, 2), "server_sha1": answer["sha1"],
                "verified": True}


def stop_group(process: subprocess.Popen | None) -> None:
    """Stop a process we started in its own session (and its children), by its id."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


# The tus peer ---------------------------------------------------------------------------------------


def ensure_tus() -> dict:
    """Install @tus/server 2.x, @tus/file-store and tus-js-client into benchmarks/.tus
    (from the npm registry) unless they are there; returns their versions."""
    wanted = {"@tus/server": "2.", "@tus/file-store": "2.", "tus-js-client": "4."}

    def installed() -> dict | None:
        versions = {}
        for name, major in wanted.items():
            manifest = TUS_DIR / "node_modules" / name / "package.json"
            try:
                version = json.loads(manifest.read_text())["version"]
            except (OSError, ValueError, KeyError):
                return None
            if not version.startswith(major):
                return None
            versions[name] = version
        return versions

    versions = installed()
    if versions is None:
        print(f"[tus] installing {' '.join(TUS_PACKAGES)} into {TUS_DIR} ...", flush=True)
        TUS_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([NPM, "install", "--prefix", str(TUS_DIR), "--no-audit", "--no-fund", *TUS_PACKAGES],
                              capture_output=True, text=True)
        check(done.returncode == 0, f"[tus] npm install failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        versions = installed()
        check(versions is not None, "[tus] npm install did not install the expected versions")
    (TUS_DIR / ".gitignore").write_text("*\n")  # an install cache, never to be committed
    node_version = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
    return {**versions, "node": node_version}


def measure_tus(file: GeneratedFile, work: Path, label: str = "tus") -> dict:
    versions = ensure_tus()
    store = work / "store"
    store.mkdir(parents=True)
    pool = work / "pool.bin"
    file.write_pool(pool)
    command = [NODE, str(TUS_SCRIPT), "--modules", str(TUS_DIR), "--pool", str(pool), "--size", str(file.size),
               "--chunk-size", str(TUS_CHUNK), "--store", str(store), "--block", str(BLOCK)]
    print(f"[tus] starting @tus/server {versions['@tus/server']} + FileStore, tus-js-client "
          f"{versions['tus-js-client']} ({human(TUS_CHUNK)} chunks) ...", flush=True)
    log_path = work / "node.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                   start_new_session=True, text=True)
    try:
        def event() -> dict:
            line = process.stdout.readline()
            if not line:
                process.wait(timeout=30)
                raise BenchmarkFailure(f"[tus] node exited ({process.returncode}):\n"
                                       f"{log_path.read_text(errors='replace')[-3000:]}")
            message = json.loads(line)
            if message.get("event") == "error":
                raise BenchmarkFailure(f"[tus] {message.get('message')}")
            return message

        ready = event()
        check(ready.get("event") == "ready", f"[tus] unexpected first message {ready}")
        pgid = os.getpgid(process.pid)
        print(f"[{label}] uploading {human(file.size)} ...", flush=True)
        with Probe(pgid) as probe:
            process.stdin.write("go\n")
            process.stdin.flush()
            done = event()
        check(done.get("event") == "done", f"[tus] unexpected message {done}")
        server_memory = probe.report(worker=ready["server_pid"])
        client_memory = probe.report(worker=ready["client_pid"])
        process.wait(timeout=30)
        stored = Path(done["path"])
        check(stored.is_file(), f"[tus] {stored} is not there")
        stored_size = stored.stat().st_size
        check(stored_size == file.size, f"[tus] the stored file has {stored_size} bytes, sent {file.size}")
        stored_sha1 = sha1_of_file(stored)
        check(stored_sha1 == file.sha1, f"[tus] the stored file's sha1 {stored_sha1} != client {file.sha1}")
        seconds = float(done["seconds"])
        return {
            "seconds": round(seconds, 3), "bytes": file.size, "mb_s": round(file.size / seconds / 1e6, 1),
            "chunk_size": done["chunk_size"], **server_memory,
            "client_cpu_seconds": client_memory["worker_cpu_seconds"],
            "client_rss_growth_mib": client_memory["worker_rss_growth_mib"],
            "stored_sha1": stored_sha1, "stored_size_bytes": stored_size, "verified": True, "versions": versions,
            "note": "FileStore appends each PATCH body to the file: no hashing, no fsync, no join step",
        }
    finally:
        stop_group(process)
        shutil.rmtree(store, ignore_errors=True)
        pool.unlink(missing_ok=True)


# P3: B2 through the RawSimulator --------------------------------------------------------------------


def simulated_b2():
    from b2sdk.v3 import B2Api, B2HttpApiConfig, InMemoryAccountInfo

    from tests.unit.storage.support import FaithfulRawSimulator

    api = B2Api(InMemoryAccountInfo(), api_config=B2HttpApiConfig(_raw_api_class=FaithfulRawSimulator))
    sim = api.session.raw_api
    key_id, application_key = sim.create_account()
    api.authorize_account(key_id, application_key)
    bucket = api.create_bucket(B2_BUCKET, "allPrivate")
    return api, bucket


def b2_ours(file: GeneratedFile, part_size: int) -> tuple[float, str]:
    from course_app.storage.b2 import B2Storage

    api, _ = simulated_b2()
    storage = B2Storage(api, B2_BUCKET, part_size=part_size, sleep=lambda _: None)
    key = f"videos/bench/{uuid.uuid4()}"
    started = time.perf_counter()
    upload_id = storage.start_multipart(key, content_type="video/mp4")
    parts = []
    for number in range(1, file.part_count(part_size) + 1):
        start, end = file.part_range(number, part_size)
        parts.append(storage.put_part(key, upload_id, number, file.chunks(start, end), size=end - start))
    stored = storage.complete_multipart(key, upload_id, parts, content_type="video/mp4")
    seconds = time.perf_counter() - started
    check(stored.size == file.size, f"[b2 ours] stored {stored.size} bytes, not {file.size}")
    check([p.sha1 for p in parts] == file.part_sha1s, "[b2 ours] part SHA1s differ from the client's")
    digest = hashlib.sha1()
    for chunk in storage.open_range(key, stored.file_id):
        digest.update(chunk)
    check(digest.hexdigest() == file.sha1, f"[b2 ours] stored sha1 {digest.hexdigest()} != client {file.sha1}")
    storage.delete(key, stored.file_id)
    return seconds, digest.hexdigest()


def b2_direct(file: GeneratedFile, part_size: int) -> tuple[float, str]:
    api, bucket = simulated_b2()
    session = api.session
    key = f"videos/bench/{uuid.uuid4()}"
    started = time.perf_counter()
    file_id = session.start_large_file(bucket.id_, key, "video/mp4", {})["fileId"]
    sha1s = []
    for number in range(1, file.part_count(part_size) + 1):
        data = b"".join(file.chunks(*file.part_range(number, part_size)))
        sha1 = hashlib.sha1(data).hexdigest()
        session.upload_part(file_id, number, len(data), sha1, io.BytesIO(data))
        sha1s.append(sha1)
        del data
    finished = session.finish_large_file(file_id, sha1s)
    seconds = time.perf_counter() - started
    check(finished["contentLength"] == file.size, f"[b2 direct] stored {finished['contentLength']} bytes")
    check(sha1s == file.part_sha1s, "[b2 direct] part SHA1s differ from the client's")
    digest = hashlib.sha1()
    downloaded = bucket.download_file_by_id(file_id)
    for chunk in downloaded.response.iter_content(chunk_size=MIB):
        digest.update(chunk)
    downloaded.response.close()
    check(digest.hexdigest() == file.sha1, f"[b2 direct] stored sha1 {digest.hexdigest()} != client {file.sha1}")
    api.delete_file_version(file_id, key)
    return seconds, digest.hexdigest()


def measure_b2(size: int, part_size: int, repeat: int) -> dict:
    from b2sdk._internal.raw_simulator import RawSimulator

    check(part_size >= RawSimulator.MIN_PART_SIZE, f"--b2-part-size must be at least {RawSimulator.MIN_PART_SIZE}")
    check(size > part_size, "--b2-size must be larger than --b2-part-size (a multipart upload)")
    file = GeneratedFile(size)
    file.digest(part_size)
    runs: dict[str, list[dict]] = {"ours": [], "direct": []}
    for attempt in range(repeat):
        for name, work in (("ours", b2_ours), ("direct", b2_direct)):
            gc.collect()
            base = um.rss_mib(os.getpid()) or 0.0
            samples: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(um.rss_mib(os.getpid()) or 0.0)
                    stop.wait(um.SAMPLE_INTERVAL)

            thread = threading.Thread(target=sample, daemon=True)
            thread.start()
            try:
                seconds, _ = work(file, part_size)
            finally:
                stop.set()
                thread.join()
            runs[name].append({"seconds": round(seconds, 3), "mb_s": round(size / seconds / 1e6, 1),
                               "rss_growth_mib": round(max(samples, default=base) - base, 1)})
            print(f"[b2] {name} {attempt + 1}/{repeat}: {seconds:.2f}s", flush=True)
    result = {}
    for name, items in runs.items():
        median = statistics.median(r["seconds"] for r in items)
        result[name] = {"seconds": round(median, 3), "bytes": size, "mb_s": round(size / median / 1e6, 1),
                        "rss_growth_mib": max(r["rss_growth_mib"] for r in items), "runs": items,
                        "part_size": part_size, "part_count": file.part_count(part_size), "verified": True}
    return result


# Report ----------------------------------------------------------------------------------------------


def row(path: str, size: int | None, seconds: float | None, mb_s: float | None, ratio: float | None,
        rss: float | None, goal: str, met: bool | None, key: str) -> dict:
    return {"key": key, "path": path, "size_bytes": size, "seconds": seconds, "mb_s": mb_s,
            "ratio": None if ratio is None else round(ratio, 3), "rss_growth_mib": rss, "goal": goal,
            "met": met}


def build_rows(results: dict, args) -> list[dict]:
    rows = []
    bare, chunked, single = results.get("bare"), results.get("chunked"), results.get("single")
    tus, b2, huge = results.get("tus"), results.get("b2"), results.get("huge")

    def ratio_vs(value: dict | None, base: dict | None) -> float | None:
        return value["mb_s"] / base["mb_s"] if value and base else None

    if bare:
        rows.append(row("bare Granian+Starlette, 1 stream", bare["bytes"], bare["seconds"], bare["mb_s"], 1.0,
                        bare["worker_rss_growth_mib"], "baseline", None, "bare"))
    if chunked:
        r = ratio_vs(chunked, bare)
        rows.append(row(f"P1a app chunked {args.parallel}x{human(args.chunk_size)} parts", chunked["bytes"],
                        chunked["seconds"], chunked["mb_s"], r, chunked["worker_rss_growth_mib"],
                        f">= {P1_GOAL:.2f} x bare", None if r is None else r >= P1_GOAL, "P1a"))
    if single:
        r = ratio_vs(single, bare)
        rows.append(row("P1b app single POST /api/upload", single["bytes"], single["seconds"], single["mb_s"], r,
                        single["worker_rss_growth_mib"], f">= {P1_GOAL:.2f} x bare",
                        None if r is None else r >= P1_GOAL, "P1b"))
    if tus:
        rows.append(row(f"P1-peer tus ({human(tus['chunk_size'])} chunks, FileStore)", tus["bytes"], tus["seconds"],
                        tus["mb_s"], ratio_vs(tus, bare), tus["worker_rss_growth_mib"], "(peer, vs bare)", None,
                        "P1-peer"))
        if chunked:
            r = chunked["mb_s"] / tus["mb_s"]
            rows.append(row("P1-peer chunked vs tus (ratio chunked/tus)", chunked["bytes"], None, None, r, None,
                            "chunked >= tus (>= 1.00)", r >= 1.0, "P1-peer-vs"))
    if chunked:
        rows.append(row("P2a worker RSS growth, chunked", chunked["bytes"], None, None, None,
                        chunked["worker_rss_growth_mib"], f"<= {RSS_BUDGET_MIB} MiB",
                        chunked["worker_rss_growth_mib"] <= RSS_BUDGET_MIB, "P2a"))
    if single:
        rows.append(row("P2b worker RSS growth, single", single["bytes"], None, None, None,
                        single["worker_rss_growth_mib"], f"<= {RSS_BUDGET_MIB} MiB",
                        single["worker_rss_growth_mib"] <= RSS_BUDGET_MIB, "P2b"))
    if b2:
        ours, direct = b2["ours"], b2["direct"]
        r = ours["mb_s"] / direct["mb_s"]
        rows.append(row(f"P3 b2sdk direct, {human(direct['part_size'])} parts (sim)", direct["bytes"],
                        direct["seconds"], direct["mb_s"], 1.0, direct["rss_growth_mib"], "baseline", None, "P3-direct"))
        rows.append(row(f"P3 B2Storage multipart, {human(ours['part_size'])} parts (sim)", ours["bytes"],
                        ours["seconds"], ours["mb_s"], r, ours["rss_growth_mib"], f">= {P3_GOAL:.2f} x direct",
                        r >= P3_GOAL, "P3"))
    if huge:
        rows.append(row(f"5 huge app chunked {args.parallel}x{human(args.huge_chunk_size)} parts", huge["bytes"],
                        huge["seconds"], huge["mb_s"], ratio_vs(huge, bare), huge["worker_rss_growth_mib"],
                        "works (size+sha1 ok)", bool(huge.get("verified")), "5"))
    return rows


def render(rows: list[dict]) -> str:
    headers = ["path", "size", "seconds", "MB/s", "ratio", "RSS growth MiB", "goal", "met?"]

    def fmt(r: dict) -> list[str]:
        return [
            r["path"],
            human(r["size_bytes"]) if r["size_bytes"] else "-",
            f"{r['seconds']:.2f}" if r["seconds"] is not None else "-",
            f"{r['mb_s']:.1f}" if r["mb_s"] is not None else "-",
            f"{r['ratio']:.2f}" if r["ratio"] is not None else "-",
            f"{r['rss_growth_mib']:+.1f}" if r["rss_growth_mib"] is not None else "-",
            r["goal"],
            "-" if r["met"] is None else ("yes" if r["met"] else "NO"),
        ]

    cells = [headers] + [fmt(r) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(w) if i in (0, 6) else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


# Main ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    global HTTP_TIMEOUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=um.parse_size, default=um.parse_size("2G"), help="P1/P2 file size (default 2G)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "resumable_uploads.json",
                        help="JSON results (default benchmarks/results/resumable_uploads.json)")
    parser.add_argument("--chunk-size", type=um.parse_size, default=um.parse_size("64M"),
                        help="part size of the chunked path (COURSE_UPLOAD_CHUNK_BYTES; default 64M)")
    parser.add_argument("--parallel", type=int, default=3, help="concurrent part uploads (default 3)")
    parser.add_argument("--b2-size", type=um.parse_size, default=um.parse_size("256M"),
                        help="P3 file size (kept in memory by the simulator; default 256M)")
    parser.add_argument("--b2-part-size", type=um.parse_size, default=um.parse_size("16M"),
                        help="P3 part size (default 16M)")
    parser.add_argument("--b2-repeat", type=int, default=3, help="P3 runs per side; the median counts (default 3)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of P1 (bare, chunked, single, tus in turn); the table shows the median "
                             "time and the largest RSS growth (default 1)")
    parser.add_argument("--skip-tus", action="store_true", help="skip the tus peer (P1-peer)")
    parser.add_argument("--skip-b2", action="store_true", help="skip P3")
    parser.add_argument("--huge", action="store_true", help="also upload a --huge-size file through the chunked API")
    parser.add_argument("--huge-size", type=um.parse_size, default=um.parse_size("20G"), help="default 20G")
    parser.add_argument("--huge-chunk-size", type=um.parse_size, default=um.parse_size("256M"),
                        help="part size of the huge upload (default 256M; the app is restarted with it)")
    parser.add_argument("--web-dir", type=Path, default=HERE / "results" / ".web-bench",
                        help="REFLEX_WEB_WORKDIR (default benchmarks/results/.web-bench)")
    args = parser.parse_args(argv)
    if args.parallel < 1 or args.repeat < 1:
        parser.error("--parallel and --repeat must be at least 1")
    if args.chunk_size < 64 * 1024 or args.huge_chunk_size < 64 * 1024:
        parser.error("part sizes must be at least 64K (the app's minimum)")

    import filetype
    import httpx

    HTTP_TIMEOUT = httpx.Timeout(60.0, read=1800.0, write=1800.0)
    kind = filetype.guess(um.MP4_HEADER + bytes(8192))
    if kind is None or kind.mime != "video/mp4":
        print(f"filetype does not see the generated header as video/mp4 ({kind})", file=sys.stderr)
        return 1

    work = Path(tempfile.mkdtemp(prefix="course-resumable-bench-"))
    free = shutil.disk_usage(work).free
    need = int(2.5 * args.size) + GIB
    if free < need:
        print(f"not enough room in {work.parent}: {human(free)} free, need about {human(need)}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        return 1

    results: dict = {}
    app: App | None = None
    bare: Bare | None = None
    started_at = datetime.now(timezone.utc)
    try:
        print(f"[file] hashing the {human(args.size)} file and its {human(args.chunk_size)} parts (not timed) ...",
              flush=True)
        began = time.perf_counter()
        file = GeneratedFile(args.size)
        file.digest(args.chunk_size)
        print(f"[file] sha1 {file.sha1} ({time.perf_counter() - began:.1f}s)", flush=True)

        # P1/P2: the app and the bare server both up; in each round every path once, in turn
        app = App(work / "app", args.web_dir.resolve(), max_bytes=max(args.size, args.huge_size if args.huge else 0,
                                                                      5 * GIB), chunk_size=args.chunk_size)
        app.start()
        app.warm_up(args.parallel)
        bare = Bare(work / "bare")
        bare.start()
        bare.warm_up()
        if not args.skip_tus:
            ensure_tus()
        runs: dict[str, list[dict]] = {"bare": [], "chunked": [], "single": [], "tus": []}
        for round_ in range(1, args.repeat + 1):
            tag = f" {round_}/{args.repeat}" if args.repeat > 1 else ""
            runs["bare"].append(bare.measure(file, f"bare{tag}"))
            runs["chunked"].append(measure_app_path(app, file, "chunked", args.parallel, f"P1a chunked{tag}"))
            runs["single"].append(measure_app_path(app, file, "single", args.parallel, f"P1b single{tag}"))
            if not args.skip_tus:
                runs["tus"].append(measure_tus(file, work / "tus", f"tus{tag}"))
        for name, items in runs.items():
            if items:
                results[name] = summarize(items)
        bare.stop()

        # 5: the huge upload (the app restarts with the huge part size if it differs)
        if args.huge:
            results["huge"] = run_huge(app, args, work)
        app.stop()
        app = None

        # P3
        if not args.skip_b2:
            print(f"[b2] {human(args.b2_size)} in {human(args.b2_part_size)} parts through the RawSimulator, "
                  f"{args.b2_repeat} run(s) each ...", flush=True)
            results["b2"] = measure_b2(args.b2_size, args.b2_part_size, args.b2_repeat)
    except BenchmarkFailure as failure:
        print(f"\nBENCHMARK FAILED: {failure}", file=sys.stderr)
        if app is not None:
            print(f"[app] server log (last lines):\n{app.server.log_tail(40)}", file=sys.stderr)
        return 1
    finally:
        if app is not None:
            app.stop()
        if bare is not None:
            bare.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = build_rows(results, args)
    report = render(rows)
    print()
    print(report)
    output = {
        "created_at": started_at.isoformat(timespec="seconds"),
        "arguments": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "file_sha1": file.sha1,
        "rows": rows,
        "results": results,
        "table": report,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nJSON written to {args.output}")
    return 0


def run_huge(app: App, args, work: Path) -> dict:
    """The --huge upload: restarts the app with --huge-chunk-size parts if needed."""
    storage = app.data_dir
    free = shutil.disk_usage(storage).free
    need = int(2.1 * args.huge_size) + 2 * GIB  # the parts and the joined file, at the moment of joining
    df = subprocess.run(["df", "-h", str(storage)], capture_output=True, text=True).stdout.strip()
    print(f"[huge] free space where the app stores files:\n{df}", flush=True)
    check(free >= need, f"[huge] not enough room: {human(free)} free, need about {human(need)}")
    if args.huge_chunk_size != app.chunk_size:
        app.stop()
        app.server.env["COURSE_UPLOAD_CHUNK_BYTES"] = str(args.huge_chunk_size)
        app.chunk_size = args.huge_chunk_size
        app.start()
        app.warm_up(args.parallel)
    print(f"[huge] hashing the {human(args.huge_size)} file and its {human(args.huge_chunk_size)} parts "
          "(not timed) ...", flush=True)
    began = time.perf_counter()
    huge = GeneratedFile(args.huge_size, seed=SEED + 2)
    huge.digest(args.huge_chunk_size)
    print(f"[huge] sha1 {huge.sha1} ({time.perf_counter() - began:.1f}s)", flush=True)
    result = measure_app_path(app, huge, "chunked", args.parallel, "5 huge chunked")
    result["part_size"] = args.huge_chunk_size
    result["df_before"] = df
    return result


if __name__ == "__main__":
    sys.exit(main())
