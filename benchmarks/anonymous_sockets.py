"""What anonymous socket connections cost the server, with the caps and without.

Run from the repository root:

    .venv/bin/python benchmarks/anonymous_sockets.py                       # 1,000 connections, 2 rounds
    .venv/bin/python benchmarks/anonymous_sockets.py --connections 300 --rounds 1 --grace 5

What it does, for two servers in turn (each a production build started with
``tests.server.AppServer``, its own data and states folders, one web build folder
``benchmarks/results/.web-bench`` unless ``--web-dir``):

- "uncapped": the caps off, as before them: one IP may hold any number of sockets
  (``COURSE_SOCKET_CONNECTIONS_PER_IP=1000000``) and a tab that never logged in keeps
  its States for Reflex's token lifetime (``COURSE_ANONYMOUS_STATE_SECONDS=3600``);
- "capped": the defaults (40 sockets per IP) with ``--grace`` seconds for the States
  of tabs that never logged in (the default setting is 60).

Each round opens ``--connections`` anonymous sockets the way the browser does (the
hydrate event of the log-in page in the CONNECT packet, websocket transport, the
app's own Origin), ``--batch`` at a time, spread over ``--ips`` source addresses
(127.0.0.1, 127.0.0.2, ...: Linux answers the whole 127/8 on loopback), and holds
them all open. Then it records how many were let in, the time from connect to
the hydrated page (p50/p95 of those let in; refusals separately), the server's
memory (VmRSS summed over the server's process group) and the state files Reflex
keeps (*.pkl in the states folder: count and bytes). It closes every socket, waits
``--grace`` + 5 s (the disk manager writes 2 s after an event; the watcher looks
every 0.4 s) and measures again: what the round left behind; then it notes when
the state files were back to where they were before the round ("clean after", up
to ``--grace`` + 60 s, else "never"). A second round shows whether what is left
grows with the number of connections made (it must stay flat).

Prints a table and writes JSON to ``benchmarks/results/anonymous_sockets.json``
(``--output``). Every server the script starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import socketio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.server import AppServer  # noqa: E402

MIB = 1024 * 1024
ROOT_STATE = "reflex___state____state"
HYDRATE = f"{ROOT_STATE}.hydrate_and_load"


def server_rss(pgid: int) -> int:
    """VmRSS in bytes summed over every process of the server's process group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total


def state_files(folder: Path) -> tuple[int, int]:
    files = list(folder.glob("*.pkl")) if folder.is_dir() else []
    return len(files), sum(f.stat().st_size for f in files if f.exists())


class Visitor:
    """One anonymous tab: a socket that hydrates the log-in page."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.sio = socketio.AsyncClient(reconnection=False, http_session=session)
        self.hydrated = asyncio.Event()
        self.sio.on("event", self._on_event, namespace="/_event")

    async def _on_event(self, frame) -> None:
        if (frame.get("delta") or {}).get(ROOT_STATE, {}).get("is_hydrated_rx_state_") is True:
            self.hydrated.set()

    async def visit(self) -> tuple[bool, float]:
        """(let in, seconds to the hydrated page or to the refusal)."""
        started = time.perf_counter()
        router = {"pathname": "/login", "asPath": "/login", "query": {}}
        try:
            await self.sio.connect(f"{self.base_url}?token={uuid.uuid4()}", transports=["websocket"],
                                   headers={"Origin": self.base_url}, namespaces=["/_event"],
                                   socketio_path="/_event", wait_timeout=30,
                                   auth={"event": {"name": HYDRATE, "payload": {}, "router_data": router}})
            await asyncio.wait_for(self.hydrated.wait(), 60)
        except (socketio.exceptions.ConnectionError, TimeoutError):
            return False, time.perf_counter() - started
        return True, time.perf_counter() - started

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


async def one_round(server: AppServer, states: Path, args) -> dict:
    base_url = server.base_url.replace("localhost", "127.0.0.1")
    pgid = os.getpgid(server.process.pid)
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n + 1}", 0), limit=0))
                for n in range(args.ips)]
    before_rss, (before_files, before_bytes) = server_rss(pgid), state_files(states)
    visitors = [Visitor(base_url, sessions[n % args.ips]) for n in range(args.connections)]
    results: list[tuple[bool, float]] = []
    began = time.perf_counter()
    for start in range(0, len(visitors), args.batch):
        results += await asyncio.gather(*(v.visit() for v in visitors[start:start + args.batch]))
    opening = time.perf_counter() - began
    await asyncio.sleep(3)  # the disk manager's delayed writes land
    held_rss, (held_files, held_bytes) = server_rss(pgid), state_files(states)
    await asyncio.gather(*(v.close() for v in visitors))
    for session in sessions:
        await session.close()
    closed = time.monotonic()
    await asyncio.sleep(args.grace + 5)
    after_rss, (after_files, after_bytes) = server_rss(pgid), state_files(states)
    clean_after = None  # seconds from closing until the state files were back to where they were
    while time.monotonic() - closed < args.grace + 60:
        if state_files(states)[0] <= before_files:
            clean_after = round(time.monotonic() - closed, 1)
            break
        await asyncio.sleep(1)
    end_rss = server_rss(pgid)  # when clean (or given up on)
    admitted = [seconds for ok, seconds in results if ok]
    refused = [seconds for ok, seconds in results if not ok]
    return {
        "connections": args.connections, "admitted": len(admitted), "refused": len(refused),
        "open_all_seconds": round(opening, 2),
        "connect_p50_ms": round(percentile(admitted, 0.5) * 1000, 1),
        "connect_p95_ms": round(percentile(admitted, 0.95) * 1000, 1),
        "refusal_p50_ms": round(percentile(refused, 0.5) * 1000, 1),
        "rss_before_mib": round(before_rss / MIB, 1), "rss_held_mib": round(held_rss / MIB, 1),
        "rss_after_mib": round(after_rss / MIB, 1), "rss_end_mib": round(end_rss / MIB, 1),
        "files_before": before_files, "files_held": held_files, "files_after": after_files,
        "state_kib_held": round(held_bytes / 1024, 1), "state_kib_after": round(after_bytes / 1024, 1),
        "bytes_before": before_bytes, "seconds_until_clean": clean_after,
    }


def run_config(name: str, env: dict[str, str], args) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"anon-sockets-{name}-"))
    server = AppServer(data_dir=home / "data", log_path=home / "server.log",
                       extra_env={"REFLEX_WEB_WORKDIR": str(args.web_dir), **env})
    states = home / "states"
    print(f"[{name}] starting the app ...", flush=True)
    server.start()
    try:
        rounds = []
        for number in range(1, args.rounds + 1):
            result = asyncio.run(one_round(server, states, args))
            print(f"[{name}] round {number}: {json.dumps(result)}", flush=True)
            rounds.append(result)
        return {"config": name, "env": env, "rounds": rounds}
    finally:
        server.stop()


def table(runs: list[dict]) -> str:
    head = ("config", "round", "let in", "refused", "p50 ms", "p95 ms", "RSS held", "RSS end (from start)",
            "files held", "files after", "KiB after", "clean after")
    rows = [head]
    for run in runs:
        rounds_start = run["rounds"][0]["rss_before_mib"]
        for number, r in enumerate(run["rounds"], start=1):
            rows.append((run["config"], str(number), f"{r['admitted']}/{r['connections']}", str(r["refused"]),
                         f"{r['connect_p50_ms']}", f"{r['connect_p95_ms']}",
                         f"+{r['rss_held_mib'] - r['rss_before_mib']:.1f} MiB",
                         f"{r['rss_end_mib']:.1f} MiB (+{r['rss_end_mib'] - rounds_start:.1f})",
                         f"{r['files_held'] - r['files_before']:+d}", f"{r['files_after'] - r['files_before']:+d}",
                         f"{r['state_kib_after']}",
                         "never" if r["seconds_until_clean"] is None else f"{r['seconds_until_clean']} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000, help="anonymous sockets per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server (default 2)")
    parser.add_argument("--ips", type=int, default=10, help="source addresses 127.0.0.1.. (default 10)")
    parser.add_argument("--batch", type=int, default=50, help="connections opened at once (default 50)")
    parser.add_argument("--grace", type=float, default=60,
                        help="COURSE_ANONYMOUS_STATE_SECONDS of the capped server (default 60, the setting's default)")
    parser.add_argument("--only", choices=["uncapped", "capped"], help="run one server only")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "anonymous_sockets.json")
    parser.add_argument("--web-dir", type=Path, default=HERE / "results" / ".web-bench")
    args = parser.parse_args(argv)
    configs = {
        "uncapped": {"COURSE_SOCKET_CONNECTIONS_PER_IP": "1000000", "COURSE_ANONYMOUS_STATE_SECONDS": "3600"},
        "capped": {"COURSE_ANONYMOUS_STATE_SECONDS": str(args.grace)},
    }
    runs = [run_config(name, env, args) for name, env in configs.items() if args.only in (None, name)]
    print()
    print(table(runs))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "anonymous_sockets", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "web_dir")},
        "runs": runs,
    }, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
