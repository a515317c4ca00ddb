"""Scale-out: steps/s with 1, 2, 4 and 8 worker processes against one PostgreSQL, the CPU
each part used, and what one step costs the server (commits, rows written, WAL bytes).

The server is a private one (initdb in a temp dir on a free loopback port, see
`steadyhand.chaos.cluster`), so its server-wide counters (WAL position, CPU of its
processes) count this benchmark alone. For each worker count: N three-step workflows of
no-op async agents are started, then the workers are told to go; the clock runs to the last
terminal fact. Per step (one agent call): `xact_commit` and `tup_inserted + tup_updated +
tup_deleted` deltas of pg_stat_database, and the `pg_current_wal_lsn()` delta. CPU: user +
system seconds of the worker processes and of the server's processes over the run.

    python -m bench.scale_out [--workflows 1500] [--workers 1,2,4,8] [--write]

With --write, a section is appended to bench/RESULTS.md (date and machine included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from steadyhand.chaos.cluster import Cluster, primary_and_standby

from .common import quiet_logging, settle_stats
from .throughput import Monitor, WorkerConfig, start_workflows, wait_terminal, workers

TICKS = os.sysconf("SC_CLK_TCK")
_COUNTERS = (
    "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, "
    "pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database WHERE datname = %s"
)


@dataclass(frozen=True)
class Point:
    """One worker count's figures."""

    workers: int
    concurrency: int
    steps: int
    seconds: float
    commits: int
    rows: int
    wal_bytes: int
    worker_cpu_s: float
    server_cpu_s: float
    replay_lag_ms: list[float]  # the standby's replay lag, sampled every 100 ms (if any)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds

    def per_step(self, value: float) -> float:
        return value / self.steps if self.steps else 0.0


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of the given live processes (0 for any that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def server_pids(cluster: Cluster) -> list[int]:
    """The postmaster and every process under it (backends, walwriter, checkpointer…)."""
    root = cluster.primary.pid
    if root is None:
        return []
    found = [root]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            found.append(int(stat.parent.name))
    return found


def counters(admin: str, database: str) -> tuple[int, int, int]:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(_COUNTERS, (database,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


class LagSampler(threading.Thread):
    """Samples the synchronous standby's `replay_lag` (as the primary measures it) every
    100 ms: how stale a read on the standby (`--read-db`) is under this load."""

    def __init__(self, admin: str) -> None:
        super().__init__(daemon=True)
        self.admin = admin
        self.samples: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        query = "SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            while not self.done.wait(0.1):
                row = conn.execute(query).fetchone()
                if row is not None and row[0] is not None:
                    self.samples.append(float(row[0]) * 1000)

    def stop(self) -> list[float]:
        self.done.set()
        self.join(5)
        return self.samples


def measure(cluster: Cluster, count: int, n: int, config: WorkerConfig) -> Point:
    database = f"scale_{count}_{config.concurrency}"
    admin = cluster.primary.conninfo.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    url = f"{admin.rsplit('/', 1)[0]}/{database}?schema=bench"
    since = time.time()
    start_workflows(url, "three_async", n)
    monitor = Monitor(url, since)
    try:
        with workers(url, count, config) as fleet:
            settle_stats()
            before = counters(admin, database)
            cpu_workers, cpu_server = cpu_seconds(fleet.pids), cpu_seconds(server_pids(cluster))
            sampler = LagSampler(admin)
            if cluster.standby.pid is not None:
                sampler.start()
            go = fleet.start()
            last = wait_terminal(monitor, n, fleet, timeout=900.0, poll=0.25)
            lags = sampler.stop() if sampler.is_alive() else []
            cpu_workers = cpu_seconds(fleet.pids) - cpu_workers
            cpu_server = cpu_seconds(server_pids(cluster)) - cpu_server
            reads = monitor.reads
        _, steps, _ = monitor.summary()
    finally:
        monitor.close()
    settle_stats()
    after = counters(admin, database)
    return Point(
        workers=count,
        concurrency=config.concurrency,
        steps=steps,
        seconds=max(last - go, 1e-9),
        commits=after[0] - before[0] - reads - 1,  # minus the monitor's own reads
        rows=after[1] - before[1],
        wal_bytes=after[2] - before[2],
        worker_cpu_s=cpu_workers,
        server_cpu_s=cpu_server,
        replay_lag_ms=lags,
    )


def table(points: list[Point]) -> str:
    head = (
        "| workers x concurrency | steps | steps/s | commits/step | rows/step | WAL bytes/step "
        "| worker CPU ms/step | server CPU ms/step | worker CPU % | server CPU % "
        "| standby replay lag p50 / max ms |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [head]
    for p in points:
        lines.append(
            f"| {p.workers} x {p.concurrency} | {p.steps} | {p.steps_per_s:.0f} "
            f"| {p.per_step(p.commits):.2f} "
            f"| {p.per_step(p.rows):.1f} | {p.per_step(p.wal_bytes):.0f} "
            f"| {1000 * p.per_step(p.worker_cpu_s):.2f} | {1000 * p.per_step(p.server_cpu_s):.2f} "
            f"| {100 * p.worker_cpu_s / p.seconds:.0f} | {100 * p.server_cpu_s / p.seconds:.0f} "
            f"| {_lag(p.replay_lag_ms)} |"
        )
    return "\n".join(lines)


def _lag(samples: list[float]) -> str:
    if not samples:
        return "—"
    return f"{statistics.median(samples):.1f} / {max(samples):.1f}"


def machine(server: str) -> str:
    cpu = platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {server}; load average at the end {load} "
        "(a shared machine: other work ran on the same cores)"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=1500)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--standby", action="store_true", help="Give the server a synchronous standby (HA)."
    )
    parser.add_argument(
        "--unbatched",
        type=int,
        default=300,
        help="Also run 1 worker at concurrency 1 on this many workflows (no group commit: "
        "the per-step cost when calls end one at a time); 0 to skip.",
    )
    parser.add_argument("--write", action="store_true", help="Append to bench/RESULTS.md.")
    args = parser.parse_args(argv)
    quiet_logging()
    counts = [int(c) for c in args.workers.split(",")]
    config = WorkerConfig(concurrency=args.concurrency)
    points: list[Point] = []
    runs = [(count, args.workflows, config) for count in counts]
    if args.unbatched:
        runs.insert(0, (1, args.unbatched, WorkerConfig(concurrency=1, lease_batch=1)))
    topology = "a synchronous standby" if args.standby else "no standby"
    with primary_and_standby(with_standby=args.standby) as cluster:
        with psycopg.connect(cluster.primary.conninfo) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        server = f"PostgreSQL {row[0] if row else '?'} (private, default settings, {topology})"
        for count, n, run_config in runs:
            point = measure(cluster, count, n, run_config)
            print(
                f"{count} x {run_config.concurrency}: {point.steps_per_s:.0f} steps/s", flush=True
            )
            points.append(point)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"\n## Scale-out: worker processes against one PostgreSQL ({stamp})\n\n"
        f"{machine(server)}. `python -m bench.scale_out {' '.join(argv or sys.argv[1:])}`: "
        f"{args.workflows} three-step workflows of no-op async agents per row (the first row: "
        f"{args.unbatched}, one call at a time); a step is one agent call.\n\n"
        f"{table(points)}\n"
    )
    print(text)
    if args.write:
        with (Path(__file__).parent / "RESULTS.md").open("a") as out:
            out.write(text)
    return {"points": [p.__dict__ for p in points]}


if __name__ == "__main__":
    main()
