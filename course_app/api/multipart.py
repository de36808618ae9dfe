"""Streaming multipart/form-data: parse the request body as it arrives, so a
multi-gigabyte file part is never held in memory or spooled to a temp file."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from course_app.errors import InvalidInput

MAX_FIELD_BYTES = 16 * 1024
MAX_FIELDS = 20


@dataclass
class Field:
    name: str
    value: str


@dataclass
class FileStart:
    name: str
    filename: str
    content_type: str


@dataclass
class FileData:
    data: bytes


@dataclass
class FileEnd:
    pass


Event = Field | FileStart | FileData | FileEnd


class _Collector:
    """Turns python-multipart's callbacks into a queue of events."""

    def __init__(self) -> None:
        self.events: deque[Event] = deque()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._field: tuple[str, bytearray] | None = None
        self._in_file = False
        self._fields = 0

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._append("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._append("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _append(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            filename = options[b"filename"].decode("utf-8", "replace")
            content_type = self._headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
            self._in_file = True
            self.events.append(FileStart(name=name, filename=filename, content_type=content_type))
        else:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise InvalidInput("The form has too many fields.")
            self._field = (name, bytearray())

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.events.append(FileData(bytes(data[start:end])))
        elif self._field is not None:
            self._field[1].extend(data[start:end])
            if len(self._field[1]) > MAX_FIELD_BYTES:
                raise InvalidInput(f"The form field '{self._field[0]}' is too long.")

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self.events.append(FileEnd())
        elif self._field is not None:
            name, value = self._field
            self._field = None
            self.events.append(Field(name=name, value=value.decode("utf-8", "replace")))


async def multipart_events(content_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Events in the order the parts arrive; file data in the chunks it came in."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput("Send the upload as multipart/form-data.")
    collector = _Collector()
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in body:
            parser.write(chunk)
            while collector.events:
                yield collector.events.popleft()
        parser.finalize()
    except MultipartParseError:
        raise InvalidInput("The upload form is malformed.") from None
    while collector.events:
        yield collector.events.popleft()
