"""How long `course-app check-videos` takes with 100,000 videos on local disk, run
as a user runs it, with a warm and with a cold page cache.

Run from the repository root (as root, so that it can drop the page cache):

    .venv/bin/python benchmarks/check_videos_scale.py
    .venv/bin/python benchmarks/check_videos_scale.py --count 20000 --output /tmp/check.json

What it does:

1. In a temporary folder, makes a SQLite database (migrated with Alembic; or
   ``--database-url`` for an empty PostgreSQL database) and a LocalStorage root.
2. Writes ``--count`` tiny stored files the way ``LocalStorage`` places them (the
   data file, then a sidecar naming its inode, mtime, size and SHA1; no fsync,
   which is what makes writing 100,000 quick), spread over 100 owners' folders,
   and bulk-inserts one ready video row per file with SQLAlchemy core (100 users,
   one course and one chapter each, 1,000 videos per chapter). ``--via-put-stream``
   stores the files through ``LocalStorage.put_stream`` instead (slower: it fsyncs).
3. Seeds known problems among them: ready rows whose file is missing, files no
   row references, rows with the wrong size, uploads stuck for two hours, a
   pending deletion, an unknown unfinished upload and a temp file left by a crash.
4. Times, in this process with a warm page cache (the files were just written):
   ``storage.list`` alone (a scandir walk, one stat and one sidecar read per
   object), the leftovers scan, the videos query alone, and ``check_videos`` as a
   whole (``--rounds`` times; every time is kept, the table shows the median).
5. Times the command a user runs, ``course-app check-videos --json``, as a
   subprocess against that database and storage (settings from the environment,
   in a folder without a ``.env``): process start, imports, settings, ``migrate``,
   the check and printing the report. Warm: ``--cli-rounds`` runs after the files
   were just written and read. Cold: ``--cold-rounds`` runs, each after
   ``sync`` and ``echo N > /proc/sys/vm/drop_caches`` (``--drop-caches``, default 3:
   page cache, dentries and inodes, as after a reboot; 1: the page cache only). That
   drops the caches of the whole machine, the Python installation's files included,
   so a cold run also pays for reading the interpreter and the libraries from disk;
   ``course-app migrate`` is timed the same way to show that fixed part. If
   /proc/sys/vm/drop_caches cannot be written (not root, or a container), the
   storage files and the database are evicted one by one with
   ``posix_fadvise(POSIX_FADV_DONTNEED)`` instead (their pages only; directories,
   inodes and the Python files stay cached), and the output says so. Each CLI run
   must report exactly the seeded problems.
6. Times ``repair`` (grace 0) in this process and checks that the database and
   storage agree afterwards.

Prints a table (with the count and how the cache was dropped) and writes JSON to
``benchmarks/results/check_videos_scale.json`` (``--output``). The goal is a check
under 30 s for 100,000 videos. Exit code 1 if a check found anything other than the
seeded problems or the repair left any but the size mismatches (which it leaves to
a person).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="check-videos-scale-"))
os.environ.setdefault("COURSE_DATA_DIR", str(WORK / "data"))
os.environ.setdefault("COURSE_SECRET_KEY", "bench-" + uuid.uuid4().hex * 2)

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from course_app.db import make_engine, migrate, session_scope  # noqa: E402
from course_app.models import Chapter, Course, StorageDeletion, User, Video  # noqa: E402
from course_app.services import reconcile  # noqa: E402
from course_app.storage.keys import SIDECAR_SUFFIX, TEMP_MARKER  # noqa: E402
from course_app.storage.local import LocalStorage  # noqa: E402

OWNERS = 100
PER_CHAPTER = 1000
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "check_videos_scale.json"


def write_object(storage: LocalStorage, key: str, data: bytes, *, mtime: float | None = None) -> tuple[int, str]:
    """Place ``data`` under ``key`` as LocalStorage does (data file + matching sidecar)."""
    path = os.path.join(storage.root, *key.split("/"))
    with open(path, "wb") as handle:
        handle.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    info = os.stat(path)
    sha1 = hashlib.sha1(data).hexdigest()
    meta = {"size": len(data), "sha1": sha1, "content_type": "video/mp4", "inode": info.st_ino,
            "mtime_ns": info.st_mtime_ns}
    with open(path + SIDECAR_SUFFIX, "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    return len(data), sha1


def build(engine, storage: LocalStorage, count: int, via_put_stream: bool) -> dict:
    """Users, courses, chapters, ``count`` files and rows, and the seeded problems;
    returns the expected problem counts."""
    now = datetime.now(timezone.utc)
    two_hours_ago = now - timedelta(hours=2)
    seed = max(1, count // 1000)  # how many of each seeded problem
    chapters = -(-count // PER_CHAPTER)
    users, courses_, chapters_ = [], [], []
    for index in range(chapters):
        owner = index % OWNERS + 1
        if index < OWNERS:
            users.append({"id": owner, "email": f"owner{owner}@example.com", "password_hash": "x",
                          "role": "instructor", "created_at": now})
        course_id, chapter_id = uuid.uuid4(), uuid.uuid4()
        courses_.append({"id": course_id, "owner_id": owner, "title": f"Course {index}", "description": "",
                         "status": "draft", "created_at": now, "updated_at": now})
        chapters_.append({"id": chapter_id, "course_id": course_id, "title": "Chapter", "position": 0,
                          "created_at": now, "updated_at": now})
    with engine.begin() as conn:
        conn.execute(sa.insert(User.__table__), users)
        conn.execute(sa.insert(Course.__table__), courses_)
        conn.execute(sa.insert(Chapter.__table__), chapters_)
    for owner in range(1, OWNERS + 1):
        os.makedirs(os.path.join(storage.root, "videos", str(owner)), exist_ok=True)

    expected = {"missing_file": seed, "size_mismatch": seed, "stuck_upload": seed, "orphan_file": seed,
                "pending_deletion": 1, "unknown_upload": 1, "leftover_file": 1}
    batch: list[dict] = []
    for n in range(count):
        chapter = chapters_[n // PER_CHAPTER]
        owner = (n // PER_CHAPTER) % OWNERS + 1
        video_id = uuid.uuid4()
        key = f"videos/{owner}/{video_id}"
        data = MP4_HEAD + n.to_bytes(8, "big")
        row = {"id": video_id, "course_id": chapter["course_id"], "chapter_id": chapter["id"], "title": f"Video {n}",
               "filename": f"video{n}.mp4", "backblaze_file_id": key,
               "storage_key": key, "size_bytes": len(data), "sha1": hashlib.sha1(data).hexdigest(),
               "content_type": "video/mp4", "status": "ready", "error": None, "duration_seconds": None,
               "position": n % PER_CHAPTER, "created_at": now, "updated_at": now}
        kind = n % 1000 if n < seed * 1000 else -1
        if kind == 1:  # uploading for two hours, nothing stored
            row.update(status="uploading", size_bytes=None, sha1=None, backblaze_file_id=None,
                       created_at=two_hours_ago, updated_at=two_hours_ago)
        elif kind == 2:
            row["size_bytes"] += 1
        if kind not in (1, 3):  # 3: ready row whose file is missing
            if via_put_stream:
                storage.put_stream(key, [data], content_type="video/mp4")
            else:
                write_object(storage, key, data)
        batch.append(row)
        if len(batch) == 5000:
            with engine.begin() as conn:
                conn.execute(sa.insert(Video.__table__), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(sa.insert(Video.__table__), batch)
    old = time.time() - 7200
    for n in range(seed):  # files no row references, stored two hours ago
        write_object(storage, f"videos/{n % OWNERS + 1}/{uuid.uuid4()}", MP4_HEAD + b"orphan", mtime=old)
    # A deletion not yet carried out, an upload no session knows, a crash's temp file.
    doomed = f"videos/1/{uuid.uuid4()}"
    write_object(storage, doomed, MP4_HEAD + b"doomed")
    with engine.begin() as conn:
        conn.execute(sa.insert(StorageDeletion.__table__), [{"storage_key": doomed, "file_id": doomed,
                     "reason": "video deleted", "attempts": 0, "created_at": now, "next_attempt_at": now}])
    upload_id = storage.start_multipart(f"videos/2/{uuid.uuid4()}", content_type="video/mp4")
    meta_path = storage.root / ".multipart" / upload_id / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["started_at"] = (now - timedelta(hours=3)).isoformat()
    meta_path.write_text(json.dumps(meta))
    temp = storage.root / "videos" / "3" / f"{uuid.uuid4()}{TEMP_MARKER}0123456789abcdef"
    temp.write_bytes(b"half a video")
    os.utime(temp, (old, old))
    return expected, {"size_mismatch": seed}  # a size mismatch is left to a person


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# The CLI as a user runs it ---------------------------------------------------------------


def cli_env(url: str, storage_root: Path) -> dict[str, str]:
    """This process's environment without its COURSE_* settings, plus the ones that
    point the CLI at the seeded database and storage."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("COURSE_")}
    env.update({
        "COURSE_DATABASE_URL": url,
        "COURSE_STORAGE_BACKEND": "local",
        "COURSE_STORAGE_DIR": str(storage_root),
        "COURSE_DATA_DIR": str(WORK / "data"),
        "COURSE_SECRET_KEY": os.environ["COURSE_SECRET_KEY"],
    })
    return env


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """``course-app ARGS`` in a fresh process (in the temp folder: no .env there)."""
    command = [str(Path(sys.executable).parent / "course-app"), *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=WORK, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done


def check_by_cli(env: dict[str, str], expected: dict) -> tuple[float, dict]:
    """One timed ``course-app check-videos --json``; its report must be the seeded problems."""
    seconds, done = run_cli(["check-videos", "--json"], env)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise SystemExit(f"course-app check-videos exited {done.returncode} without a JSON report:\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}") from None
    ok = done.returncode == 1 and report["counts"] == expected  # 1: problems remain (the seeded ones)
    return seconds, {"seconds": round(seconds, 3), "exit_code": done.returncode, "counts": report["counts"],
                     "rows_checked": report["rows_checked"], "objects_checked": report["objects_checked"],
                     "found_exactly_the_seeded_problems": ok}


def drop_caches(level: int, files: list[Path]) -> str:
    """Make the next run cold; returns how. ``sync`` first (only clean pages can be
    dropped), then /proc/sys/vm/drop_caches; where that cannot be written, evict the
    given files' pages one by one (vmtouch -e does the same)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write(f"{level}\n")
        return {1: "echo 1 > /proc/sys/vm/drop_caches (page cache; dentries and inodes stay cached)",
                3: "echo 3 > /proc/sys/vm/drop_caches (page cache, dentries and inodes)"}[level]
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    evicted = 0
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            evicted += 1
        finally:
            os.close(fd)
    return (f"drop_caches not writable ({reason}): posix_fadvise(DONTNEED) on {evicted:,} storage and database "
            "files (their pages only; directories, inodes and Python's files stay cached)")


def files_of(storage_root: Path, url: str) -> list[Path]:
    found = [Path(entry) for entry in _walk(storage_root)]
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        found += [path for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if path.exists()]
    return found


def _walk(folder: Path):
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        else:
            yield entry.path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="videos to create (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="in-process checks (median shown; default 3)")
    parser.add_argument("--cli-rounds", type=int, default=3, help="warm `course-app check-videos` runs (default 3)")
    parser.add_argument("--cold-rounds", type=int, default=2,
                        help="cold `course-app check-videos` runs, caches dropped before each (default 2; 0: none)")
    parser.add_argument("--drop-caches", type=int, choices=(1, 3), default=3,
                        help="what a cold run drops: 3 page cache, dentries and inodes (default), 1 page cache only")
    parser.add_argument("--via-put-stream", action="store_true", help="store files through LocalStorage.put_stream")
    parser.add_argument("--database-url", default=None, help="an EMPTY database to use instead of a temp SQLite file")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--keep", action="store_true", help=f"keep the temp folder ({WORK})")
    args = parser.parse_args()

    url = args.database_url or f"sqlite:///{WORK / 'bench.db'}"
    try:
        migrate(url)
        engine = make_engine(url)
        storage = LocalStorage(WORK / "storage")
        build_seconds, (expected, expected_after) = timed(
            lambda: build(engine, storage, args.count, args.via_put_stream))
        print(f"Built {args.count:,} videos and files in {build_seconds:.1f} s ({WORK})", flush=True)

        # In this process, warm
        list_seconds, listed = timed(lambda: sum(1 for _ in storage.list(reconcile.VIDEO_PREFIX)))
        with Session(engine) as session:
            query_seconds, _ = timed(lambda: session.exec(select(
                Video.id, Video.storage_key, Video.status, Video.size_bytes, Video.sha1, Video.created_at,
                Video.updated_at)).all())
        leftovers_seconds, _ = timed(lambda: list(storage.list_leftovers(reconcile.VIDEO_PREFIX)))
        rounds = []
        for _ in range(args.rounds):
            with Session(engine) as session:
                seconds, report = timed(lambda: reconcile.check_videos(session=session, storage=storage))
            rounds.append(seconds)
        found = report.counts()
        check_ok = found == expected

        # The CLI, warm then cold
        env = cli_env(url, storage.root)
        files = files_of(storage.root, url)
        print(f"Timing course-app check-videos: {args.cli_rounds} warm run(s), {args.cold_rounds} cold ...", flush=True)
        migrate_warm = [round(run_cli(["migrate"], env)[0], 3) for _ in range(args.cli_rounds)]
        cli_warm = [check_by_cli(env, expected)[1] for _ in range(args.cli_rounds)]
        cold_how, migrate_cold, cli_cold = None, [], []
        for _ in range(args.cold_rounds):
            cold_how = drop_caches(args.drop_caches, files)
            migrate_cold.append(round(run_cli(["migrate"], env)[0], 3))
            drop_caches(args.drop_caches, files)
            cli_cold.append(check_by_cli(env, expected)[1])
        cli_ok = all(run["found_exactly_the_seeded_problems"] for run in cli_warm + cli_cold)

        def run_repair():
            return reconcile.repair(session_factory=lambda: session_scope(engine), storage=storage,
                                    grace=timedelta(0))

        repair_seconds, repaired = timed(run_repair)
        warm_seconds = [run["seconds"] for run in cli_warm]
        cold_seconds = [run["seconds"] for run in cli_cold]
        result = {
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "count": args.count,
            "database": "sqlite" if args.database_url is None else engine.dialect.name,
            "via_put_stream": args.via_put_stream,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
            "build_seconds": round(build_seconds, 2),
            "in_process_warm": {
                "storage_list_seconds": round(list_seconds, 3),
                "objects_listed": listed,
                "leftovers_scan_seconds": round(leftovers_seconds, 3),
                "db_query_seconds": round(query_seconds, 3),
                "check_seconds_median": round(statistics.median(rounds), 3),
                "check_seconds_all": [round(s, 3) for s in rounds],
            },
            "cli": {
                "command": "course-app check-videos --json",
                "warm_seconds_median": round(statistics.median(warm_seconds), 3) if warm_seconds else None,
                "warm_runs": cli_warm,
                "cold_seconds_median": round(statistics.median(cold_seconds), 3) if cold_seconds else None,
                "cold_runs": cli_cold,
                "cold_cache_drop": cold_how,
                "migrate_warm_seconds": migrate_warm,
                "migrate_cold_seconds": migrate_cold,
                "found_exactly_the_seeded_problems": cli_ok,
            },
            "rows_checked": report.rows_checked,
            "objects_checked": report.objects_checked,
            "problems_expected": expected,
            "problems_found": found,
            "check_found_exactly_the_seeded_problems": check_ok,
            "repair_seconds": round(repair_seconds, 3),
            "repairs": len(repaired.actions),
            "problems_after_repair": repaired.after.counts(),
            "problems_expected_after_repair": expected_after,
            "goal_seconds": 30,
        }
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)

    def runs(values: list[float]) -> str:
        return ", ".join(f"{value:.2f}" for value in values)

    inside, cli = result["in_process_warm"], result["cli"]
    rows = [
        ("videos (rows)", f"{result['rows_checked']:,}"),
        ("stored files", f"{result['objects_checked']:,}"),
        ("database", result["database"]),
        ("in process, warm: storage.list", f"{inside['storage_list_seconds']:.2f} s"),
        ("in process, warm: leftovers scan", f"{inside['leftovers_scan_seconds']:.2f} s"),
        ("in process, warm: database query (videos)", f"{inside['db_query_seconds']:.2f} s"),
        (f"in process, warm: check_videos (median of {args.rounds})",
         f"{inside['check_seconds_median']:.2f} s  (runs: {runs(inside['check_seconds_all'])})"),
        ("CLI, warm: course-app migrate (start-up + migrate)", f"{runs(cli['migrate_warm_seconds'])} s"),
        (f"CLI, warm: course-app check-videos (median of {args.cli_rounds})",
         f"{cli['warm_seconds_median']:.2f} s  (runs: {runs(warm_seconds)}; goal < 30 s)"
         if warm_seconds else "-"),
    ]
    if cold_seconds:
        rows += [
            ("CLI, cold: course-app migrate (start-up + migrate)", f"{runs(cli['migrate_cold_seconds'])} s"),
            (f"CLI, cold: course-app check-videos (median of {args.cold_rounds})",
             f"{cli['cold_seconds_median']:.2f} s  (runs: {runs(cold_seconds)}; goal < 30 s)"),
            ("cold means", cold_how),
        ]
    else:
        rows.append(("CLI, cold", "not measured (--cold-rounds 0)"))
    rows += [
        ("found the seeded problems (in process)", "yes" if check_ok else f"NO: {found} != {expected}"),
        ("found the seeded problems (every CLI run)", "yes" if cli_ok else "NO (see the JSON)"),
        (f"repair ({result['repairs']} fixes) + re-check, in process", f"{result['repair_seconds']:.2f} s"),
        ("left after repair (expected: size mismatches)", json.dumps(result["problems_after_repair"])),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'what'.ljust(width)}  result")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {args.output}")
    passed = check_ok and cli_ok and result["problems_after_repair"] == result["problems_expected_after_repair"]
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
