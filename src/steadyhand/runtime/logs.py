"""Logging set-up for the command line: readable lines for people, JSON lines for machines.
Both formats pass every line through `core.redact`, so no password reaches a log.

Every record may carry `workflow_id`, `step` and `attempt` (passed as `extra`); both
formats print them, so one grep finds everything that happened to one workflow.
"""

from __future__ import annotations

import logging
import sys
import time

from steadyhand.core import jsoncodec
from steadyhand.core.redact import redact

CONTEXT_FIELDS = ("workflow_id", "step", "attempt", "outcome")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the workflow context when a record has it."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return jsoncodec.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        context = [
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        ]
        return f"{line} [{' '.join(context)}]" if context else line


def configure(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
