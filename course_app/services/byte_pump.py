"""The byte pump between an async request body and a blocking storage call: the
event loop reads, a worker thread writes, and a small bounded queue between them
keeps memory flat (a slow storage slows the reading).

Storage threads come from a pool of their own (``storage_thread``): an upload holds
its thread for as long as its bytes flow, and on asyncio's default pool (a few
threads) fifty uploads would make every short database call of the process (an
editor's rename, a log-in check) wait behind them."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from course_app.errors import TooLarge
from course_app.settings import get_settings
from course_app.storage.base import UploadAborted

T = TypeVar("T")

QUEUE_CHUNKS = 2  # batches (about BATCH_BYTES each) waiting per request: about a MiB in flight per upload
BATCH_BYTES = 512 * 1024
STORAGE_THREADS = 64  # uploads streaming at once per process; more wait for a thread

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _lower_priority() -> None:
    """A storage thread's initializer: hashing and copying bytes yield the CPU to the
    event loop's thread (Linux gives each thread its own niceness), so an editor's
    event is not queued behind fifty uploads' SHA1s."""
    nice = get_settings().storage_nice
    if nice and hasattr(os, "setpriority") and sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
        except OSError:  # not permitted here: the thread runs at the process's priority
            pass


def _storage_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(STORAGE_THREADS, thread_name_prefix="storage", initializer=_lower_priority)
        return _pool


def storage_thread(fn: Callable[..., T], /, *args, **kwargs) -> asyncio.Future[T]:
    """``fn(*args, **kwargs)`` in a storage thread (as ``asyncio.to_thread``, with the
    caller's context variables), for storage work that takes as long as its bytes."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(_storage_pool(), call)


class _Feed:
    """Hands chunks from the event loop to the storage thread, at most
    QUEUE_CHUNKS batches in flight (so memory stays bounded). When the queue is
    full the loop waits until the thread takes a batch and wakes it (no polling,
    so a short queue never leaves the thread waiting for the loop)."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._loop = asyncio.get_running_loop()
        self._space = asyncio.Event()
        self._waiting = False  # the loop waits for room (set by the loop, cleared by the thread)
        self.consumer: asyncio.Future | None = None  # the storage thread's future

    def attach(self, consumer: asyncio.Future) -> None:
        self.consumer = consumer
        consumer.add_done_callback(lambda _: self._space.set())  # a thread that stopped takes nothing more

    def chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if self._waiting:
                self._waiting = False
                self._loop.call_soon_threadsafe(self._space.set)
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def put(self, item) -> None:
        while self.consumer is None or not self.consumer.done():
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                pass
            self._space.clear()
            self._waiting = True
            try:  # the thread may have taken a batch before it could see the flag
                self._queue.put_nowait(item)
                self._waiting = False
                return
            except queue.Full:
                await self._space.wait()

    async def end(self) -> None:
        await self.put(self._END)

    async def abort(self, reason: str) -> None:
        await self.put(UploadAborted(reason))


async def stream_to_thread(
    work: Callable[[Iterator[bytes]], T],
    chunks: AsyncIterator[bytes],
    *,
    limit: int,
    too_large: str,
    head: bytes = b"",
) -> T:
    """Run ``work(source)`` in a worker thread, feeding ``source`` with ``head`` and
    then ``chunks`` through a small bounded queue (memory stays bounded; a slow
    storage slows the reading). Past ``limit`` bytes raises TooLarge. On any error
    the work is stopped (its source raises UploadAborted) and awaited before the
    error propagates, so the storage call can clean up after itself."""
    feed = _Feed()
    task = storage_thread(work, feed.chunks())
    feed.attach(task)
    try:
        # A batch is kept as the received chunks and joined once when sent: one copy
        # of every byte (a bytearray grown and then copied to bytes made two).
        received = len(head)
        batch: list[bytes] = [head] if head else []
        batched = received
        if received > limit:  # the head alone (one big first chunk) may already be over
            raise TooLarge(too_large)
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise TooLarge(too_large)
            if task.done():  # the work gave up early; stop reading
                break
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BATCH_BYTES:
                await feed.put(b"".join(batch))
                batch, batched = [], 0
        if batch:
            await feed.put(b"".join(batch))
        await feed.end()
        return await task
    except BaseException as exc:
        if not task.done():
            await feed.abort(type(exc).__name__)
        try:
            await asyncio.shield(task)
        except BaseException:
            pass
        raise
