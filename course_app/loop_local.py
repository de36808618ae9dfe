"""One value per running event loop: an async Redis client (and what holds one) may
only be used on the loop it was made on. The app runs one loop per process; tests
and scripts may run several, one after the other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopLocal(Generic[T]):
    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self) -> T:
        """The running loop's value, made on first use in that loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._value, self._loop = self._make(), loop
        return self._value
