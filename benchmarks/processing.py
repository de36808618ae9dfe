"""Video processing: throughput with 1 and 2 workers, upload-complete-to-ready
latency, a worker's peak memory on a large file, and the probe + thumbnail stages
against the ffprobe / ffmpeg command-line tools on the same files.

    .venv/bin/python benchmarks/processing.py                       # 20 clips, 30 s, 720p; a 2 GiB file
    .venv/bin/python benchmarks/processing.py --clips 6 --seconds 10 --big-size 512M

What it does (no app server: the same services and `course-app worker` processes
the app uses, on a temporary SQLite database, local storage and SQLite queue):

1. Makes one H.264/AAC MP4 clip of ``--seconds`` at 1280x720, 30 fps (moving
   gradients) and ``--clips`` files from it, each with a few bytes of its own
   appended (so each has its own SHA1; decoding stops at the clip's end).
2. For 1 and then 2 workers (separate ``course-app worker`` processes): stores
   every clip as an upload and hands it to processing at once (as an upload's last
   step does), then waits until every video is ready. Reports videos per minute,
   the time from that hand-over to ready (p50/p95) and each worker's peak RSS.
3. Stores a ``--big-size`` file (one clip followed by filler, so verifying hashes
   every byte) and reports the peak RSS (VmHWM) of the worker that processes it.
4. On the same clips, in this process: ``media.probe`` + ``media.thumbnail`` against
   ``ffprobe -show_format -show_streams`` + two ``ffmpeg -ss T -i F -frames:v 1``
   (320 and 1280 wide), the same work (needs ffmpeg: ``apt-get install ffmpeg``).
   The goal is at least 0.9x the command-line tools' speed.

Prints a table and writes JSON to benchmarks/results/processing.json (``--output``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def make_clip(path: Path, seconds: float, seed: int) -> Path:
    import av
    import numpy as np

    width, height, fps = 1280, 720, 30
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = Fraction(1, fps)
        audio = container.add_stream("aac", rate=48000)
        x = np.linspace(0, 255, width, dtype=np.float32)
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        for index in range(int(seconds * fps)):
            shift = (index * 4 + seed * 37) % 256
            plane = ((x + y + shift) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.dstack([plane, np.roll(plane, index, 1), 255 - plane]), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = 1024
        for index in range(int(seconds * 48000 / samples)):
            wave = (0.1 * np.sin(np.arange(samples) / 8 + index)).astype(np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, index * samples
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


class Home:
    """A data folder, database, storage and queue of its own; the services in this
    process point at them (set before course_app is imported)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {**os.environ, "COURSE_DATA_DIR": str(folder), "PYTHONPATH": str(ROOT),
                    "COURSE_PROCESSING_LEASE_SECONDS": "30"}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("COURSE_")})
        from course_app.db import migrate, session_scope
        from course_app.services import courses, users
        from course_app.storage import get_storage

        migrate()
        self.storage = get_storage()
        with session_scope() as session:
            self.user = users.create_user(session=session, email="bench@example.com", password="correct horse battery")
            course = courses.create_course(session=session, user=self.user, title="Bench")
            self.chapter = courses.add_chapter(session=session, user=self.user, course_id=course.id, title="One")

    def hand_over(self, data_path: Path) -> tuple[uuid.UUID, float]:
        """Store a file as an upload does and hand it to processing; (video id, when)."""
        from course_app.db import session_scope
        from course_app.services import videos

        with session_scope() as session:
            video = videos.begin_upload(session=session, user=self.user, course_id=self.chapter.course_id,
                                        chapter_id=self.chapter.id, filename=data_path.name, content_type="video/mp4",
                                        declared_size=None, max_bytes=1 << 40)
        with open(data_path, "rb") as handle:
            stored = self.storage.put_stream(video.storage_key, iter(lambda: handle.read(1 << 20), b""),
                                             content_type="video/mp4")
        with session_scope() as session:
            videos.finish_upload(session=session, video_id=video.id, stored=stored)
        return video.id, time.monotonic()

    def start_workers(self, count: int) -> list[subprocess.Popen]:
        return [subprocess.Popen([str(Path(sys.executable).parent / "course-app"), "worker"], cwd=ROOT, env=self.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_ready(ids: list[uuid.UUID], workers: list[subprocess.Popen], timeout: float = 3600) -> tuple[dict, dict]:
    """When each video became ready (monotonic) and each worker's peak RSS."""
    from sqlmodel import Session, select

    from course_app.db import get_engine
    from course_app.models import Video

    done: dict[uuid.UUID, float] = {}
    peaks = {w.pid: 0.0 for w in workers}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids) and time.monotonic() < deadline:
        for worker in workers:
            peaks[worker.pid] = max(peaks[worker.pid], rss_mib(worker.pid))
        with Session(get_engine()) as session:
            rows = session.exec(select(Video.id, Video.status, Video.error).where(Video.id.in_(ids))).all()
        for video_id, status, error in rows:
            if status == "failed":
                raise SystemExit(f"video {video_id} failed: {error}")
            if status == "ready" and video_id not in done:
                done[video_id] = time.monotonic()
        time.sleep(0.02)
    if len(done) < len(ids):
        raise SystemExit("timed out waiting for processing")
    return done, peaks


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(30)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def throughput(home: Home, clips: list[Path], workers: int) -> dict:
    started = home.start_workers(workers)
    time.sleep(2)  # the workers are up before the first hand-over
    try:
        handed = [home.hand_over(clip) for clip in clips]
        done, peaks = wait_ready([v for v, _ in handed], started)
    finally:
        stop(started)
    first = min(t for _, t in handed)
    latencies = [done[v] - t for v, t in handed]
    elapsed = max(done.values()) - first
    return {"workers": workers, "videos": len(clips), "seconds": round(elapsed, 2),
            "videos_per_minute": round(len(clips) / elapsed * 60, 1),
            "ready_p50_s": round(percentile(latencies, 0.5), 2), "ready_p95_s": round(percentile(latencies, 0.95), 2),
            "worker_peak_rss_mib": [round(p, 1) for p in peaks.values()]}


def big_file(home: Home, clip: Path, size: int) -> dict:
    path = home.folder / "big.mp4"
    with open(path, "wb") as out:
        out.write(clip.read_bytes())
        filler = os.urandom(1 << 20)
        while out.tell() < size:
            out.write(filler[: size - out.tell()])
    workers = home.start_workers(1)
    time.sleep(2)
    try:
        video_id, handed = home.hand_over(path)
        done, _ = wait_ready([video_id], workers)
        peak = rss_mib(workers[0].pid, "VmHWM")
    finally:
        stop(workers)
        path.unlink()
    return {"size_bytes": size, "seconds": round(done[video_id] - handed, 2), "worker_peak_rss_mib": round(peak, 1)}


def against_cli(clips: list[Path], folder: Path, rounds: int) -> dict | None:
    """probe + thumbnail (two sizes) in process, then with the command-line tools."""
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        return None
    import dataclasses

    from course_app.services import media
    from course_app.storage.local import LocalStorage

    storage = LocalStorage(folder / "cli-storage")
    subjects = []
    for clip in clips:
        key = f"videos/1/{uuid.uuid4()}"
        obj = storage.put_stream(key, [clip.read_bytes()], content_type="video/mp4")
        subjects.append(media.Subject(uuid.uuid4(), uuid.uuid4(), key, obj.file_id, obj.size, obj.sha1, "probing", 1,
                                      None))
    ours, theirs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for subject in subjects:
            found = media.probe(subject, storage)
            media.thumbnail(dataclasses.replace(subject, duration_seconds=found["duration_seconds"]), storage)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        for subject in subjects:
            path = storage.local_path(subject.storage_key)
            out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                                  path], capture_output=True, check=True)
            duration = float(json.loads(out.stdout)["format"]["duration"])
            for width in media.THUMBNAIL_WIDTHS.values():
                subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{duration * media.THUMBNAIL_AT:.3f}", "-i", path,
                                "-frames:v", "1", "-vf", f"scale={width}:-2", "-q:v", "3",
                                str(folder / f"cli-{width}.jpg")], check=True)
        theirs.append(time.perf_counter() - start)
    return {"files": len(subjects), "rounds": rounds, "ours_s": round(statistics.median(ours), 3),
            "cli_s": round(statistics.median(theirs), 3),
            "speed_vs_cli": round(statistics.median(theirs) / statistics.median(ours), 2), "goal": ">= 0.9"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--big-size", type=parse_size, default=parse_size("2G"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the comparison with the CLI tools")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "processing.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="processing-bench-") as tmp:
        folder = Path(tmp)
        started = time.monotonic()
        source = make_clip(folder / "source.mp4", args.seconds, 0).read_bytes()
        clips = []
        for n in range(args.clips):
            clips.append(folder / f"clip-{n}.mp4")
            clips[-1].write_bytes(source + os.urandom(16))
        print(f"made {len(clips)} clips of {args.seconds:g} s 720p in {time.monotonic() - started:.0f} s "
              f"({sum(c.stat().st_size for c in clips) / 1e6:.0f} MB)")
        home = Home(folder / "data")
        runs = [throughput(home, clips, workers) for workers in (1, 2)]
        big = big_file(home, clips[0], args.big_size)
        cli = against_cli(clips, folder, args.rounds)

    print(f"\n{'workers':>7} {'videos/min':>10} {'ready p50':>9} {'ready p95':>9}  worker peak RSS (MiB)")
    for run in runs:
        print(f"{run['workers']:>7} {run['videos_per_minute']:>10} {run['ready_p50_s']:>8}s {run['ready_p95_s']:>8}s  "
              f"{run['worker_peak_rss_mib']}")
    print(f"\n{big['size_bytes'] / 2**30:.2f} GiB file: ready in {big['seconds']} s, worker peak RSS "
          f"{big['worker_peak_rss_mib']} MiB")
    if cli:
        print(f"\nprobe + thumbnails of {cli['files']} files: PyAV in process {cli['ours_s']} s, ffprobe + ffmpeg "
              f"{cli['cli_s']} s: {cli['speed_vs_cli']}x their speed (goal {cli['goal']})")
    else:
        print("\nffmpeg / ffprobe not installed (apt-get install ffmpeg): comparison skipped")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"clips": args.clips, "seconds": args.seconds, "throughput": runs,
                                       "big_file": big, "against_cli": cli}, indent=2))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
