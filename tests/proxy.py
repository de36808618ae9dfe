"""A tiny reverse proxy for tests: each HTTP request goes to the next backend in
turn (round robin), so consecutive requests of one client reach different app
instances. HTTP/1.1 with Content-Length bodies (what httpx sends); no websockets.
Runs its own event loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade",
              "proxy-connection", "te", "trailer"}


class AlternatingProxy:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.hits: Counter[str] = Counter()
        self.port = 0
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AlternatingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with httpx.AsyncClient(timeout=120) as client:
            server = await asyncio.start_server(lambda r, w: self._connection(client, r, w), "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await self._stop.wait()

    async def _connection(self, client: httpx.AsyncClient, reader, writer) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines if line]
                length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
                body = await reader.readexactly(length) if length else b""
                backend = self.backends[self._turn % len(self.backends)]
                self._turn += 1
                self.hits[backend] += 1
                forwarded = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
                answer = await client.send(client.build_request(method, backend + target, headers=forwarded,
                                                                content=body), stream=True)
                raw = b"".join([chunk async for chunk in answer.aiter_raw()])
                await answer.aclose()
                lines = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
                lines += [f"{k}: {v}" for k, v in answer.headers.multi_items() if k.lower() not in HOP_BY_HOP]
                lines += [f"content-length: {len(raw)}", "", ""]
                writer.write("\r\n".join(lines).encode("latin-1") + raw)
                await writer.drain()
        finally:
            writer.close()
