"""Waiting for what another process, thread or task does: ask again every so often
until the answer is the awaited one, or fail naming what never came (and the last
answer). A fixed sleep instead would be too short on a busy machine and too long
on an idle one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], what: str, *, until: Callable[[T], object] = bool, timeout: float = 30,
             interval: float = 0.05, sleep: Callable[[float], object] = time.sleep,
             describe: Callable[[T], str] = repr) -> T:
    """Call ``probe`` every ``interval`` seconds until ``until(answer)`` holds (by
    default, until the answer is truthy) and return that answer. After ``timeout``
    seconds an AssertionError names ``what`` and the last answer (as ``describe``
    shows it). ``sleep`` waits between tries (a Playwright page's own wait, so that
    its handlers keep running)."""
    deadline = _Deadline(what, timeout, describe)
    while not until(answer := probe()):
        deadline.check(answer)
        sleep(interval)
    return answer


async def wait_for_async(probe: Callable[[], Awaitable[T]], what: str, *, until: Callable[[T], object] = bool,
                         timeout: float = 30, interval: float = 0.05) -> T:
    """``wait_for`` inside an event loop: ``probe`` is awaited and the loop keeps running between tries."""
    deadline = _Deadline(what, timeout, repr)
    while not until(answer := await probe()):
        deadline.check(answer)
        await asyncio.sleep(interval)
    return answer


class _Deadline:
    def __init__(self, what: str, timeout: float, describe: Callable[[object], str]) -> None:
        self.what, self.timeout, self.describe = what, timeout, describe
        self.at = time.monotonic() + timeout

    def check(self, answer: object) -> None:
        if time.monotonic() > self.at:
            raise AssertionError(f"timed out after {self.timeout:g}s waiting for {self.what} "
                                 f"(last answer: {self.describe(answer)[:2000]})")
