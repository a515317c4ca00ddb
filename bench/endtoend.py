"""End to end, every system on one workload: `python -m bench.endtoend` (issue 16).

N three-step no-op workflows are started by a client in this process and drained by K
worker processes that are already running; the clock runs from the first start to the
last completion, so starting is part of what is measured. Systems, in interleaved rounds
(so a noisy minute hits them all): steadyhand on PostgreSQL and on SQLite, DBOS on
PostgreSQL, Absurd on PostgreSQL, pgqueuer (the plain-queue anchor: the three steps as a chain
of three jobs) on PostgreSQL, and Temporal's dev server on SQLite in its default and its
WAL setting. For each run: workflows/s, CPU milliseconds per workflow of the workers, of the
server (the PostgreSQL backends of the run's database, or the Temporal server process) and
of the client, and the share of the machine left idle. Medians and the spread over rounds
are printed and appended to bench/RESULTS.md with the date and the machine.

A peer that is not installed is left out with a note (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import DEFAULT_PG, Fleet, fresh_schema_url, machine_info, scratch_database, sqlite_url
from .peers import absurd_bench, dbos_bench, pgqueuer_bench, temporal_bench
from .throughput import Monitor, WorkerConfig, worker_main

SYSTEMS = (
    "steadyhand/postgres",
    "steadyhand/sqlite",
    "dbos/postgres",
    "dbos/sqlite",
    "absurd/postgres",
    "pgqueuer/postgres",
    "temporal/sqlite",
    "temporal/sqlite-wal",
)
RESULTS_FILE = Path(__file__).with_name("RESULTS.md")


@dataclass
class Run:
    system: str
    k: int
    n: int
    seconds: float
    cpu_ms: dict[str, float] = field(default_factory=dict)  # worker/server/client per workflow
    idle: float = 0.0  # share of the machine's CPU time left idle during the run

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else 0.0


class CpuMeter:
    """CPU seconds of groups of processes over a run, and the machine's idle share."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        import psutil

        self._psutil = psutil
        self._groups = groups
        self._before = {name: self._times(pids()) for name, pids in groups.items()}
        self._machine = psutil.cpu_times()

    def _times(self, pids: list[int]) -> dict[int, float]:
        times = {}
        for pid in pids:
            with contextlib.suppress(self._psutil.Error):
                t = self._psutil.Process(pid).cpu_times()
                times[pid] = t.user + t.system
        return times

    def stop(self, n: int) -> tuple[dict[str, float], float]:
        """(CPU ms per workflow by group, idle share of the machine) since construction."""
        machine = self._psutil.cpu_times()
        busy: dict[str, float] = {}
        for name, pids in self._groups.items():
            after = self._times(pids())
            before = self._before[name]
            busy[name] = sum(t - before.get(pid, 0.0) for pid, t in after.items()) * 1000 / n
        total = sum(machine) - sum(self._machine)
        idle = (machine.idle - self._machine.idle) / total if total > 0 else 0.0
        return busy, idle


def _pg_backends(db_url: str) -> Callable[[], list[int]]:
    import psycopg

    from .common import database_of, with_database

    dbname = database_of(db_url.split("?", 1)[0])
    admin = with_database(db_url.split("?", 1)[0], "postgres")

    def pids() -> list[int]:
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,)
            ).fetchall()
        return [int(r[0]) for r in rows]

    return pids


@contextlib.contextmanager
def _fleet(target: Callable[..., None], k: int, args: tuple[Any, ...]) -> Iterator[Fleet]:
    fleet = Fleet.spawn(target, k, args)
    try:
        fleet.wait_ready(timeout=120)
        fleet.start()
        time.sleep(0.5)  # let every worker reach its first poll
        yield fleet
    finally:
        fleet.stop(timeout=15)


def _wait(done: Callable[[], tuple[int, float | None]], n: int, fleet: Fleet) -> float:
    deadline = time.monotonic() + 900
    while True:
        count, last = done()
        if count >= n and last is not None:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} of {n} workflows ended in 900 s")
        fleet.check_alive()
        time.sleep(0.1)


def _steadyhand(url: str, k: int, n: int, c: int, server: Callable[[], list[int]]) -> Run:
    from steadyhand import Client, open_store

    from .workload import app

    store = open_store(url)
    config = WorkerConfig(concurrency=c)
    monitor = Monitor(url, time.time())
    try:
        with _fleet(worker_main, k, (url, config.options())) as fleet:
            meter = CpuMeter({"worker": lambda: fleet.pids, "server": server, "client": _me})
            client = Client(app, store)
            first = time.time()
            for i in range(0, n, 1000):  # one transaction per 1,000 starts
                client.start_many([("three", None, None)] * min(1000, n - i))
            last = _wait(lambda: monitor.terminal()[::2], n, fleet)  # type: ignore[arg-type]
            cpu, idle = meter.stop(n)
    finally:
        monitor.close()
        store.close()
    return Run("", k, n, last - first, cpu, idle)


def _me() -> list[int]:
    import os

    return [os.getpid()]


def _dbos(url: str, k: int, n: int, c: int) -> Run:
    from dbos import DBOSClient, EnqueueOptions

    with _fleet(dbos_bench.worker_main, k, (url,)) as fleet:
        client = DBOSClient(system_database_url=url, application_name=dbos_bench.APP_NAME)
        try:
            client.register_queue(
                dbos_bench.QUEUE,
                worker_concurrency=c,
                polling_interval_sec=0.05,
                on_conflict="always_update",
            )
            server = _pg_backends(url) if url.startswith("postgres") else list
            meter = CpuMeter({"worker": lambda: fleet.pids, "server": server, "client": _me})
            options: EnqueueOptions = {
                "queue_name": dbos_bench.QUEUE,
                "workflow_name": dbos_bench.WORKFLOW,
            }
            first = time.time()
            for _ in range(n):
                client.enqueue(options)
            last = _wait(lambda: dbos_bench._finished(client, n)[::2], n, fleet)  # type: ignore[arg-type]
            cpu, idle = meter.stop(n)
        finally:
            client.destroy()
    return Run("", k, n, last - first, cpu, idle)


def _absurd(url: str, k: int, n: int, c: int) -> Run:
    absurd_bench.prepare(url)
    with _fleet(absurd_bench.worker_main, k, (url, c)) as fleet:
        meter = CpuMeter({"worker": lambda: fleet.pids, "server": _pg_backends(url), "client": _me})
        first = time.time()
        absurd_bench.spawn_all(url, n)
        last = _wait(lambda: absurd_bench.finished(url), n, fleet)
        cpu, idle = meter.stop(n)
    return Run("", k, n, last - first, cpu, idle)


def _pgqueuer(url: str, k: int, n: int) -> Run:
    pgqueuer_bench.e2e_prepare(url)
    with _fleet(pgqueuer_bench.e2e_worker_main, k, (url, 10)) as fleet:
        meter = CpuMeter({"worker": lambda: fleet.pids, "server": _pg_backends(url), "client": _me})
        first = time.time()
        pgqueuer_bench.e2e_start(url, n)
        last = _wait(lambda: pgqueuer_bench.e2e_finished(url), n, fleet)
        cpu, idle = meter.stop(n)
    return Run("", k, n, last - first, cpu, idle)


def _temporal(tmp: Path, k: int, n: int, c: int, *, wal: bool) -> Run:
    db_file = tmp / f"temporal-{time.monotonic_ns()}.db"
    with (
        temporal_bench.server(db_file, wal=wal) as (address, pid),
        _fleet(temporal_bench.worker_main, k, (address, c)) as fleet,
    ):
        meter = CpuMeter({"worker": lambda: fleet.pids, "server": lambda: [pid], "client": _me})
        first = time.time()
        last = temporal_bench.start_and_wait(address, n, in_flight=c)
        cpu, idle = meter.stop(n)
    return Run("", k, n, last - first, cpu, idle)


def available(system: str) -> bool:
    name = system.split("/", maxsplit=1)[0]
    return {
        "steadyhand": True,
        "dbos": dbos_bench.installed(),
        "absurd": absurd_bench.installed(),
        "pgqueuer": pgqueuer_bench.installed(),
        "temporal": temporal_bench.installed(),
    }[name]


def run_one(system: str, k: int, n: int, c: int, pg: str, tmp: Path) -> Run:
    """One measured run of `system` with `k` worker processes."""
    name, store = system.split("/")
    if store == "postgres":
        with scratch_database(pg, f"e2e_{name}") as db:
            if name == "steadyhand":
                run = _steadyhand(fresh_schema_url(db), k, n, c, _pg_backends(db))
            elif name == "dbos":
                run = _dbos(db, k, n, c)
            elif name == "pgqueuer":
                run = _pgqueuer(db, k, n)
            else:
                run = _absurd(db, k, n, c)
    elif name == "steadyhand":
        run = _steadyhand(sqlite_url(tmp, f"e2e-{time.monotonic_ns()}.db"), k, n, c, list)
    elif name == "dbos":
        run = _dbos(sqlite_url(tmp, f"dbos-{time.monotonic_ns()}.db"), k, n, c)
    else:
        run = _temporal(tmp, k, n, c, wal=store.endswith("wal"))
    run.system = system
    return run


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ratio(by: dict[tuple[str, int], list[Run]], ours: str, peer: str, k: int) -> float:
    mine = [r.rate for r in by.get((ours, k), [])]
    theirs = [r.rate for r in by.get((peer, k), [])]
    if not mine or not theirs or not _median(theirs):
        return float("nan")
    return _median(mine) / _median(theirs)


TARGETS = (  # (ours, peer, needed ratio), from issue 16
    ("steadyhand/postgres", "dbos/postgres", 10.0),
    ("steadyhand/postgres", "absurd/postgres", 5.0),
    ("steadyhand/postgres", "temporal/sqlite-wal", 30.0),
    ("steadyhand/sqlite", "dbos/sqlite", 10.0),
)


def verdicts(by: dict[tuple[str, int], list[Run]]) -> list[str]:
    """One line per target and K: the measured ratio, and met or missed by what factor."""
    lines = []
    for k in sorted({k for _, k in by}):
        for ours, peer, needed in TARGETS:
            got = _ratio(by, ours, peer, k)
            if not math.isnan(got):  # both were measured
                verdict = "met" if got >= needed else f"missed by {needed / got:.1f}x"
                lines.append(
                    f"- K={k}: {ours} / {peer} = {got:.1f}x (target ≥ {needed:g}x): {verdict}"
                )
    if ("steadyhand/postgres", 1) in by and ("steadyhand/postgres", 2) in by:
        one = [r.rate for r in by[("steadyhand/postgres", 1)]]
        two = [r.rate for r in by[("steadyhand/postgres", 2)]]
        scale = _median(two) / _median(one)
        verdict = "met" if scale >= 1.2 else f"missed by {1.2 / scale:.2f}x"
        lines.append(f"- steadyhand/postgres K=2 / K=1 = {scale:.2f}x (target ≥ 1.2x): {verdict}")
    return lines


def _times(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.1f}x"


def render(runs: list[Run], info: dict[str, str], command: str, missing: list[str]) -> str:
    lines = [
        f"## End to end, every peer - {info['date']}",
        "",
        f"`{command}` · " + ", ".join(f"{key} {value}" for key, value in info.items()),
        "",
        "| system | K | workflows/s median (min-max) | CPU ms/wf worker · server · client "
        "| machine idle | steadyhand/postgres / this | steadyhand/sqlite / this |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    by: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        by.setdefault((run.system, run.k), []).append(run)
    for (system, k), group in sorted(by.items(), key=lambda item: (item[0][1], item[0][0])):
        rates = [r.rate for r in group]
        ratios = " | ".join(
            _times(_ratio(by, ours, system, k))
            for ours in ("steadyhand/postgres", "steadyhand/sqlite")
        )
        cpu = " · ".join(
            f"{_median([r.cpu_ms.get(part, 0.0) for r in group]):.2f}"
            for part in ("worker", "server", "client")
        )
        lines.append(
            f"| {system} | {k} | {_median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) "
            f"| {cpu} | {_median([r.idle for r in group]):.0%} | {ratios} |"
        )
    lines += ["", *verdicts(by), *(f"- not measured: {m}" for m in missing)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.endtoend", description=__doc__)
    p.add_argument("--n", type=int, default=2000, help="workflows per run")
    p.add_argument("--workers", default="1,2", help="worker processes, e.g. 1,2")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default=",".join(SYSTEMS), help="systems: " + ",".join(SYSTEMS))
    p.add_argument("--pg", default=DEFAULT_PG, help="admin URL of the PostgreSQL server")
    p.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = p.parse_args(argv)
    systems = [s for s in args.only.split(",") if s]
    missing = [s for s in systems if not available(s)]
    systems = [s for s in systems if s not in missing]
    ks = [int(x) for x in args.workers.split(",")]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="sh-e2e-") as tmp:
        for round_no in range(args.rounds):
            for k in ks:
                for system in systems:
                    run = run_one(system, k, args.n, args.concurrency, args.pg, Path(tmp))
                    runs.append(run)
                    print(
                        f"round {round_no + 1} K={k} {system}: {run.rate:,.0f} wf/s, cpu "
                        + ", ".join(f"{key} {v:.2f} ms" for key, v in run.cpu_ms.items()),
                        flush=True,
                    )
    command = "python -m bench.endtoend " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(runs, machine_info(args.pg), command.strip(), missing)
    print(text)
    if not args.no_write:
        with RESULTS_FILE.open("a") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
