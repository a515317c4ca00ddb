"""Time and state in words shared by every operator face (command line and dashboard):
durations and "since" moments as people type them, times as people read them, and the
style of each workflow state."""

from __future__ import annotations

import datetime as dt
import re
import time

from steadyhand.core.errors import InputError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")


_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d`, `1w` -> seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise InputError(f"{text!r} is not a duration; write e.g. 90s, 15m, 2h or 1d")
    return float(match.group(1)) * _UNIT[match.group(2)]


def parse_since(text: str, now: float) -> float:
    """A duration ago (`2h`), an ISO date or time (`2024-05-01T02:00`), or epoch seconds
    (a bare number above 10^9; smaller bare numbers are seconds ago)."""
    try:
        value = float(text)
        if value > 1e9:
            return value
    except ValueError:
        pass
    try:
        return now - parse_duration(text)
    except InputError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--since {text!r}: write a duration ago (30m, 2h, 1d), an ISO time "
            "(2024-05-01T02:00, local unless it has an offset) or epoch seconds"
        ) from None
    return parsed.timestamp()


STATE_STYLE = {
    "completed": "green",
    "compensated": "yellow",
    "failed": "bold red",
    "compensating": "magenta",
    "running": "cyan",
    "waiting": "blue",
    "stuck": "bold red",
}


def when(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
