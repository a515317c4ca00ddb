"""The SQLite store's clock: the host's kernel boot clock, anchored once per boot.

Every process that opens a SQLite store in WAL mode runs on the same host, so they share
the kernel's boot clock (`/proc/uptime`). It is never stepped (NTP, a VM resume or an
operator setting the date move only the wall clock) and per-process time fakers such as
libfaketime do not touch it. The wall time of the boot is recorded in the store the first
time a process of this boot needs it (`store_clock`), and every process turns the boot
clock into epoch seconds with that one anchor: their wall clocks may then disagree, the
store's time does not. Without `/proc/uptime` (not Linux) the wall clock is used, which
every process on one host shares.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

UPTIME = Path("/proc/uptime")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
TICK_WAIT = 0.05  # /proc/uptime moves in 10 ms steps; wait at most this for the next one
CALIBRATE_EVERY = 60.0  # seconds between calibrations of this process's monotonic clock
CALIBRATION_SAMPLES = 5

_calibration: tuple[float, float] | None = None  # (offset to boot clock, monotonic when made)
_calibrating = threading.Lock()


def boot_id() -> str | None:
    """This boot's id, or None where the kernel does not say (then: the wall clock)."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def uptime() -> float:
    """Seconds since boot, read at the moment `/proc/uptime` ticks (so exact to well under
    a millisecond although the file counts hundredths)."""
    return at_tick()[0]


def at_tick() -> tuple[float, float]:
    """(seconds since boot, a wall clock reading taken just before the tick): read as
    `/proc/uptime` ticks, the wall clock read before the last read that still showed the
    old value, so `wall - since_boot` can only be early, never late."""
    wall = time.time()
    first = _read_uptime()
    deadline = time.monotonic() + TICK_WAIT
    while time.monotonic() < deadline:
        before = time.time()
        value = _read_uptime()
        if value != first:
            return value, wall
        wall = before
    return first, wall


def _read_uptime() -> float:
    with UPTIME.open("rb") as f:
        return float(f.read().split()[0])


def epoch_at_boot(samples: int = 3) -> float:
    """This process's wall clock at boot time, from the uptime ticks: each sample can only
    be early (see `at_tick`), so the largest is the best. Never later than the truth, so
    the store's time never runs ahead of a correct wall clock."""
    return max(wall - since_boot for since_boot, wall in (at_tick() for _ in range(samples)))


def since_boot() -> float:
    """Seconds since boot, exact to microseconds and cheap: this process's monotonic clock
    (never stepped; a time faker only shifts it) plus its offset to the boot clock,
    calibrated once a minute on `/proc/uptime` ticks. Every error of a calibration sample
    makes it late, so the best of a few is kept."""
    global _calibration
    now = time.monotonic()
    found = _calibration
    if found is None or now - found[1] > CALIBRATE_EVERY:
        with _calibrating:
            found = _calibration
            if found is None or now - found[1] > CALIBRATE_EVERY:
                offset = max(_tick_offset() for _ in range(CALIBRATION_SAMPLES))
                found = _calibration = (offset, time.monotonic())
    return time.monotonic() + found[0]


def _tick_offset() -> float:
    """Boot clock minus monotonic clock, read as `/proc/uptime` ticks (late, never early)."""
    first = _read_uptime()
    deadline = time.monotonic() + TICK_WAIT
    while True:
        value = _read_uptime()
        now = time.monotonic()
        if value != first or now > deadline:
            return value - now
