"""Fault profiles, the seeded fault injector and the fault mechanics of the demo services.

Owns the numbers (FaultProfile, PROFILES), the per-key sold-out decision, the outage
schedule, and how a hang or a lost confirmation is carried out on the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

KINDS = ("flights", "hotels", "cars")


@dataclass(frozen=True)
class FaultProfile:
    """How unreliable a service is; every probability is per request unless noted.

    Latency is lognormal (median, shape sigma) and capped, because real tails are long
    but a demo must not stall. Outages are seeded windows: gap and duration are ranges.
    """

    name: str
    latency_median_ms: float = 0.0
    latency_sigma: float = 0.0
    latency_cap_ms: float = 0.0
    p_transient: float = 0.0
    p_sold_out: float = 0.0
    sold_out_by_kind: tuple[tuple[str, float], ...] = ()
    p_hang: float = 0.0
    hang_s: float = 60.0
    p_lost_confirmation: float = 0.0
    outage_gap_s: tuple[float, float] | None = None
    outage_duration_s: tuple[float, float] = (1.0, 2.0)

    def sold_out_rate(self, kind: str) -> float:
        """Per-key sold-out probability; hotels run fuller than flights or cars."""
        return dict(self.sold_out_by_kind).get(kind, self.p_sold_out)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(name="none"),
    "flaky": FaultProfile(
        name="flaky",
        latency_median_ms=10.0,
        latency_sigma=0.6,
        latency_cap_ms=80.0,
        p_transient=0.08,
        p_sold_out=0.03,
        sold_out_by_kind=(("hotels", 0.05),),
        p_hang=0.01,
        p_lost_confirmation=0.03,
    ),
    "hostile": FaultProfile(
        name="hostile",
        latency_median_ms=20.0,
        latency_sigma=1.0,
        latency_cap_ms=400.0,
        p_transient=0.2,
        p_sold_out=0.06,
        sold_out_by_kind=(("hotels", 0.08),),
        p_hang=0.03,
        p_lost_confirmation=0.06,
        outage_gap_s=(10.0, 15.0),
        outage_duration_s=(1.0, 2.0),
    ),
}

_PROBABILITIES = ("p_transient", "p_sold_out", "p_hang", "p_lost_confirmation")
_DURATIONS = ("latency_median_ms", "latency_sigma", "latency_cap_ms", "hang_s")
_RANGES = ("outage_gap_s", "outage_duration_s")


def profile_from_request(body: Mapping[str, object]) -> FaultProfile:
    """Build a profile from an admin request: a named one, optionally with numbers overridden.

    "custom" starts from "none", so a test can switch on exactly one fault at 100 %.
    Raises ValueError with a message fit for a 400 answer.
    """
    name = body.get("profile")
    if not isinstance(name, str) or (name not in PROFILES and name != "custom"):
        raise ValueError(f"profile must be one of {[*PROFILES, 'custom']}, got {name!r}")
    changes: dict[str, object] = {}
    for field, value in body.items():
        if field == "profile":
            continue
        if field in _PROBABILITIES or field in _DURATIONS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{field} must be a non-negative number, got {value!r}")
            if field in _PROBABILITIES and value > 1:
                raise ValueError(f"{field} must be between 0 and 1, got {value!r}")
            changes[field] = float(value)
        elif field in _RANGES:
            changes[field] = _parse_range(field, value)
        else:
            raise ValueError(f"unknown fault setting {field!r}")
    base = PROFILES["none" if name == "custom" else name]
    if "p_sold_out" in changes:
        changes["sold_out_by_kind"] = ()
    return dataclasses.replace(base, name=name, **changes)  # type: ignore[arg-type]


def _parse_range(field: str, value: object) -> tuple[float, float] | None:
    if value is None and field == "outage_gap_s":
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
        and value[0] <= value[1]
    ):
        return (float(value[0]), float(value[1]))
    raise ValueError(f"{field} must be [low, high] with 0 < low <= high, got {value!r}")


def is_sold_out(seed: int, kind: str, key: str, probability: float) -> bool:
    """Decide sold-out from a hash, not the request stream, so every retry agrees.

    Monotone in probability: raising it only adds sold-out keys, never flips one back.
    """
    digest = hashlib.sha256(f"{seed}:{kind}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < probability


def outage_windows(
    seed: int, kind: str, gap_s: tuple[float, float], duration_s: tuple[float, float]
) -> list[tuple[float, float]]:
    """The first hour of outage windows, as (start, end) seconds after service start.

    Derived from its own seeded stream so the schedule does not depend on request traffic.
    """
    rng = random.Random(f"{seed}:{kind}:outages")
    windows: list[tuple[float, float]] = []
    t = 0.0
    while t < 3600.0:
        start = t + rng.uniform(*gap_s)
        end = start + rng.uniform(*duration_s)
        windows.append((start, end))
        t = end
    return windows


class FaultInjector:
    """The per-service dice: one seeded stream, so a run's faults repeat for a given traffic."""

    def __init__(self, kind: str, seed: int, profile: FaultProfile, started_at: float) -> None:
        self.kind = kind
        self.seed = seed
        self._rng = random.Random(f"{seed}:{kind}")
        self._started_at = started_at
        self.profile = profile
        self._windows: list[tuple[float, float]] = []
        self.set_profile(profile)

    def set_profile(self, profile: FaultProfile) -> None:
        self.profile = profile
        gap = profile.outage_gap_s
        self._windows = (
            []
            if gap is None
            else outage_windows(self.seed, self.kind, gap, profile.outage_duration_s)
        )

    def outage_remaining(self, now: float) -> float:
        """Seconds left in the current outage window, or 0.0 when the service is up."""
        elapsed = now - self._started_at
        for start, end in self._windows:
            if start > elapsed:
                break
            if elapsed < end:
                return end - elapsed
        return 0.0

    def roll(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def latency_s(self) -> float:
        p = self.profile
        if p.latency_median_ms <= 0:
            return 0.0
        ms = p.latency_median_ms * math.exp(p.latency_sigma * self._rng.gauss(0.0, 1.0))
        if p.latency_cap_ms > 0:
            ms = min(ms, p.latency_cap_ms)
        return ms / 1000.0

    def retry_after(self) -> str:
        return str(self._rng.randint(0, 1))

    def sold_out(self, key: str) -> bool:
        return is_sold_out(self.seed, self.kind, key, self.profile.sold_out_rate(self.kind))


async def hang(receive: Receive, stopping: asyncio.Event, limit_s: float) -> str:
    """Sleep until the client gives up ("client"), the server stops ("shutdown"), or limit_s
    passes ("timeout"), so a hung request never outlives the one waiting for it.
    """

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    waits = {
        asyncio.ensure_future(disconnected()): "client",
        asyncio.ensure_future(stopping.wait()): "shutdown",
    }
    try:
        done, _ = await asyncio.wait(waits, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    return next((waits[t] for t in done if not t.cancelled()), "timeout")


class ConfirmationDroppedError(Exception):
    """Raised on purpose after a partial answer, so uvicorn drops the connection."""


class TruncatedJSONResponse(JSONResponse):
    """Announces a longer body than it sends, then aborts: the client never learns the answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        headers.append((b"content-length", str(len(self.body) + 64).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body[:8], "more_body": True})
        raise ConfirmationDroppedError("injected lost confirmation: dropping the connection")


class QuietDroppedConfirmations(logging.Filter):
    """Keeps the expected, injected connection drops from filling the log with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ConfirmationDroppedError):
            record.msg, record.args, record.exc_info = str(record.exc_info[1]), (), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
