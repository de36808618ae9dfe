"""`course-app`: manage users and tokens, check videos against storage and sweep
uploads from the shell (and print what they found)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable

from course_app.db import migrate, session_scope
from course_app.errors import DomainError
from course_app.models import ROLES
from course_app.services import api_tokens, reconcile, users
from course_app.settings import load_settings_or_exit


def _create_user(args: argparse.Namespace) -> int:
    with session_scope() as session:
        user = users.create_user(session=session, email=args.email, password=args.password, role=args.role)
        print(f"Created {user.role} {user.email}")
    return 0


def _create_token(args: argparse.Namespace) -> int:
    with session_scope() as session:
        user = users.get_user_by_email(session=session, email=args.email)
        if user is None:
            raise DomainError(f"No user with e-mail {args.email}.")
        _, plain = api_tokens.create_api_token(session=session, user=user, name=args.name)
    print(plain)
    return 0


def _check_videos(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from course_app.storage import StorageError, get_storage

    grace = timedelta(minutes=args.grace_minutes)
    try:
        if args.repair:
            result = reconcile.repair(session_factory=session_scope, storage=get_storage(), grace=grace)
            print(json.dumps(result.as_dict(), indent=2) if args.json else format_repair(result))
            return 0 if result.ok else 1
        with session_scope() as session:
            report = reconcile.check_videos(session=session, storage=get_storage(), grace=grace)
    except StorageError as error:  # storage could not even be listed: nothing was checked
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.ok else 1


def _table(problems: Iterable[reconcile.Problem]) -> list[str]:
    problems = list(problems)
    kind_width = max(len(p.kind) for p in problems)
    key_width = min(max(len(p.key) for p in problems), 60)
    lines = [f"{'KIND'.ljust(kind_width)}  {'KEY'.ljust(key_width)}  DETAIL"]
    for p in problems:
        note = f" [repair: {reconcile.REPAIRS[p.kind]}]" if p.repairable and p.kind in reconcile.REPAIRS else ""
        lines.append(f"{p.kind.ljust(kind_width)}  {p.key.ljust(key_width)}  {p.detail}{note}")
    return lines


def format_report(report: reconcile.Report) -> str:
    trashed = f" ({report.trashed_rows} in a course trash, files kept until purged)" if report.trashed_rows else ""
    replacing = f", {report.replacements_checked} replacements on their way" if report.replacements_checked else ""
    lines = [
        f"Checked {report.rows_checked} video rows{trashed}{replacing}, {report.objects_checked} stored files and "
        f"{report.unfinished_checked} unfinished uploads"
        + (f" ({report.in_flight} in progress, left alone)." if report.in_flight else ".")
    ]
    if report.ok:
        lines.append("Database and storage agree.")
        return "\n".join(lines)
    summary = ", ".join(f"{count} {kind}" for kind, count in report.counts().items())
    lines.append(f"{len(report.problems)} problem(s): {summary}")
    lines += _table(report.problems)
    return "\n".join(lines)


def format_repair(result: reconcile.RepairReport) -> str:
    lines = [format_report(result.before), ""]
    if result.actions:
        done = sum(a.done for a in result.actions)
        lines.append(f"Repairs: {done} done, {len(result.actions) - done} not done.")
        width = max(len(a.kind) for a in result.actions)
        lines += [f"  {a.kind.ljust(width)}  {a.key}  {a.outcome}" for a in result.actions]
    else:
        lines.append("Nothing to repair.")
    lines += ["", "After repair:", format_report(result.after)]
    return "\n".join(lines)


def _sweep_uploads(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from course_app.services.upload_sweep import sweep
    from course_app.storage import get_storage

    hours = args.older_than_hours or load_settings_or_exit().upload_stale_hours
    report = sweep(session_factory=session_scope, storage=get_storage(), stale_after=timedelta(hours=hours),
                   dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "Would expire" if args.dry_run else "Expired"
        print(f"{verb} {len(report.expired)} upload(s) untouched for {hours:g} hours.")
        for upload_id in report.expired:
            print(f"  session {upload_id}")
        verb = "Would cancel" if args.dry_run else "Cancelled"
        print(f"{verb} {len(report.unknown_cancelled)} unfinished storage upload(s) that no session knows.")
        for item in report.unknown_cancelled:
            print(f"  {item}")
    if not args.dry_run:
        from course_app.services.outbox import process_pending_deletions

        process_pending_deletions(session_factory=session_scope, storage=get_storage())
    return 0


def _sweep_trash(args: argparse.Namespace) -> int:
    from course_app.services.outbox import process_pending_deletions
    from course_app.services.trash import sweep_trash
    from course_app.storage import get_storage

    report = sweep_trash(session_factory=session_scope, dry_run=args.dry_run)
    if not args.dry_run:
        process_pending_deletions(session_factory=session_scope, storage=get_storage(), ids=report.pending)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "Would purge" if args.dry_run else "Purged"
        days = load_settings_or_exit().trash_days
        print(f"{verb} {report.videos} video(s) and {report.chapters} chapter(s) in the trash for over {days} days.")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from course_app import worker

    return worker.run(workers=args.workers, parent=args.parent)


def _retry_video(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from course_app.models import VideoReplacement
    from course_app.services import replacements
    from course_app.services.validation import parse_uuid

    wait = timedelta(seconds=load_settings_or_exit().processing_queue_wait_seconds)
    with session_scope() as session:
        row = replacements.restart_failed_of(session=session, row_id=parse_uuid(args.video_id, what="video"),
                                             queue_wait=wait, force=args.force)
        if isinstance(row, VideoReplacement):
            print(f"The new file of video {row.video_id} ({row.filename}, replacement {row.id}) is processing "
                  f"again from the {row.stage} stage.")
        else:
            print(f"Video {row.id} is processing again from the {row.stage} stage.")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from course_app import serve

    return serve.run(port=args.port, host=args.host, workers=args.workers)


def _migrate(_: argparse.Namespace) -> int:
    migrate()
    print("Database schema is up to date.")
    return 0


def _minutes(value: str) -> float:
    try:
        minutes = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of minutes") from None
    if not minutes >= 0 or minutes == float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more minutes")
    return minutes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course-app", description="Course Studio administration.")
    commands = parser.add_subparsers(dest="command", required=True)

    create_user = commands.add_parser("create-user", help="create an account")
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--password", required=True)
    create_user.add_argument("--role", choices=ROLES, default="instructor")
    create_user.set_defaults(handler=_create_user)

    create_token = commands.add_parser("create-token", help="create a personal API token and print it once")
    create_token.add_argument("--email", required=True)
    create_token.add_argument("--name", default="cli")
    create_token.set_defaults(handler=_create_token)

    check = commands.add_parser(
        "check-videos",
        help="compare the database with storage both ways (dry run); exit 1 while problems remain",
        description="Report video rows without their file (or with another size or SHA1), stored files no row "
        "references, unfinished uploads no upload session knows, storage deletions not yet carried out and "
        "uploads stuck part-way. Changes nothing unless --repair is given.",
    )
    check.add_argument("--json", action="store_true", help="print a machine-readable report")
    check.add_argument("--repair", action="store_true",
                       help="fix what is safe to fix (deletions, orphans and leftovers older than the grace period, "
                            "unknown uploads, stuck or missing videos marked failed), then check again")
    check.add_argument("--grace-minutes", type=_minutes, default=60,
                       help="leave anything younger than this alone: it may be an upload in progress (default: 60; "
                            "make it longer than the slowest upload takes)")
    check.set_defaults(handler=_check_videos)

    sweep = commands.add_parser("sweep-uploads", help="expire abandoned resumable uploads and cancel unknown ones")
    sweep.add_argument("--dry-run", action="store_true", help="only report what would be done")
    sweep.add_argument("--older-than-hours", type=float, default=None, help="default: COURSE_UPLOAD_STALE_HOURS")
    sweep.add_argument("--json", action="store_true")
    sweep.set_defaults(handler=_sweep_uploads)

    trash = commands.add_parser("sweep-trash", help="delete for good what has been in a course trash longer than "
                                "COURSE_TRASH_DAYS (the app does this every 15 minutes)")
    trash.add_argument("--dry-run", action="store_true", help="only report what would be purged")
    trash.add_argument("--json", action="store_true")
    trash.set_defaults(handler=_sweep_trash)
    worker = commands.add_parser("worker", help="process uploaded videos (a job queue consumer); run as many as wanted")
    worker.add_argument("--workers", type=int, default=1, help="jobs run at once in this process (default: 1)")
    worker.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)  # the app that started it
    worker.set_defaults(handler=_worker)

    retry = commands.add_parser("retry-video", help="run a video's failed processing stage again (or its "
                                "replacement file's, when that failed)")
    retry.add_argument("video_id", help="a video's id, or a replacement's (check-videos names both)")
    retry.add_argument("--force", action="store_true", help="also when the failure said a retry cannot help")
    retry.set_defaults(handler=_retry_video)

    serve = commands.add_parser("serve", help="serve the production build (migrations first, then N backend workers)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")),
                       help="the one port of pages, API and socket (default: $PORT or 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    serve.add_argument("--workers", type=int, default=None, help="backend worker processes (default: "
                       "COURSE_WEB_WORKERS; more than one needs COURSE_REDIS_URL)")
    serve.set_defaults(handler=_serve)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(handler=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    load_settings_or_exit()
    try:
        migrate()
        return args.handler(args)
    except DomainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
