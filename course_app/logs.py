"""Logs: plain text by default; with ``COURSE_LOG_FORMAT=json`` (the default in
production) one JSON object per line, in the shape Reflex's own JSON mode writes
(``timestamp``, ``level``, ``logger``, ``message``), plus the request id of the
request being served and the record's structured fields. `course-app serve` also
turns on Reflex's JSON mode then, so every line of every process is JSON."""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys

from course_app.settings import Settings

# The id of the request this task serves (set by api/request_log.py).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

FIELDS_ATTRIBUTE = "fields"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "timestamp": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        current = request_id.get()
        if current:
            payload["request_id"] = current
        payload.update(getattr(record, FIELDS_ATTRIBUTE, None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record comes (it may be replaced)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(settings: Settings, *, logger_name: str = "course_app") -> None:
    """JSON lines on stdout for the app's loggers when the settings ask for them."""
    if not settings.json_logs:
        return
    logger = logging.getLogger(logger_name)
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = not logger_name
