"""course_app/services/byte_pump.py: the bounded hand-over from the event loop to a
storage thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from course_app.errors import TooLarge
from course_app.services import byte_pump
from course_app.storage.base import UploadAborted
from tests.polling import wait_for

CHUNK = 64 * 1024


async def body(count: int, *, pause_after: int | None = None):
    for index in range(count):
        if index == pause_after:
            await asyncio.sleep(0.05)
        yield bytes([index % 251]) * CHUNK


def test_every_byte_arrives_in_order_with_at_most_a_few_batches_waiting():
    waiting: list[int] = []

    def work(source):
        received = []
        for batch in source:
            time.sleep(0.001)  # a storage slower than the loop: the queue fills up
            received.append(batch)
        return b"".join(received)

    real_get = byte_pump.queue.Queue.get

    def get(queue_, *args, **kwargs):
        waiting.append(queue_.qsize())
        return real_get(queue_, *args, **kwargs)

    byte_pump.queue.Queue.get = get
    try:
        data = asyncio.run(byte_pump.stream_to_thread(work, body(64), limit=64 * CHUNK, too_large="too large"))
    finally:
        byte_pump.queue.Queue.get = real_get
    assert data == b"".join(bytes([index % 251]) * CHUNK for index in range(64))
    assert max(waiting) <= byte_pump.QUEUE_CHUNKS


def test_a_full_queue_wakes_the_loop_as_soon_as_the_thread_takes_a_batch():
    """The loop does not poll: with the thread taking batches as fast as they come,
    the hand-over of many small batches takes no sleeping on either side."""
    count = 4000

    async def fast_body():
        for _ in range(count):
            yield b"x" * 1024

    def work(source):
        return sum(len(batch) for batch in source)

    real_batch = byte_pump.BATCH_BYTES
    byte_pump.BATCH_BYTES = 1024  # a batch per chunk: thousands of hand-overs
    real_sleep = asyncio.sleep
    sleeps: list[float] = []

    async def sleep(delay, *args, **kwargs):
        sleeps.append(delay)
        return await real_sleep(delay, *args, **kwargs)

    asyncio.sleep = sleep
    try:
        total = asyncio.run(byte_pump.stream_to_thread(work, fast_body(), limit=count * 1024, too_large="too large"))
    finally:
        asyncio.sleep = real_sleep
        byte_pump.BATCH_BYTES = real_batch
    assert total == count * 1024
    assert sleeps == []  # waited to be woken, never slept and looked again


def test_a_thread_that_fails_while_the_loop_waits_for_room_ends_the_upload():
    def work(source):
        next(iter(source))
        feed = source.gi_frame.f_locals["self"]  # the generator's _Feed
        wait_for(lambda: feed._waiting, "the loop to fill the queue and wait for room", timeout=10, interval=0.001)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(asyncio.wait_for(
            byte_pump.stream_to_thread(work, body(200), limit=200 * CHUNK, too_large="too large"), timeout=10))


def test_too_many_bytes_stop_the_thread_with_upload_aborted():
    seen: list[BaseException] = []

    def work(source):
        try:
            for _ in source:
                pass
        except UploadAborted as exc:
            seen.append(exc)
            raise

    with pytest.raises(TooLarge):
        asyncio.run(byte_pump.stream_to_thread(work, body(40), limit=20 * CHUNK, too_large="too large"))
    assert len(seen) == 1


def test_uploads_holding_their_threads_leave_the_default_pool_to_short_calls():
    """Twenty uploads stalled in storage (a slow B2) hold twenty storage threads; a
    database call of the same process (asyncio.to_thread) still runs at once."""
    release = threading.Event()

    def stalled(source):
        first = next(source)
        release.wait(10)
        return len(first) + sum(len(batch) for batch in source)

    async def scenario():
        uploads = [asyncio.ensure_future(byte_pump.stream_to_thread(stalled, body(2), limit=2 * CHUNK,
                                                                    too_large="too large")) for _ in range(20)]
        await asyncio.sleep(0.2)  # every upload is in its thread, waiting on storage
        started = time.monotonic()
        try:
            assert await asyncio.wait_for(asyncio.to_thread(lambda: "answered"), timeout=5) == "answered"
            return time.monotonic() - started
        finally:
            release.set()
            assert await asyncio.gather(*uploads) == [2 * CHUNK] * 20

    assert asyncio.run(scenario()) < 1.0
