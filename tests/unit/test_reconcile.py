"""course_app/services/reconcile.py and `course-app check-videos` on SQLite and
PostgreSQL: each kind of disagreement, the grace period that protects uploads in
flight, what repair does and refuses to do, the CLI's output and exit codes, and
that the check costs one listing, not a request per object.
(The crash-by-crash proofs are in tests/faults/.)"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from sqlmodel import Session

import course_app.cli
import course_app.db
from course_app.models import UploadSession, Video
from course_app.services import reconcile, trash, upload_sessions, videos
from course_app.storage.base import Leftover
from course_app.storage.keys import TEMP_MARKER
from course_app.storage.local import LocalStorage
from tests.deleting import delete_video_for_good
from tests.processed import as_if_processed

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(200)
NO_GRACE = timedelta(0)
HOUR = 3600


@pytest.fixture
def storage(local_storage) -> LocalStorage:
    return local_storage  # the checker's own logic: local disk is enough



def begin(session, user, chapter) -> Video:
    video = videos.begin_upload(session=session, user=user, course_id=chapter.course_id, chapter_id=chapter.id,
                                filename="clip.mp4", content_type="video/mp4", declared_size=None, max_bytes=10**9)
    session.commit()
    return video


def ready(session, storage, user, chapter, data: bytes = MP4) -> Video:
    video = begin(session, user, chapter)
    stored = storage.put_stream(video.storage_key, [data], content_type="video/mp4")
    video = videos.finish_upload(session=session, video_id=video.id, stored=stored)
    as_if_processed(session, video.id)
    session.commit()
    return video


def age(storage: LocalStorage, key: str, seconds: float) -> None:
    """Make a stored object look ``seconds`` old (its sidecar follows, as after a real upload)."""
    path = os.path.join(storage.root, *key.split("/"))
    data = open(path, "rb").read()
    storage.delete(key, key)
    storage.put_stream(key, [data], content_type="video/mp4")
    past = time.time() - seconds
    os.utime(path, (past, past))
    meta_path = path + ".meta.json"
    meta = json.loads(open(meta_path).read())
    meta["mtime_ns"] = os.stat(path).st_mtime_ns
    open(meta_path, "w").write(json.dumps(meta))


def kinds(report) -> list[str]:
    return sorted(p.kind for p in report.problems)


def check(session, storage, grace=reconcile.DEFAULT_GRACE):
    session.expire_all()
    return reconcile.check_videos(session=session, storage=storage, grace=grace)


# The check ---------------------------------------------------------------------------------


def test_an_orphan_is_reported_at_once_but_deleted_only_after_the_grace_period(
        session, storage, session_factory, chapter):
    user, chap = chapter
    keep = ready(session, storage, user, chap)
    young, old = f"videos/{user.id}/{uuid.uuid4()}", f"videos/{user.id}/{uuid.uuid4()}"
    for key in (young, old):
        storage.put_stream(key, [MP4], content_type="video/mp4")
    age(storage, old, 2 * HOUR)

    report = check(session, storage)
    assert kinds(report) == ["orphan_file", "orphan_file"]
    assert {p.key: p.repairable for p in report.problems} == {young: False, old: True}

    result = reconcile.repair(session_factory=session_factory, storage=storage)

    assert [(a.key, a.outcome) for a in result.actions] == [(old, "deleted")]
    assert {o.key for o in storage.list("")} == {keep.storage_key, young}
    assert not result.ok and [p.key for p in result.after.problems] == [young]


def test_a_failed_rows_file_is_an_orphan(session, storage, session_factory, chapter):
    user, chap = chapter
    video = ready(session, storage, user, chap)
    video.status, video.error = "failed", "broken"
    session.add(video)
    session.commit()

    assert kinds(check(session, storage)) == ["orphan_file"]
    assert reconcile.repair(session_factory=session_factory, storage=storage, grace=NO_GRACE).ok
    assert list(storage.list("")) == []


def test_uploads_in_flight_are_left_alone(session, storage, session_factory, chapter):
    """A row uploading for minutes, its temp file, a file stored a moment ago whose
    row is about to be marked ready, a multipart upload just started: all in flight."""
    user, chap = chapter
    streaming = begin(session, user, chap)
    path = os.path.join(storage.root, *streaming.storage_key.split("/"))
    os.makedirs(os.path.dirname(path))
    open(f"{path}{TEMP_MARKER}0123456789abcdef", "wb").write(b"half")
    landed = begin(session, user, chap)
    storage.put_stream(landed.storage_key, [MP4], content_type="video/mp4")
    storage.start_multipart(f"videos/{user.id}/{uuid.uuid4()}", content_type="video/mp4")

    report = check(session, storage)
    result = reconcile.repair(session_factory=session_factory, storage=storage)

    assert report.ok and report.in_flight == 4
    assert result.actions == [] and result.ok
    assert kinds(check(session, storage, NO_GRACE)) == [
        "leftover_file", "stuck_upload", "unknown_upload", "unrecorded_upload"]


def test_a_ready_row_whose_file_is_missing_is_marked_failed_with_a_reason(session, storage, session_factory, chapter):
    user, chap = chapter
    lost = ready(session, storage, user, chap)
    storage.delete(lost.storage_key, lost.storage_key)

    result = reconcile.repair(session_factory=session_factory, storage=storage)

    assert kinds(result.before) == ["missing_file"] and result.ok
    with Session(session.get_bind()) as fresh:
        row = fresh.get(Video, lost.id)
    assert row.status == "failed" and row.error == reconcile.MISSING_FILE_REASON


def test_trashed_rows_keep_their_files_and_are_counted_apart(session, storage, session_factory, chapter):
    """A video in the course trash keeps its file until purged: not an orphan, even
    with no grace; its missing file is a problem of its own, repaired like a live one."""
    user, chap = chapter
    kept, lost, live = (ready(session, storage, user, chap) for _ in range(3))
    trash.trash_videos(session=session, user=user, video_ids=[kept.id, lost.id])
    session.commit()
    storage.delete(lost.storage_key, lost.storage_key)

    report = check(session, storage, NO_GRACE)

    assert report.rows_checked == 3 and report.trashed_rows == 2 and report.as_dict()["trashed_rows"] == 2
    assert [(p.kind, p.key) for p in report.problems] == [("trashed_missing_file", lost.storage_key)]
    assert "in the trash since" in report.problems[0].detail
    assert "(2 in a course trash, files kept until purged)" in course_app.cli.format_report(report)
    result = reconcile.repair(session_factory=session_factory, storage=storage, grace=NO_GRACE)
    assert result.ok and {o.key for o in storage.list("")} == {kept.storage_key, live.storage_key}
    with Session(session.get_bind()) as fresh:
        assert fresh.get(Video, lost.id).status == "failed" and fresh.get(Video, lost.id).deleted_at is not None


def test_a_row_marked_ready_after_the_listing_started_is_not_judged(session, storage, chapter, monkeypatch):
    """The listing is taken first; a row that became ready after it is newer than
    what the listing could show, so it is not reported as missing its file."""
    user, chap = chapter
    video = begin(session, user, chap)
    real_list = storage.list

    def list_then_finish(prefix="", **kwargs):
        listed = list(real_list(prefix, **kwargs))  # the upload lands and is marked ready just after
        stored = storage.put_stream(video.storage_key, [MP4], content_type="video/mp4")
        with Session(session.get_bind()) as other:
            videos.finish_upload(session=other, video_id=video.id, stored=stored)
            as_if_processed(other, video.id)
            other.commit()
        return iter(listed)

    monkeypatch.setattr(storage, "list", list_then_finish)
    report = reconcile.check_videos(session=session, storage=storage)
    assert report.ok and report.in_flight == 1


def test_a_size_or_sha1_mismatch_is_reported_and_left_to_a_person(session, storage, session_factory, chapter):
    user, chap = chapter
    resized = ready(session, storage, user, chap)
    resized.size_bytes += 1
    altered = ready(session, storage, user, chap, MP4 + b"x")
    altered.sha1 = "0" * 40
    session.add_all([resized, altered])
    session.commit()

    result = reconcile.repair(session_factory=session_factory, storage=storage, grace=NO_GRACE)

    assert kinds(result.before) == ["sha1_mismatch", "size_mismatch"]
    assert result.actions == [] and kinds(result.after) == ["sha1_mismatch", "size_mismatch"]
    assert all(not p.repairable for p in result.after.problems)


def test_an_unfinished_upload_known_to_an_open_session_is_not_cancelled(session, storage, session_factory, chapter):
    user, chap = chapter
    view, _ = upload_sessions.create(
        session_factory=session_factory, storage=storage, user=user, course_id=chap.course_id, chapter_id=chap.id,
        filename="a.mp4", size=len(MP4), fingerprint="f", head=MP4, max_bytes=10**9, quota_bytes=10**12)
    stray = storage.start_multipart(f"videos/{user.id}/{uuid.uuid4()}", content_type="video/mp4")

    result = reconcile.repair(session_factory=session_factory, storage=storage, grace=NO_GRACE)

    assert [(p.kind, p.upload_id) for p in result.before.problems] == [("unknown_upload", stray)]
    assert [u.upload_id for u in storage.list_unfinished("")] == [view.session.storage_upload_id]
    with Session(session.get_bind()) as fresh:
        assert fresh.get(UploadSession, view.session.id).status == "active"


def test_a_deletion_that_fails_again_stays_and_the_exit_is_not_clean(session, storage, session_factory, chapter,
                                                                     monkeypatch):
    user, chap = chapter
    video = ready(session, storage, user, chap)
    delete_video_for_good(session=session, user=user, video_id=video.id)
    session.commit()
    monkeypatch.setattr(storage, "delete", lambda *_: (_ for _ in ()).throw(
        __import__("course_app.storage.base", fromlist=["StorageError"]).StorageError("still down")))

    result = reconcile.repair(session_factory=session_factory, storage=storage, grace=NO_GRACE)

    assert [(a.kind, a.outcome) for a in result.actions] == [("pending_deletion", "failed: still down")]
    assert kinds(result.after) == ["pending_deletion"] and not result.ok


# Leftovers on local disk -------------------------------------------------------------------


def test_local_leftovers_are_temp_files_lone_sidecars_and_broken_upload_folders(storage):
    key = "videos/1/" + str(uuid.uuid4())
    storage.put_stream(key, [MP4], content_type="video/mp4")
    lone = "videos/1/" + str(uuid.uuid4())
    storage.put_stream(lone, [MP4], content_type="video/mp4")
    os.unlink(os.path.join(storage.root, *lone.split("/")))
    temp = f"videos/2/{uuid.uuid4()}{TEMP_MARKER}00aa"
    os.makedirs(storage.root / "videos" / "2")
    (storage.root / temp).write_bytes(b"half")
    broken = storage.root / ".multipart" / ("a" * 32)
    broken.mkdir(parents=True)
    (broken / f"meta.json{TEMP_MARKER}11bb").write_text("{")
    live = storage.start_multipart("videos/3/" + str(uuid.uuid4()), content_type="video/mp4")
    (storage.root / ".multipart" / live / f"2.part{TEMP_MARKER}22cc").write_bytes(b"half a part")

    found = {leftover.path for leftover in storage.list_leftovers("videos/")}

    assert found == {lone + ".meta.json", temp, ".multipart/" + "a" * 32,
                     f".multipart/{live}/2.part{TEMP_MARKER}22cc"}
    assert {leftover.path for leftover in storage.list_leftovers("videos/2")} >= {temp}
    assert lone + ".meta.json" not in {leftover.path for leftover in storage.list_leftovers("videos/2")}
    for path in found:
        storage.remove_leftover(Leftover(path, 0))
    assert list(storage.list_leftovers("")) == []
    assert [o.key for o in storage.list("")] == [key]
    assert [u.upload_id for u in storage.list_unfinished("")] == [live]


@pytest.mark.parametrize("path", ["videos/1/OBJECT", "videos/1/OBJECT.meta.json", ".multipart/LIVE",
                                  ".multipart/LIVE/meta.json", "../outside.part-1", "videos/../../x.part-1", ""])
def test_remove_leftover_refuses_anything_that_is_not_one(storage, path):
    key = "videos/1/" + str(uuid.uuid4())
    storage.put_stream(key, [MP4], content_type="video/mp4")
    live = storage.start_multipart(key, content_type="video/mp4")
    path = path.replace("videos/1/OBJECT", key).replace("LIVE", live)

    with pytest.raises(ValueError):
        storage.remove_leftover(Leftover(path, 0))

    assert [o.key for o in storage.list("")] == [key]
    assert [u.upload_id for u in storage.list_unfinished("")] == [live]


# Scale: one listing, a fixed number of queries --------------------------------------------


class Counting(LocalStorage):
    calls: dict[str, int]

    def __getattribute__(self, name):
        if name in ("list", "stat", "open_range", "list_unfinished", "list_leftovers", "delete", "put_stream"):
            counts = object.__getattribute__(self, "calls")
            counts[name] = counts.get(name, 0) + 1
        return object.__getattribute__(self, name)


@pytest.mark.parametrize("count", [5, 60])
def test_the_check_costs_one_listing_and_a_fixed_number_of_queries(session, engine, tmp_path, chapter, count):
    user, chap = chapter
    storage = Counting(tmp_path / f"s{count}")
    storage.calls = {}
    for _ in range(count):
        ready(session, storage, user, chap)
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    storage.calls = {}

    report = reconcile.check_videos(session=session, storage=storage)

    assert report.ok and report.rows_checked == count
    assert storage.calls == {"list": 1, "list_unfinished": 1, "list_leftovers": 1}
    assert len(statements) <= 4  # videos, open uploads, outbox, pending replacements


# The command ---------------------------------------------------------------------------------


@pytest.fixture
def cli(app_database, configured_storage, monkeypatch, capsys):
    """`course-app check-videos ...` on the test database and storage: (exit code, stdout)."""
    monkeypatch.setattr(course_app.cli, "migrate", lambda: None)

    def run(*args: str) -> tuple[int, str]:
        code = course_app.cli.main(["check-videos", *args])
        return code, capsys.readouterr().out

    return run


def test_cli_dry_run_prints_a_table_and_exits_1_then_repair_fixes_and_exits_0(cli, session, storage, chapter):
    user, chap = chapter
    ready(session, storage, user, chap)
    stuck = begin(session, user, chap)
    stuck.created_at = datetime.now(timezone.utc) - timedelta(hours=3)
    session.add(stuck)
    session.commit()
    orphan = f"videos/{user.id}/{uuid.uuid4()}"
    storage.put_stream(orphan, [MP4], content_type="video/mp4")
    age(storage, orphan, 2 * HOUR)

    code, out = cli()
    assert code == 1
    assert "2 problem(s): 1 stuck_upload, 1 orphan_file" in out
    assert "KIND" in out and orphan in out and "[repair: delete the file]" in out

    code, out = cli("--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["counts"] == {"stuck_upload": 1, "orphan_file": 1}
    assert {p["kind"]: p["repair"] for p in report["problems"]} == {
        "stuck_upload": "mark the video failed", "orphan_file": "delete the file"}
    assert storage.stat(orphan, orphan) is not None  # a dry run changes nothing

    code, out = cli("--repair")
    assert code == 0 and "Repairs: 2 done, 0 not done." in out and "Database and storage agree." in out
    code, out = cli("--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_cli_repair_json_reports_what_was_done_and_what_remains(cli, session, storage, chapter):
    user, chap = chapter
    young = f"videos/{user.id}/{uuid.uuid4()}"
    storage.put_stream(young, [MP4], content_type="video/mp4")

    code, out = cli("--repair", "--json")
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and result["repairs"] == []
    assert [p["key"] for p in result["problems"]] == [young] and result["found"]["counts"] == {"orphan_file": 1}

    code, out = cli("--repair", "--json", "--grace-minutes", "0")
    result = json.loads(out)
    assert code == 0 and result["ok"] is True
    assert result["repairs"] == [{"kind": "orphan_file", "key": young, "outcome": "deleted"}]


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_cli_refuses_a_bad_grace_period(cli, value, capsys):
    with pytest.raises(SystemExit) as exited:
        course_app.cli.main(["check-videos", "--grace-minutes", value])
    assert exited.value.code == 2 and "grace-minutes" in capsys.readouterr().err


def test_cli_exits_2_when_storage_cannot_be_listed(cli, storage, monkeypatch, capsys):
    from course_app.storage.base import StorageError

    def down(*_args, **_kwargs):
        raise StorageError("Storage is unavailable right now; try again.")

    monkeypatch.setattr(storage, "list", down)
    assert course_app.cli.main(["check-videos"]) == 2
    assert "Storage is unavailable" in capsys.readouterr().err
