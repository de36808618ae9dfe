"""Resumable (chunked) uploads next to the single-request upload, a bare server, the
reference tus server, and b2sdk used directly: speed and memory, in one run, every
path at the same concurrency.

Run from the repository root:

    .venv/bin/python benchmarks/resumable_uploads.py                 # 1 GiB, 1 and 3 streams, all paths
    .venv/bin/python benchmarks/resumable_uploads.py --size 512M --streams 1 --skip-tus
    .venv/bin/python benchmarks/resumable_uploads.py --huge          # adds a 20 GiB chunked upload

What it measures (everything on loopback, on this machine):

P1  Throughput of ``--size`` bytes through the real app (``tests.server.AppServer``:
    ``reflex run --env prod --single-port``, local storage in a temp folder), at each
    concurrency in ``--streams`` (default 1 and 3 streams), every path with the same
    number of request bodies in flight and the same total bytes:
    (a) chunked: ``POST /api/uploads`` (session), the parts with N concurrent
        ``PUT /api/uploads/{id}/parts/{n}`` (one httpx client per thread, each part
        generated on the fly with its X-Part-SHA1), ``POST .../complete``: one file
        of ``--size`` bytes, N parts in flight at a time (what a client does);
    (b) single request: N concurrent ``POST /api/upload`` with a streamed multipart
        body, each one of N files of ``--size``/N bytes;
    bare: a bare Starlette route served by Granian in its own process
        (``upload_memory.make_bare_app``), which streams the bytes to a file, hashing
        and fsyncing it: N concurrent requests, the same N files as (b).
    Goal: (a) and (b) >= 0.90 of bare at the same N. The ratio shown is the median of
    the ratios of each round (bare and the path measured in the same round, so both
    saw the same load); MB/s is the median over the rounds.
P1-peer  The same N files through ``@tus/server`` 2.x + ``@tus/file-store``, driven by
    ``tus-js-client`` (50 MiB chunks) in Node (``benchmarks/tus_peer.mjs``; the npm
    packages are installed into ``benchmarks/.tus`` on first use): N uploads at once
    from one client to one server (@tus/server has no concatenation extension, so
    tus-js-client cannot send one file in parallel). FileStore appends each PATCH to
    the file: no hashing, no fsync. Goal: our chunked path at N streams is no slower
    than tus at N streams.
P2  Peak RSS growth of the app's serving worker (the process of the server's group
    that used the most CPU time) during (a) and (b), sampled every 50 ms from /proc,
    over a baseline taken after warm-up uploads; the largest over the rounds. Goal:
    <= 16 MiB.
P3  B2 multipart through b2sdk's RawSimulator (in memory, in this process, no HTTP):
    ``B2Storage.start_multipart`` + ``put_part`` per part + ``complete_multipart``
    for a ``--b2-size`` file in ``--b2-part-size`` parts, versus the same parts sent
    with b2sdk directly (``api.session.start_large_file`` / ``upload_part`` /
    ``finish_large_file``). Median of ``--b2-repeat`` runs each. Goal: ours >= 0.80
    of direct. It measures Python overhead only, not B2.
5   With ``--huge``: a ``--huge-size`` (20 GiB) chunked upload through the app
    (``--huge-chunk-size`` parts, as many in flight as the largest ``--streams``) to
    show it works: size and SHA1 checked, time and RSS growth reported, the stored
    file deleted afterwards. Skipped by default.

The files: a 24-byte MP4 ``ftyp`` header (``filetype`` calls it video/mp4) and
deterministic filler, generated in 1 MiB blocks while it is sent (block i is one of 8
pseudo-random blocks stamped with i), never held whole: a client holds at most one
block per thread. At N streams the N files are whole blocks of the big file's
numbering, each starting with the header, so no two are alike. Their SHA1s and the
SHA1 of every part are computed in a pass before the timed uploads (a real client
hashes each part before sending it), so no client spends CPU on hashing while it
sends (the clients share the machine's cores with the servers). Every path is
verified: size and SHA1 of what the server stored must match, or the script stops
with exit code 1.

Each round measures every path at every concurrency, the paths in a different order
each round (so slow drift in the machine's load does not always hit the same path);
``--repeat`` rounds (default 3). The machine's 1-minute load average and the CPU time
other processes used during each measurement are recorded; the table shows, for each
row, the highest load and the most foreign CPU time seen by its runs. Throughput is file bytes / wall seconds in MB/s
(10^6 bytes a second); memory in MiB. Prints one table and writes it, with every
measurement, as JSON (``--output``). Every server, process and temporary file the
script starts or creates is stopped or removed on exit.
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
RSS_BUDGET_MIB = 16  # issue 11: P2 <= 16 MiB for chunked and single uploads
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
    """``size`` bytes: block i (``BLOCK`` bytes) is pool block n % 8 with its first
    8 bytes replaced by n = ``first_block`` + i (big-endian); block 0 starts with the
    MP4 header, then n. With first_block 0: the same bytes as
    ``upload_memory.MultipartUpload`` with chunk_size=1 MiB and the same seed; always
    the same as ``tus_peer.mjs`` given the pool and the share ``first_block:size``."""

    def __init__(self, size: int, seed: int = SEED, *, first_block: int = 0, pool: list[bytes] | None = None) -> None:
        import random

        self.size = size
        self.seed = seed
        self.first_block = first_block
        if pool is None:
            rng = random.Random(seed)
            pool = [rng.randbytes(BLOCK) for _ in range(POOL_BLOCKS)]
        self.pool = pool
        self.sha1: str | None = None
        self.part_size: int | None = None
        self.part_sha1s: list[str] = []

    def block(self, index: int) -> bytes:
        prefix = um.MP4_HEADER if index == 0 else b""
        number = self.first_block + index
        return prefix + number.to_bytes(8, "big") + self.pool[number % POOL_BLOCKS][len(prefix) + 8 :]

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

    def digest(self, part_size: int | None = None) -> None:
        """One pass: the whole file's SHA1 and each part's (not timed)."""
        whole = hashlib.sha1()
        self.part_sha1s = []
        part_size = part_size or self.size
        for number in range(1, self.part_count(part_size) + 1):
            part = hashlib.sha1()
            for chunk in self.chunks(*self.part_range(number, part_size)):
                whole.update(chunk)
                part.update(chunk)
            self.part_sha1s.append(part.hexdigest())
        self.sha1, self.part_size = whole.hexdigest(), part_size

    def shares(self, count: int) -> list[GeneratedFile]:
        """``count`` files holding as many bytes as this one in all, for ``count``
        concurrent uploads: whole blocks each (the last takes the rest), continuing
        this file's block numbering, each starting with the MP4 header (a video file
        of its own; no two alike). One share is this file."""
        if count == 1:
            return [self]
        per = self.size // count // BLOCK * BLOCK
        check(per > 0, f"{human(self.size)} is too small for {count} streams of whole {human(BLOCK)} blocks")
        sizes = [per] * (count - 1) + [self.size - per * (count - 1)]
        return [GeneratedFile(size, self.seed, first_block=self.first_block + k * per // BLOCK, pool=self.pool)
                for k, size in enumerate(sizes)]

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
    """Several runs of one path at one concurrency: the median time (and its run's
    details), the largest worker RSS growth, the highest load average seen."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    worst = max(runs, key=lambda r: r["worker_rss_growth_mib"])
    median.update({
        "repeat": len(runs),
        "worker_rss_growth_mib": worst["worker_rss_growth_mib"],
        "mb_s": round(statistics.median(r["mb_s"] for r in runs), 1),
        "mb_s_all": [r["mb_s"] for r in runs],
        "server_cpu_seconds": round(statistics.median(r["worker_cpu_seconds"] for r in runs), 2),
        "load_max": max(max(r["loadavg_before_after"]) for r in runs),
        "foreign_cpu_seconds_max": max(r["foreign_cpu_seconds"] for r in runs),
        "foreign_cpu_seconds_all": [r["foreign_cpu_seconds"] for r in runs],
        "verified": all(r.get("verified") for r in runs),
        "runs": runs if len(runs) > 1 else None,
    })
    return median


def paired_ratio(runs: list[dict], base: list[dict]) -> float | None:
    """The median over the rounds of (this path's MB/s / the base's MB/s in the same round)."""
    ratios = [r["mb_s"] / b["mb_s"] for r, b in zip(runs, base)]
    return statistics.median(ratios) if ratios else None


def concurrently(jobs: list[Callable[[], object]]) -> tuple[float, list]:
    """Run the jobs at once, a thread each, released together; returns the wall
    seconds from the release until the last one finished, and their results. The
    first error raised by a job is raised once all have ended."""
    gate = threading.Barrier(len(jobs) + 1)
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Callable[[], object]) -> None:
        gate.wait()
        try:
            results[index] = job()
        except BaseException as error:  # re-raised in the calling thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, job), name=f"stream-{i + 1}") for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return seconds, results


# The app ---------------------------------------------------------------------------------------


class App:
    """The real app (prod build) with a signed-up user, a course and a chapter."""

    def __init__(self, work: Path, web_dir: Path, *, max_bytes: int, chunk_size: int, app_default: bool) -> None:
        from tests.server import AppServer

        self.work = work
        self.data_dir = work / "data"
        self.data_dir.mkdir(parents=True)
        limit = "1000000/minute"
        env = {
            **um.app_env(web_dir, max_bytes),  # no processing worker: a finished upload stays "processing"
            "COURSE_QUOTA_BYTES": str(4 * max_bytes),
            "COURSE_PART_RATE_LIMIT": limit,
            "COURSE_UPLOAD_RATE_LIMIT": limit,
            "COURSE_API_RATE_LIMIT": limit,
        }
        if not app_default:  # else the part size the app picks itself, as the browser gets it
            env["COURSE_UPLOAD_CHUNK_BYTES"] = str(chunk_size)
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
        self.course_id, self.chapter_id = um.sign_up_with_chapter(self.client, "app", "Resumable upload benchmark")

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

    def singles(self, files: list[GeneratedFile], label: str) -> dict:
        """One ``POST /api/upload`` per file, all at once (a client each)."""
        clients = [self.new_client() for _ in files]
        bodies = [
            um.MultipartUpload({"course_id": self.course_id, "chapter_id": self.chapter_id,
                                "title": f"{label} {k + 1}/{len(files)} {human(file.size)}", "size": str(file.size)},
                               file.size, source=file.chunks, digests=False)  # its SHA1 is known
            for k, file in enumerate(files)
        ]

        def send(client, body: um.MultipartUpload) -> Callable[[], dict]:
            def job() -> dict:
                reply = client.post("/api/upload", content=body, headers=body.headers)
                check(reply.status_code in (200, 201),
                      f"[{label}] upload answered {reply.status_code}: {reply.text[:300]}")
                return reply.json()
            return job

        try:
            seconds, videos = concurrently([send(client, body) for client, body in zip(clients, bodies)])
        finally:
            for client in clients:
                client.close()
        for body in bodies:  # what the server stored is checked against each file's SHA1 by verify_and_delete
            check(body.sent == body.content_length, f"[{label}] sent {body.sent} of {body.content_length} bytes")
        return {"videos": videos, "seconds": seconds, "body_bytes": sum(body.content_length for body in bodies)}

    # verification ------------------------------------------------------------

    def verify_and_delete(self, videos: list[dict], files: list[GeneratedFile], label: str,
                          *, hash_on_disk: bool = True) -> dict:
        """Each video is ready with its file's size and SHA1, and so is its stored
        file; then every video is deleted and storage must become empty."""
        stored_sha1s, stored_sizes = [], []
        for video, file in zip(videos, files, strict=True):
            check(video.get("status") in um.UPLOADED, f"[{label}] the video is {video.get('status')!r}, not uploaded")
            check(video.get("size_bytes") == file.size,
                  f"[{label}] size_bytes {video.get('size_bytes')} != {file.size}")
            check(video.get("sha1") == file.sha1, f"[{label}] server sha1 {video.get('sha1')} != client {file.sha1}")
            stored = um._stored_file(self.data_dir / "storage", file.sha1, file.size)
            stored_size = stored.stat().st_size
            check(stored_size == file.size, f"[{label}] the stored file has {stored_size} bytes")
            disk_sha1 = sha1_of_file(stored) if hash_on_disk else None
            if hash_on_disk:
                check(disk_sha1 == file.sha1, f"[{label}] the stored file's sha1 {disk_sha1} != client {file.sha1}")
            stored_sha1s.append(disk_sha1)
            stored_sizes.append(stored_size)
        um.delete_for_good(self.client, [video["id"] for video in videos], self.data_dir / "storage", label)
        return {"server_sha1": [v["sha1"] for v in videos], "server_size_bytes": [v["size_bytes"] for v in videos],
                "stored_sha1": stored_sha1s, "stored_size_bytes": stored_sizes, "verified": True}

    def warm_up(self, parallel: int) -> None:
        small = GeneratedFile(WARMUP_BYTES, seed=SEED + 1)
        small.digest(self.chunk_size)
        result = self.chunked(small, parallel, "warm-up-chunked")
        self.verify_and_delete([result["video"]], [small], "warm-up-chunked")
        shares = small.shares(parallel)
        for share in shares:
            share.digest()
        result = self.singles(shares, "warm-up-single")
        self.verify_and_delete(result["videos"], shares, "warm-up-single")


def measure_app_path(app: App, files: list[GeneratedFile], kind: str, streams: int, label: str,
                     *, hash_on_disk: bool = True) -> dict:
    """``kind`` chunked: one file, ``streams`` parts in flight; single: the files at once."""
    total = sum(file.size for file in files)
    what = f"{human(total)} as {len(files)} file(s)" + (f", {streams} part(s) in flight" if kind == "chunked" else "")
    print(f"[{label}] uploading {what} ...", flush=True)
    cpu = client_cpu()
    with Probe(app.pgid) as probe:
        if kind == "chunked":
            (file,) = files
            result = app.chunked(file, streams, label)
            result["videos"] = [result.pop("video")]
        else:
            result = app.singles(files, label)
    memory = probe.report()
    client_cpu_seconds = client_cpu() - cpu
    videos = result.pop("videos")
    verified = app.verify_and_delete(videos, files, label, hash_on_disk=hash_on_disk)
    seconds = result.pop("seconds")
    return {"seconds": round(seconds, 3), "bytes": total, "files": len(files), "streams": streams,
            "mb_s": round(total / seconds / 1e6, 1), **result, **memory,
            "client_cpu_seconds": round(client_cpu_seconds, 2), **verified}


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

    def upload(self, file: GeneratedFile, client=None) -> dict:
        reply = (client or self.client).post(
            "/upload", content=file.chunks(),
            headers={"Content-Length": str(file.size), "Content-Type": "application/octet-stream"})
        check(reply.status_code == 201, f"[bare] upload answered {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    def warm_up(self) -> None:
        warm = GeneratedFile(WARMUP_BYTES, seed=SEED + 1)
        Path(self.upload(warm)["path"]).unlink()

    def measure(self, files: list[GeneratedFile], label: str = "bare") -> dict:
        """The files at once, a request (and a client) each."""
        import httpx

        total = sum(file.size for file in files)
        print(f"[{label}] uploading {human(total)} as {len(files)} file(s) ...", flush=True)
        clients = [httpx.Client(base_url=self.base_url, timeout=HTTP_TIMEOUT) for _ in files]
        cpu = client_cpu()
        try:
            with Probe(self.pgid) as probe:
                seconds, answers = concurrently([
                    (lambda client=client, file=file: self.upload(file, client)) for client, file in zip(clients, files)
                ])
        finally:
            for client in clients:
                client.close()
        memory = probe.report()
        client_cpu_seconds = client_cpu() - cpu
        for answer, file in zip(answers, files):
            check(answer["size_bytes"] == file.size, f"[{label}] stored {answer['size_bytes']} bytes, sent {file.size}")
            check(answer["sha1"] == file.sha1, f"[{label}] server sha1 {answer['sha1']} != client {file.sha1}")
            stored = Path(answer["path"])
            check(stored.stat().st_size == file.size, f"[{label}] the stored file has {stored.stat().st_size} bytes")
            stored.unlink()
        return {"seconds": round(seconds, 3), "bytes": total, "files": len(files), "streams": len(files),
                "mb_s": round(total / seconds / 1e6, 1), **memory, "client_cpu_seconds": round(client_cpu_seconds, 2),
                "server_sha1": [answer["sha1"] for answer in answers], "verified": True}


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


def measure_tus(files: list[GeneratedFile], work: Path, label: str = "tus") -> dict:
    """The files at once through one tus server, from one tus-js-client process."""
    versions = ensure_tus()
    store = work / "store"
    store.mkdir(parents=True)
    pool = work / "pool.bin"
    files[0].write_pool(pool)
    check(all(file.pool is files[0].pool for file in files), "[tus] the files must share one pool")
    total = sum(file.size for file in files)
    shares = ",".join(f"{file.first_block}:{file.size}" for file in files)
    command = [NODE, str(TUS_SCRIPT), "--modules", str(TUS_DIR), "--pool", str(pool), "--size", str(total),
               "--chunk-size", str(TUS_CHUNK), "--store", str(store), "--block", str(BLOCK), "--shares", shares]
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
        print(f"[{label}] uploading {human(total)} as {len(files)} file(s) ...", flush=True)
        with Probe(pgid) as probe:
            process.stdin.write("go\n")
            process.stdin.flush()
            done = event()
        check(done.get("event") == "done", f"[tus] unexpected message {done}")
        server_memory = probe.report(worker=ready["server_pid"])
        client_memory = probe.report(worker=ready["client_pid"])
        process.wait(timeout=30)
        uploads = done["uploads"]
        check(len(uploads) == len(files), f"[tus] {len(uploads)} uploads reported, {len(files)} sent")
        stored_sha1s, stored_sizes = [], []
        for upload, file in zip(uploads, files):
            stored = Path(upload["path"])
            check(stored.is_file(), f"[tus] {stored} is not there")
            stored_size = stored.stat().st_size
            check(stored_size == file.size, f"[tus] the stored file has {stored_size} bytes, sent {file.size}")
            stored_sha1 = sha1_of_file(stored)
            check(stored_sha1 == file.sha1, f"[tus] the stored file's sha1 {stored_sha1} != client {file.sha1}")
            stored_sha1s.append(stored_sha1)
            stored_sizes.append(stored_size)
        seconds = float(done["seconds"])
        return {
            "seconds": round(seconds, 3), "bytes": total, "files": len(files), "streams": len(files),
            "mb_s": round(total / seconds / 1e6, 1), "chunk_size": done["chunk_size"], **server_memory,
            "client_cpu_seconds": client_memory["worker_cpu_seconds"],
            "client_rss_growth_mib": client_memory["worker_rss_growth_mib"],
            "stored_sha1": stored_sha1s, "stored_size_bytes": stored_sizes, "verified": True, "versions": versions,
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

PATHS = ("bare", "chunked", "single", "tus")


def row(path: str, streams: int | None, size: int | None, seconds: float | None, mb_s: float | None,
        ratio: float | None, rss: float | None, measured: dict | None, goal: str, met: bool | None, key: str) -> dict:
    """``measured``: the summary whose load and foreign CPU time the row shows."""
    return {"key": key, "path": path, "streams": streams, "size_bytes": size, "seconds": seconds, "mb_s": mb_s,
            "ratio": None if ratio is None else round(ratio, 3), "rss_growth_mib": rss,
            "server_cpu_seconds": measured.get("server_cpu_seconds") if measured else None,
            "load_max": measured.get("load_max") if measured else None,
            "foreign_cpu_seconds_max": measured.get("foreign_cpu_seconds_max") if measured else None,
            "goal": goal, "met": met}


def build_rows(results: dict, args) -> list[dict]:
    rows = []
    for streams in args.streams:
        measured = results["p1"].get(str(streams), {})
        ratios = results["ratios"].get(str(streams), {})
        bare, chunked, single, tus = (measured.get(path) for path in PATHS)
        s = streams
        if bare:
            rows.append(row(f"bare Granian+Starlette, {s} file(s) at once", s, bare["bytes"], bare["seconds"],
                            bare["mb_s"], 1.0, bare["worker_rss_growth_mib"], bare, "baseline", None,
                            f"bare-{s}"))
        if chunked:
            r = ratios.get("chunked_vs_bare")
            rows.append(row(f"P1a app chunked, 1 file, {s} x {human(args.chunk_size)} parts in flight", s,
                            chunked["bytes"], chunked["seconds"], chunked["mb_s"], r,
                            chunked["worker_rss_growth_mib"], chunked, f">= {P1_GOAL:.2f} x bare",
                            None if r is None else r >= P1_GOAL, f"P1a-{s}"))
        if single:
            r = ratios.get("single_vs_bare")
            rows.append(row(f"P1b app single POST, {s} file(s) at once", s, single["bytes"], single["seconds"],
                            single["mb_s"], r, single["worker_rss_growth_mib"], single,
                            f">= {P1_GOAL:.2f} x bare", None if r is None else r >= P1_GOAL, f"P1b-{s}"))
        if tus:
            rows.append(row(f"P1-peer tus, {s} upload(s) at once ({human(tus['chunk_size'])} chunks, FileStore)", s,
                            tus["bytes"], tus["seconds"], tus["mb_s"], ratios.get("tus_vs_bare"),
                            tus["worker_rss_growth_mib"], tus, "(peer, vs bare)", None, f"P1-peer-{s}"))
            r = ratios.get("chunked_vs_tus")
            if r is not None:
                rows.append(row("P1-peer chunked / tus", s, chunked["bytes"], None, None, r, None, None,
                                "chunked >= tus (>= 1.00)", r >= 1.0, f"P1-peer-vs-{s}"))
    for streams in args.streams:
        measured = results["p1"].get(str(streams), {})
        for kind, key in (("chunked", "P2a"), ("single", "P2b")):
            value = measured.get(kind)
            if value:
                growth = value["worker_rss_growth_mib"]
                rows.append(row(f"{key} worker RSS growth, {kind}", streams, value["bytes"], None, None, None, growth,
                                value, f"<= {RSS_BUDGET_MIB} MiB", growth <= RSS_BUDGET_MIB,
                                f"{key}-{streams}"))
    b2, huge = results.get("b2"), results.get("huge")
    if b2:
        ours, direct = b2["ours"], b2["direct"]
        r = ours["mb_s"] / direct["mb_s"]
        rows.append(row(f"P3 b2sdk direct, {human(direct['part_size'])} parts (sim)", 1, direct["bytes"],
                        direct["seconds"], direct["mb_s"], 1.0, direct["rss_growth_mib"], None, "baseline", None,
                        "P3-direct"))
        rows.append(row(f"P3 B2Storage multipart, {human(ours['part_size'])} parts (sim)", 1, ours["bytes"],
                        ours["seconds"], ours["mb_s"], r, ours["rss_growth_mib"], None, f">= {P3_GOAL:.2f} x direct",
                        r >= P3_GOAL, "P3"))
    if huge:
        streams = max(args.streams)
        rows.append(row(f"5 huge app chunked {streams} x {human(args.huge_chunk_size)} parts", streams,
                        huge["bytes"], huge["seconds"], huge["mb_s"], None, huge["worker_rss_growth_mib"],
                        {"load_max": max(huge["loadavg_before_after"]),
                         "foreign_cpu_seconds_max": huge["foreign_cpu_seconds"]},
                        "works (size+sha1 ok)", bool(huge.get("verified")), "5"))
    return rows


def render(rows: list[dict]) -> str:
    headers = ["path", "streams", "size", "seconds", "MB/s", "ratio", "RSS growth MiB", "server CPU s", "load",
               "other CPU s", "goal", "met?"]

    def fmt(r: dict) -> list[str]:
        return [
            r["path"],
            str(r["streams"]) if r["streams"] else "-",
            human(r["size_bytes"]) if r["size_bytes"] else "-",
            f"{r['seconds']:.2f}" if r["seconds"] is not None else "-",
            f"{r['mb_s']:.1f}" if r["mb_s"] is not None else "-",
            f"{r['ratio']:.2f}" if r["ratio"] is not None else "-",
            f"{r['rss_growth_mib']:+.1f}" if r["rss_growth_mib"] is not None else "-",
            f"{r['server_cpu_seconds']:.2f}" if r.get("server_cpu_seconds") is not None else "-",
            f"{r['load_max']:.2f}" if r["load_max"] is not None else "-",
            f"{r['foreign_cpu_seconds_max']:.2f}" if r["foreign_cpu_seconds_max"] is not None else "-",
            r["goal"],
            "-" if r["met"] is None else ("yes" if r["met"] else "NO"),
        ]

    cells = [headers] + [fmt(r) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = []
    for index, line in enumerate(cells):
        lines.append("  ".join(cell.ljust(w) if i in (0, 10) else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def describe(args, file: GeneratedFile, share_sets: dict[int, list[GeneratedFile]]) -> str:
    """The sizes and what "N streams" means, printed above the table."""
    lines = [f"{human(file.size)} per path and concurrency; {args.repeat} round(s), median MB/s, ratio = median of "
             "the per-round ratios to bare at the same streams.",
             "load: the highest 1-minute load average around the row's runs (this benchmark's own processes "
             "included); other CPU s: the most CPU seconds other processes used during one of them; server CPU s: "
             "the median CPU seconds of the server's processes for the row's bytes (the chunked path hashes every "
             "byte twice, for its part's SHA1 and the whole file's; bare and single once)."]
    for streams, shares in share_sets.items():
        sizes = ", ".join(human(share.size) for share in shares)
        lines.append(f"  {streams} stream(s): bare, single and tus send {len(shares)} file(s) at once ({sizes}); "
                     f"chunked sends 1 file of {human(file.size)}, {streams} x {human(args.chunk_size)} part(s) "
                     "in flight.")
    return "\n".join(lines)


# Main ----------------------------------------------------------------------------------------------------


def stream_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(item) for item in text.split(",") if item.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of stream counts such as 1,3") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("stream counts must be 1 or more")
    return counts


def main(argv: list[str] | None = None) -> int:
    global HTTP_TIMEOUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=um.parse_size, default=um.parse_size("1G"),
                        help="P1/P2 bytes per path and concurrency (default 1G)")
    parser.add_argument("--streams", type=stream_counts, default=[1, 3],
                        help="concurrencies to measure every path at, comma-separated (default 1,3)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "resumable_uploads.json",
                        help="JSON results (default benchmarks/results/resumable_uploads.json)")
    parser.add_argument("--chunk-size", type=um.parse_size, default=None,
                        help="part size of the chunked path (sets COURSE_UPLOAD_CHUNK_BYTES; default: the app's own "
                             "choice for local storage, the size the browser uploads in)")
    parser.add_argument("--b2-size", type=um.parse_size, default=um.parse_size("256M"),
                        help="P3 file size (kept in memory by the simulator; default 256M)")
    parser.add_argument("--b2-part-size", type=um.parse_size, default=um.parse_size("16M"),
                        help="P3 part size (default 16M)")
    parser.add_argument("--b2-repeat", type=int, default=3, help="P3 runs per side; the median counts (default 3)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of P1 (every path at every concurrency, in a rotating order); the table "
                             "shows medians and the largest RSS growth (default 3)")
    parser.add_argument("--skip-tus", action="store_true", help="skip the tus peer (P1-peer)")
    parser.add_argument("--skip-b2", action="store_true", help="skip P3")
    parser.add_argument("--huge", action="store_true", help="also upload a --huge-size file through the chunked API")
    parser.add_argument("--huge-size", type=um.parse_size, default=um.parse_size("20G"), help="default 20G")
    parser.add_argument("--huge-chunk-size", type=um.parse_size, default=um.parse_size("256M"),
                        help="part size of the huge upload (default 256M; the app is restarted with it)")
    parser.add_argument("--web-dir", type=Path, default=HERE / "results" / ".web-bench",
                        help="REFLEX_WEB_WORKDIR (default benchmarks/results/.web-bench)")
    args = parser.parse_args(argv)
    app_default_part_size = args.chunk_size is None
    if app_default_part_size:
        from course_app.storage.local_multipart import RECOMMENDED_PART_SIZE

        args.chunk_size = RECOMMENDED_PART_SIZE  # App.chunked checks that the app chose it
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.chunk_size < 64 * 1024 or args.huge_chunk_size < 64 * 1024:
        parser.error("part sizes must be at least 64K (the app's minimum)")
    if args.size < max(args.streams) * BLOCK:
        parser.error(f"--size must be at least {max(args.streams)} MiB for {max(args.streams)} streams")

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

    results: dict = {"p1": {}, "ratios": {}}
    app: App | None = None
    bare: Bare | None = None
    started_at = datetime.now(timezone.utc)
    load_at_start = os.getloadavg()
    try:
        print(f"[file] hashing the {human(args.size)} file, its {human(args.chunk_size)} parts and its shares "
              "(not timed) ...", flush=True)
        began = time.perf_counter()
        file = GeneratedFile(args.size)
        file.digest(args.chunk_size)
        share_sets = {streams: file.shares(streams) for streams in args.streams}
        for shares in share_sets.values():
            for share in shares:
                if share.sha1 is None:
                    share.digest()
        print(f"[file] sha1 {file.sha1} ({time.perf_counter() - began:.1f}s)", flush=True)

        # P1/P2: the app and the bare server both up; in each round every path at every
        # concurrency once, the paths in a rotating order
        app = App(work / "app", args.web_dir.resolve(), max_bytes=max(args.size, args.huge_size if args.huge else 0,
                                                                      5 * GIB), chunk_size=args.chunk_size,
                  app_default=app_default_part_size)
        app.start()
        app.warm_up(max(args.streams))
        bare = Bare(work / "bare")
        bare.start()
        bare.warm_up()
        paths = [path for path in PATHS if path != "tus" or not args.skip_tus]
        if "tus" in paths:
            ensure_tus()
        runs: dict[tuple[int, str], list[dict]] = {(n, path): [] for n in args.streams for path in paths}
        for round_ in range(args.repeat):
            tag = f" {round_ + 1}/{args.repeat}" if args.repeat > 1 else ""
            order = paths[round_ % len(paths):] + paths[: round_ % len(paths)]
            for streams in args.streams:
                shares = share_sets[streams]
                for path in order:
                    label = f"{path} x{streams}{tag}"
                    if path == "bare":
                        run = bare.measure(shares, label)
                    elif path == "chunked":
                        run = measure_app_path(app, [file], "chunked", streams, label)
                    elif path == "single":
                        run = measure_app_path(app, shares, "single", streams, label)
                    else:
                        run = measure_tus(shares, work / "tus", label)
                    run["round"] = round_ + 1
                    runs[(streams, path)].append(run)
        for streams in args.streams:
            results["p1"][str(streams)] = {path: summarize(runs[(streams, path)]) for path in paths}
            base = runs[(streams, "bare")]
            ratios = {f"{path}_vs_bare": paired_ratio(runs[(streams, path)], base) for path in paths if path != "bare"}
            if "tus" in paths:
                ratios["chunked_vs_tus"] = paired_ratio(runs[(streams, "chunked")], runs[(streams, "tus")])
            results["ratios"][str(streams)] = {key: round(value, 3) for key, value in ratios.items()}
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
    report = describe(args, file, share_sets) + "\n\n" + render(rows)
    print()
    print(report)
    output = {
        "created_at": started_at.isoformat(timespec="seconds"),
        "arguments": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_at_start": [round(v, 2) for v in load_at_start],
                    "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "file_sha1": file.sha1,
        "shares": {str(n): [{"first_block": f.first_block, "size_bytes": f.size, "sha1": f.sha1} for f in shares]
                   for n, shares in share_sets.items()},
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
    streams = max(args.streams)
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
        app.warm_up(streams)
    print(f"[huge] hashing the {human(args.huge_size)} file and its {human(args.huge_chunk_size)} parts "
          "(not timed) ...", flush=True)
    began = time.perf_counter()
    huge = GeneratedFile(args.huge_size, seed=SEED + 2)
    huge.digest(args.huge_chunk_size)
    print(f"[huge] sha1 {huge.sha1} ({time.perf_counter() - began:.1f}s)", flush=True)
    result = measure_app_path(app, [huge], "chunked", streams, "5 huge chunked")
    result["part_size"] = args.huge_chunk_size
    result["df_before"] = df
    return result


if __name__ == "__main__":
    sys.exit(main())
