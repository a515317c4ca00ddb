"""Disruptions of one worker rather than of the store: a wrong clock, a pause, a partition.

- `skew`: an extra worker runs beside the fleet with its wall clock 40 s fast or slow
  (libfaketime); leases and due times are on the store's clock, so it must neither steal
  live calls nor run work early.
- `pause`: a fleet worker is SIGSTOPped for longer than its lease (a long GC pause, a frozen
  VM), then continued: it must notice it lost its leases and abandon its calls.
- `partition` (PostgreSQL): an extra worker talks to the server through a proxy that stalls
  all its traffic for longer than the lease, then heals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from steadyhand.chaos.disruptions import Disruption
from steadyhand.chaos.proxy import StallingProxy
from steadyhand.demo.fleet import Fleet

LIBFAKETIME = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
)
SKEWS = {"skew_fast": "+40s", "skew_slow": "-40s"}
WORKER_FAULTS = ("skew_fast", "skew_slow", "pause", "partition")


def libfaketime() -> str | None:
    """Where Debian's `faketime` package put the (multi-threaded) preload library."""
    return next((path for path in LIBFAKETIME if Path(path).exists()), None)


def faketime_env(offset: str) -> dict[str, str] | None:
    """Environment that shifts a process's clocks by `offset` ("+40s"), or None if missing."""
    lib = libfaketime()
    if lib is None:
        return None
    return {"LD_PRELOAD": lib, "FAKETIME": offset, "FAKETIME_NO_CACHE": "1"}


def _extra_worker(
    fleet: Fleet, name: str, db_url: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    command = list(fleet.command)
    command[command.index("--db") + 1] = db_url
    log = fleet.log_dir / f"worker-{name}.log"
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it is still finishing calls after a few seconds (a crash
    the fleet recovers from like any other)."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def skew_worker(fleet: Fleet, db_url: str, kind: str, seconds: float, at: float) -> Disruption:
    """Run one extra worker with a shifted clock beside the fleet for `seconds`."""
    offset = SKEWS[kind]
    env = faketime_env(offset)
    if env is None:
        return Disruption(kind, at, 0.0, "skipped: libfaketime is not installed (apt faketime)")
    started = time.monotonic()
    process = _extra_worker(fleet, f"{kind}-{int(at)}", db_url, {**fleet.env, **env})
    time.sleep(seconds)
    _stop(process)
    return Disruption(
        kind, at, time.monotonic() - started,
        f"a worker with its clock {offset} ran beside the fleet for {seconds:.0f}s",
    )  # fmt: skip


def pause_worker(fleet: Fleet, seconds: float, at: float) -> Disruption:
    """SIGSTOP the oldest fleet worker for `seconds` (longer than its lease), then SIGCONT."""
    started = time.monotonic()
    alive = list(fleet.alive)
    if not alive:
        return Disruption("pause", at, 0.0, "skipped: no worker alive")
    victim = alive[0]
    pid = victim.process.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
    return Disruption(
        "pause", at, time.monotonic() - started,
        f"worker {victim.number} (pid {pid}) stopped for {seconds:.0f}s, then continued",
    )  # fmt: skip


def partition_worker(fleet: Fleet, db_url: str, seconds: float, at: float) -> Disruption:
    """An extra worker whose PostgreSQL traffic a proxy stalls for `seconds`, then heals."""
    started = time.monotonic()
    proxy, routed = StallingProxy.for_url(db_url)
    try:
        process = _extra_worker(fleet, f"partition-{int(at)}", routed, dict(fleet.env))
        time.sleep(min(seconds, 5.0))  # let it take some work
        proxy.stall()
        time.sleep(seconds)
        proxy.heal()
        time.sleep(min(seconds, 5.0))  # let it find out and carry on
        _stop(process)
    finally:
        proxy.close()
    return Disruption(
        "partition", at, time.monotonic() - started,
        f"a worker's PostgreSQL traffic stalled for {seconds:.0f}s by a proxy, then healed",
    )  # fmt: skip


def run_worker_fault(fleet: Fleet, db_url: str, kind: str, lease: float, at: float) -> Disruption:
    """Run the worker disruption `kind`, sized to outlast the lease."""
    seconds = 3 * lease + 2
    if kind in SKEWS:
        return skew_worker(fleet, db_url, kind, max(10.0, seconds), at)
    if kind == "pause":
        return pause_worker(fleet, seconds, at)
    if kind == "partition":
        return partition_worker(fleet, db_url, seconds, at)
    raise ValueError(f"unknown worker disruption {kind!r}")
