"""What the security tests share: snapshots of the running app's database and
storage folder, a socket client that speaks to Reflex exactly like the browser
does, and the list of things that must never reach a browser."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import socketio
import sqlalchemy as sa

ROOT_STATE = "reflex___state____state"
HYDRATE = f"{ROOT_STATE}.hydrate_and_load"
EVENT_NAMESPACE = "/_event"
EVIL = "https://evil.example"

# Columns the app changes by itself (last use of a token, the outbox's retry
# bookkeeping): a change there is not a change made by the request under test.
VOLATILE_COLUMNS = {"api_tokens": {"last_used_at"}, "storage_deletions": {"attempts", "last_error", "next_attempt_at"}}


# The database and the storage folder ---------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, dict[tuple, dict]]  # table -> primary key -> row (volatile columns left out)
    files: dict[str, tuple[int, int]]  # storage path -> (size, mtime_ns)


def _rows(engine) -> dict[str, dict[tuple, dict]]:
    inspector = sa.inspect(engine)
    tables = {}
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            if table == "alembic_version":
                continue
            keys = inspector.get_pk_constraint(table)["constrained_columns"]
            skip = VOLATILE_COLUMNS.get(table, set())
            rows = {}
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')).mappings():
                values = {k: v for k, v in row.items() if k not in skip}
                rows[tuple(row[k] for k in keys)] = values
            tables[table] = rows
    return tables


def storage_files(storage_root: Path) -> dict[str, tuple[int, int]]:
    files = {}
    for path in storage_root.rglob("*"):
        try:
            if path.is_file():
                stat = path.stat()
                files[path.relative_to(storage_root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:  # removed by the outbox while we looked
            pass
    return files


def take_snapshot(engine, storage_root: Path) -> Snapshot:
    return Snapshot(_rows(engine), storage_files(storage_root))


def _owner_of(table: str, row: dict, before: Snapshot, after: Snapshot) -> int | None:
    """The user a row belongs to, following the foreign keys of the schema."""
    if table == "users":
        return row["id"]
    if table in ("auth_sessions", "api_tokens"):
        return row["user_id"]
    if table in ("courses",):
        return row["owner_id"]
    if table == "upload_sessions":
        return row["owner_id"]
    if table in ("chapters", "videos"):
        for snap in (after, before):
            for course in snap.rows.get("courses", {}).values():
                if course["id"] == row["course_id"]:
                    return course["owner_id"]
    if table == "upload_parts":
        for snap in (after, before):
            for upload in snap.rows.get("upload_sessions", {}).values():
                if upload["id"] == row["session_id"]:
                    return upload["owner_id"]
    return None


def diff(before: Snapshot, after: Snapshot, *, may_create_for: int | None = None,
         protected_users: Iterable[int] = ()) -> list[str]:
    """What changed, as readable lines. Allowed and not reported:
    - rows the app removes by itself: the outbox (storage_deletions) once storage
      confirms, and log-in sessions of users other than ``protected_users``
      (expired ones are purged);
    - with ``may_create_for``, new rows belonging to that user (a stranger creating
      things of their own is not an attack on anyone);
    - files removed from storage outside the protected users' folders (the outbox)."""
    protected = set(protected_users)
    problems = []
    for table in sorted(set(before.rows) | set(after.rows)):
        old, new = before.rows.get(table, {}), after.rows.get(table, {})
        for key, row in new.items():
            if key not in old:
                if may_create_for is not None and _owner_of(table, row, before, after) == may_create_for:
                    continue
                problems.append(f"{table}: new row {row}")
            elif old[key] != row:
                changed = {k: (old[key].get(k), v) for k, v in row.items() if old[key].get(k) != v}
                problems.append(f"{table}: row {key} changed {changed}")
        for key, row in old.items():
            if key in new:
                continue
            if table == "storage_deletions":
                continue
            if table == "auth_sessions" and row["user_id"] not in protected:
                continue
            problems.append(f"{table}: row removed {row}")
    protected_prefixes = tuple(f"videos/{user_id}/" for user_id in protected)
    for path, stat in after.files.items():
        if path not in before.files:
            if may_create_for is not None and path.startswith(f"videos/{may_create_for}/"):
                continue
            problems.append(f"storage: new file {path}")
        elif before.files[path] != stat:
            problems.append(f"storage: file changed {path}")
    for path in before.files:
        if path not in after.files and path.startswith(protected_prefixes):
            problems.append(f"storage: file removed {path}")
    return problems


# What must never reach a browser -----------------------------------------------------------


def find_leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets whose value occurs in ``text``."""
    return [name for name, value in secrets.items() if value and value in text]


# The socket, as the browser speaks it -----------------------------------------------------------


class SocketRefused(Exception):
    pass


class TokenTaken(Exception):
    pass


class SocketClosed(AssertionError):
    """The server closed the tab's socket while the test waited for an answer."""


@dataclass
class Tab:
    """One browser tab's socket to the running app: the client token selects
    the server-side State, the cookie is fixed at connect time, and each event
    carries the page's router data (utils/state.js: connect, ReflexEvent,
    withRouterData)."""

    base_url: str
    cookie: str | None = None  # the cs_session value
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    origin: str | None = "same"
    frames: list = field(default_factory=list)
    path: str = "/dashboard"
    query: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("event", self._on_event, namespace=EVENT_NAMESPACE)
        self.disconnected = asyncio.Event()
        self.sio.on("disconnect", self._on_disconnect, namespace=EVENT_NAMESPACE)
        self.sio.on("new_token", self._on_new_token, namespace=EVENT_NAMESPACE)
        self.replaced_token: str | None = None
        self._settles = 0

    async def _on_event(self, data) -> None:
        self.frames.append(data)

    async def _on_disconnect(self, *args) -> None:
        self.disconnected.set()

    async def _on_new_token(self, token) -> None:
        # The server found this client token still linked to another socket and
        # handed out a fresh one: this tab no longer reaches the stored State.
        self.replaced_token = token

    def router_data(self, marker: str | None = None) -> dict:
        """pathname, asPath and query (the page's params: course_id) like withRouterData."""
        query, as_path = dict(self.query), self.path
        if marker is not None:
            query["settle"] = marker
            as_path += f"?settle={marker}"
        return {"pathname": self.path, "asPath": as_path, "query": query}

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.cookie:
            headers["Cookie"] = f"cs_session={self.cookie}"
        if self.origin == "same":
            headers["Origin"] = self.base_url
        elif self.origin:
            headers["Origin"] = self.origin
        return headers

    async def connect(self, path: str, query: dict | None = None, *, hydrate: bool = True) -> None:
        """Connect like a page load: the hydrate event rides in the CONNECT packet.
        Without ``hydrate`` the socket only links the token (a reconnect that
        reuses the server's stored State as it is)."""
        self.path, self.query = path, dict(query or {})
        auth = {"event": {"name": HYDRATE, "payload": {}, "router_data": self.router_data()}} if hydrate else None
        try:
            await self.sio.connect(
                f"{self.base_url}?token={self.token}", headers=self.headers(), auth=auth, transports=["websocket"],
                namespaces=[EVENT_NAMESPACE], socketio_path="/_event", wait_timeout=10,
            )
        except socketio.exceptions.ConnectionError as exc:
            raise SocketRefused(str(exc)) from exc
        if hydrate:
            await self.wait_for(lambda f: f.get("delta", {}).get(ROOT_STATE, {}).get("is_hydrated_rx_state_") is True,
                                what="the page's hydration")
        await self.settle()
        if self.replaced_token is not None:  # sent during the connect, so here by now
            await self.close()
            raise TokenTaken(self.token)

    async def wait_for(self, predicate: Callable[[dict], bool], *, start: int = 0, what: str, timeout: float = 15) -> int:
        """The index of the first frame from ``start`` on that matches."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for index in range(start, len(self.frames)):
                if predicate(self.frames[index]):
                    return index
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no frame for {what} within {timeout}s; frames: {json.dumps(self.frames)[-2000:]}")
            if not self.sio.connected:
                raise SocketClosed(f"the socket closed while waiting for {what}")
            await asyncio.sleep(0.01)

    async def emit(self, name: str, payload=None, *, raw: object = None) -> None:
        """Send an event as ReflexEvent + withRouterData build it (or ``raw``, any frame)."""
        data = raw if raw is not None else {"name": name, "payload": payload if payload is not None else {},
                                            "router_data": self.router_data()}
        await self.sio.emit("event", data, namespace=EVENT_NAMESPACE)

    async def settle(self) -> None:
        """Wait until every event sent so far, and every event those queued, has
        been processed. Events of one tab run one at a time in arrival order, so a
        marker event (its router data carries a unique query value the answer
        echoes) comes back only after all earlier ones; a second round catches
        events queued by the first ones, and so on until a round brings nothing else."""
        quiet_rounds = 0
        for _ in range(8):
            self._settles += 1
            marker = f"m{self._settles}x{uuid.uuid4().hex[:8]}"
            start = len(self.frames)
            await self.sio.emit("event", {"name": f"{ROOT_STATE}.set_is_hydrated", "payload": {"value": True},
                                          "router_data": self.router_data(marker)}, namespace=EVENT_NAMESPACE)
            index = await self.wait_for(lambda f: marker in json.dumps(f), start=start, what="the settle marker")
            others = [f for f in self.frames[start:index] if not _is_marker(f)]
            quiet_rounds = quiet_rounds + 1 if not others else 0
            if quiet_rounds >= 2:
                return
        raise AssertionError("the tab never settled")

    async def send(self, name: str, payload=None) -> list:
        """Send one event, wait until it and what it queued are done; the frames it caused."""
        start = len(self.frames)
        await self.emit(name, payload)
        await self.settle()
        return [f for f in self.frames[start:] if not _is_marker(f)]

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def _is_marker(frame: dict) -> bool:
    text = json.dumps(frame)
    if "settle=" not in text and '"settle"' not in text:
        return False
    delta = frame.get("delta", {})
    return set(delta) <= {ROOT_STATE} and not frame.get("events")


def redirects(frames: list) -> list[str]:
    """The paths of the redirects the backend told the browser to follow."""
    paths = []
    for frame in frames:
        for event in frame.get("events") or []:
            if event.get("name") == "_redirect":
                paths.append(event.get("payload", {}).get("path", ""))
    return paths


def errors_shown(frames: list) -> list[str]:
    """Every non-empty error message a State sent (vars named error / load_error / create_error)."""
    shown = []
    for frame in frames:
        for values in (frame.get("delta") or {}).values():
            for name, value in values.items():
                if name.removesuffix("_rx_state_") in ("error", "load_error", "create_error") and value:
                    shown.append(value)
    return shown


def run(coro):
    return asyncio.run(coro)


def socket_handshake(base_url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Open the socket's WebSocket handshake by hand (as the browser's first request)
    and read the server's answer: status, headers (lower-case names) and body, if any."""
    import base64
    import os
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    request = (f"GET /_event/?EIO=4&transport=websocket&token={token or uuid.uuid4()} HTTP/1.1\r\n"
               f"Host: {url.netloc}\r\nOrigin: {base_url}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n")
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(lines[0].split()[1])
        if status != 101:
            while len(body) < int(headers.get("content-length", 0)):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                body += chunk
    return status, headers, body
