"""What code-first costs (issue 14): a 3-step code-first workflow against the same saga
declared with `Step`s, end to end with real worker processes, and decision time as one
workflow's history grows to 10, 100 and 1,000 steps.

```sh
.venv/bin/python -m bench.codefirst                 # both backends, appends to RESULTS.md
.venv/bin/python -m bench.codefirst --quick --no-write
```

**End to end.** N `three` (saga: `Step("a", noop)`, `b`, `c`) and N `three_code` (the same
three steps awaited in an `async def`) are run the way `bench.run`'s throughput section runs
them (start N, then K worker processes at concurrency C, clock from the go signal to the last
terminal fact), alternately, `--repeat` times each; the ratio is saga workflows/s over
code-first workflows/s of the medians (1.0 = as fast; the issue's target is <= 1.2).

**Decision time.** One workflow of n no-op steps (`chain_code<n>`, one step after another, and
`chain_saga<n>`) run by one worker; `decide_ms` of its `supervisor_ran` breadcrumbs (the
time the worker spent deciding, in the transaction that locked the workflow). Reported: the
median over the last tenth of its decisions (a history of about n steps) and the whole run's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .common import (
    DEFAULT_PG,
    fresh_schema_url,
    machine_info,
    pg_reachable,
    scratch_database,
    spread,
    sqlite_url,
)
from .throughput import Monitor, RunResult, WorkerConfig, run_throughput
from .workload import CHAIN_LENGTHS

RESULTS_FILE = Path(__file__).with_name("RESULTS.md")
TARGET = 1.2


def _url(backend: str, tmp: Path, db: str | None, name: str) -> str:
    if backend == "postgres":
        assert db is not None
        return fresh_schema_url(db)
    return sqlite_url(tmp, f"{name}-{time.monotonic_ns()}.db")


def end_to_end(
    backend: str, tmp: Path, db: str | None, *, n: int, k: int, repeat: int, config: WorkerConfig
) -> dict[str, list[RunResult]]:
    """Saga and code-first alternately, `repeat` times each, on fresh stores."""
    runs: dict[str, list[RunResult]] = {"three": [], "three_code": []}
    for i in range(repeat):
        order = ("three", "three_code") if i % 2 == 0 else ("three_code", "three")
        for workflow in order:
            url = _url(backend, tmp, db, workflow)
            run = run_throughput(url, n=n, workers_count=k, workflow=workflow, config=config)
            if run.states.get("completed") != n:
                raise SystemExit(f"{workflow} on {backend}: not all completed: {run.states}")
            runs[workflow].append(run)
            print(f"  {backend} {workflow}: {run.workflows_per_s:,.0f} workflows/s", flush=True)
    return runs


def decisions(url: str, workflow: str) -> list[float]:
    """Run one `workflow` with one worker on `url`; its breadcrumbs' decide_ms, in order."""
    run = run_throughput(
        url, n=1, workers_count=1, workflow=workflow, config=WorkerConfig(), count_commits=False
    )
    if run.states.get("completed") != 1:
        raise SystemExit(f"{workflow} on {url} did not complete: {run.states}")
    monitor = Monitor(url)
    try:
        rows = monitor.query("SELECT data FROM facts WHERE kind = 'supervisor_ran' ORDER BY seq")
    finally:
        monitor.close()
    return [float(json.loads(r[0]).get("decide_ms", 0.0)) for r in rows]


def cpu_per_workflow(url: str, workflow: str, n: int, config: WorkerConfig) -> float:
    """CPU ms per workflow of this process running `n` workflows with an in-process worker.

    CPU time, not wall time: on a shared machine it moves far less with the neighbours' load.
    The process only waits besides the worker (a count every 50 ms), so its CPU is the
    worker's: leasing, calling, recording, deciding.
    """
    from steadyhand import Client, Worker, WorkerOptions, open_store

    from .workload import app

    store = open_store(url)
    try:
        client = Client(app, store)
        for _ in range(n):
            client.start(workflow, None)
        worker = Worker(app, store, WorkerOptions(**config.options()))
        monitor = Monitor(url)
        cpu = time.process_time()
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            while monitor.terminal()[0] < n:
                time.sleep(0.05)
            cpu = time.process_time() - cpu
        finally:
            worker.stop()
            thread.join()
            monitor.close()
    finally:
        store.close()
    return cpu * 1000 / n


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _tail(values: list[float]) -> float:
    return statistics.median(values[-max(1, len(values) // 10) :])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.codefirst", description=__doc__)
    p.add_argument("--pg", default=DEFAULT_PG, help="admin URL of the PostgreSQL server")
    p.add_argument("--backends", default="postgres,sqlite")
    p.add_argument("-n", type=int, default=2000, help="workflows per end-to-end run")
    p.add_argument("-k", type=int, default=2, help="worker processes")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="n=300, repeat 1")
    p.add_argument(
        "--steps",
        default=",".join(str(n) for n in CHAIN_LENGTHS),
        help="chain lengths for decision time (of " + ",".join(map(str, CHAIN_LENGTHS)) + ")",
    )
    p.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.repeat = 300, 1
    args.steps = [int(n) for n in str(args.steps).split(",") if n.strip()]
    if set(args.steps) - set(CHAIN_LENGTHS):
        p.error(f"--steps: choose among {', '.join(map(str, CHAIN_LENGTHS))}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgres" in backends and not pg_reachable(args.pg):
        print(f"PostgreSQL at {args.pg} is not reachable: SQLite only")
        backends = [b for b in backends if b != "postgres"]
    config = WorkerConfig(concurrency=args.concurrency)
    lines = [
        "| backend | saga workflows/s | code-first workflows/s | ratio saga/code-first |",
        "| --- | ---: | ---: | ---: |",
    ]
    cpu_lines = [
        "| backend | saga CPU ms/workflow | code-first CPU ms/workflow | ratio code-first/saga |",
        "| --- | ---: | ---: | ---: |",
    ]
    decide = [
        "| backend | steps | code-first decide ms (at n / whole run) | "
        "saga decide ms (at n / whole run) | decisions code-first / saga |",
        "| --- | ---: | --- | --- | --- |",
    ]
    verdicts = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shbench-cf-") as tmpdir:
        tmp = Path(tmpdir)
        for backend in backends:
            db_cm: Any = scratch_database(args.pg, "shbenchcf") if backend == "postgres" else None
            db = db_cm.__enter__() if db_cm is not None else None
            try:
                runs = end_to_end(
                    backend, tmp, db, n=args.n, k=args.k, repeat=args.repeat, config=config
                )
                saga = [r.workflows_per_s for r in runs["three"]]
                code = [r.workflows_per_s for r in runs["three_code"]]
                ratio = statistics.median(saga) / statistics.median(code)
                lines.append(f"| {backend} | {spread(saga)} | {spread(code)} | **{ratio:.2f}** |")
                ok = "met" if ratio <= TARGET else "NOT met"
                verdicts.append(f"{backend}: code-first within {TARGET}x of the saga: {ok}")
                cpu: dict[str, list[float]] = {"three": [], "three_code": []}
                for i in range(args.repeat):
                    for workflow in ("three", "three_code")[:: 1 if i % 2 == 0 else -1]:
                        url = _url(backend, tmp, db, f"cpu-{workflow}")
                        cpu[workflow].append(cpu_per_workflow(url, workflow, args.n, config))
                cpu_ratio = statistics.median(cpu["three_code"]) / statistics.median(cpu["three"])
                cpu_lines.append(
                    f"| {backend} | {_ms(cpu['three'])} | {_ms(cpu['three_code'])} | "
                    f"**{cpu_ratio:.2f}** |"
                )
                print(f"{backend}: CPU per workflow code-first/saga = {cpu_ratio:.2f}", flush=True)
                print(f"{backend}: saga/code-first = {ratio:.2f}", flush=True)
                for steps in args.steps:
                    cf = decisions(_url(backend, tmp, db, "chain"), f"chain_code{steps}")
                    sg = decisions(_url(backend, tmp, db, "chain"), f"chain_saga{steps}")
                    cf_ms = f"{_tail(cf):.2f} / {statistics.median(cf):.2f}"
                    sg_ms = f"{_tail(sg):.2f} / {statistics.median(sg):.2f}"
                    decide.append(
                        f"| {backend} | {steps:,} | {cf_ms} | {sg_ms} | {len(cf)} / {len(sg)} |"
                    )
                    print(f"  {backend} {steps} steps: code-first {_tail(cf):.2f} ms, "
                          f"saga {_tail(sg):.2f} ms at n", flush=True)  # fmt: skip
            finally:
                if db_cm is not None:
                    db_cm.__exit__(None, None, None)
    info = machine_info(args.pg if "postgres" in backends else None)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m bench.codefirst", *given])
    text = "\n".join(
        [
            f"## Code-first against sagas - {info['date']}",
            "",
            f"`{command}` · n {args.n}, K {args.k}, C {args.concurrency}, repeat {args.repeat}"
            f" · cores {info['cores']}, load {info['load']}, postgresql "
            f"{info.get('postgresql', '-')}, sqlite {info['sqlite']} · "
            f"{time.monotonic() - began:.0f} s",
            "",
            "End to end, 3 no-op steps, median (min-max) of the repeats:",
            "",
            *lines,
            "",
            "CPU per workflow, one in-process worker (same N, median (min-max) of the repeats):",
            "",
            *cpu_lines,
            "",
            "Decision time as one workflow's history grows (one step after another):",
            "",
            *decide,
            "",
            *(f"- {v}" for v in verdicts),
            "",
        ]
    )
    print(text)
    if not args.no_write:
        with RESULTS_FILE.open("a") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
