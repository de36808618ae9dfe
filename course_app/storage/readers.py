"""A read-only, seekable file of known size: subclasses fill ``readinto`` from
their own source (views of a B2 part, ranges of a stored object)."""

from __future__ import annotations

import io


class SizedReader(io.RawIOBase):
    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._position = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position
