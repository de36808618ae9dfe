"""The app's operator command, ``course-app``, run as an operator runs it: a real
process with a given environment (a running app's, to check its database and storage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

COURSE_APP = Path(sys.executable).parent / "course-app"


def check_videos(env: dict[str, str], *args: str, timeout: float = 120) -> dict:
    """``course-app check-videos --json ARGS``: its report, whose ``ok`` must agree
    with the exit code (0 when the database and storage agree)."""
    result = subprocess.run([str(COURSE_APP), "check-videos", "--json", *args], env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.stdout, result.stderr
    report = json.loads(result.stdout)
    assert (result.returncode == 0) == report["ok"], (result.returncode, result.stderr)
    return report
