"""The one way tests wait: for a condition, never for a guessed amount of time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    predicate: Callable[[], T | None],
    timeout: float = 20.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail the test
    with `what` (or the predicate's name) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what or getattr(predicate, "__name__", "the condition")
            raise AssertionError(f"{name} not reached within {timeout} s")
        time.sleep(interval)
