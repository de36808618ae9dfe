"""Audit the locked dependency set (requirements.lock) for known vulnerabilities
with pip-audit, and say plainly what could and could not be checked.

Exit codes: 0 no known vulnerability among the packages checked; 1 vulnerable
packages found (the table names each with its fixed versions); 0 with an
"AUDIT INCOMPLETE" banner when the vulnerability service could not be reached
for some packages (nothing in the code can fix that; the banner says which).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def main() -> int:
    command = [sys.executable, "-m", "pip_audit", "-r", str(LOCK), "--no-deps", "--disable-pip",
               "--progress-spinner", "off", "--format", "json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print("AUDIT FAILED TO RUN:", (result.stderr or result.stdout).strip()[-2000:])
        return 2
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    checked = len(dependencies) - len(skipped)
    print(f"Dependency audit of {LOCK.name}: {len(dependencies)} packages, {checked} checked, "
          f"{len(skipped)} could not be checked, {len(vulnerable)} vulnerable.")
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"  VULNERABLE {dep['name']}=={dep['version']}: {vuln['id']} (fixed in {fixes})")
    if skipped:
        print(f"AUDIT INCOMPLETE: the vulnerability service did not answer for {len(skipped)} package(s) "
              f"(for example {skipped[0]['name']}: {skipped[0]['skip_reason']}). "
              "Run scripts/audit.py where pypi.org's per-release JSON or OSV is reachable.")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
