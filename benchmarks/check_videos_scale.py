"""How long `course-app check-videos` takes with 100,000 videos on local disk.

Run from the repository root:

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
4. Times, with a warm page cache (the files were just written; a cold disk will
   be slower): ``storage.list`` alone (a scandir walk, one stat and one sidecar
   read per object), the leftovers scan, the videos query alone, and
   ``check_videos`` as a whole (``--rounds`` times; the table shows the median),
   checks that it found exactly the seeded problems, then times ``repair`` (grace
   0) and checks that the database and storage agree afterwards.

Prints a table and writes JSON to ``benchmarks/results/check_videos_scale.json``
(``--output``). The goal is a check under 30 s for 100,000 videos. Exit code 1 if
the check found anything other than the seeded problems or the repair left any
but the size mismatches (which it leaves to a person).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
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
               "filename": f"video{n}.mp4", "video_url": f"/api/videos/{video_id}/stream", "backblaze_file_id": key,
               "storage_key": key, "size_bytes": len(data), "sha1": hashlib.sha1(data).hexdigest(),
               "content_type": "video/mp4", "status": "ready", "error": None, "duration_seconds": None,
               "position": n % PER_CHAPTER, "created_at": now, "updated_at": now}
        kind = n % 1000 if n < seed * 1000 else -1
        if kind == 1:  # uploading for two hours, nothing stored
            row.update(status="uploading", size_bytes=None, sha1=None, backblaze_file_id=None, video_url="",
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="videos to create (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="times to run the check (median shown)")
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

        def run_repair():
            return reconcile.repair(session_factory=lambda: session_scope(engine), storage=storage,
                                    grace=timedelta(0))

        repair_seconds, repaired = timed(run_repair)
        result = {
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "count": args.count,
            "database": "sqlite" if args.database_url is None else engine.dialect.name,
            "via_put_stream": args.via_put_stream,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "build_seconds": round(build_seconds, 2),
            "storage_list_seconds": round(list_seconds, 3),
            "objects_listed": listed,
            "leftovers_scan_seconds": round(leftovers_seconds, 3),
            "db_query_seconds": round(query_seconds, 3),
            "check_seconds_median": round(statistics.median(rounds), 3),
            "check_seconds_all": [round(s, 3) for s in rounds],
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

    rows = [
        ("videos (rows)", f"{result['rows_checked']:,}"),
        ("stored files", f"{result['objects_checked']:,}"),
        ("storage.list", f"{result['storage_list_seconds']:.2f} s"),
        ("leftovers scan", f"{result['leftovers_scan_seconds']:.2f} s"),
        ("database query (videos)", f"{result['db_query_seconds']:.2f} s"),
        (f"check_videos (median of {args.rounds})", f"{result['check_seconds_median']:.2f} s  (goal < 30 s)"),
        ("found the seeded problems", "yes" if check_ok else f"NO: {found} != {expected}"),
        (f"repair ({result['repairs']} fixes) + re-check", f"{result['repair_seconds']:.2f} s"),
        ("left after repair (expected: size mismatches)", json.dumps(result["problems_after_repair"])),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'what'.ljust(width)}  result")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {args.output}")
    return 0 if check_ok and result["problems_after_repair"] == result["problems_expected_after_repair"] else 1


if __name__ == "__main__":
    sys.exit(main())
