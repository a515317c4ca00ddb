"""Entry point of the benchmark suite: `python -m bench.run [--quick] [--only …]`.

Every figure comes from this one run on one PostgreSQL server; the table is printed and
appended, with the machine and the command, to bench/RESULTS.md. See bench/README.md for
what each section measures and how.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import latency, limit, memory, profiling, scale
from .common import (
    DEFAULT_PG,
    Results,
    Row,
    fresh_schema_url,
    machine_info,
    pg_reachable,
    scratch_database,
    spread,
    sqlite_url,
)
from .throughput import RunResult, WorkerConfig, run_throughput

SECTIONS = ("limit", "throughput", "peers", "latency", "scale", "memory", "failure", "profile")
RESULTS_FILE = Path(__file__).with_name("RESULTS.md")


@dataclass
class Context:
    args: argparse.Namespace
    results: Results
    tmp: Path
    pg: str | None  # admin URL of the server, None when PostgreSQL is not used
    backends: list[str]
    workers: list[int]
    config: WorkerConfig
    sh_runs: dict[tuple[str, int], list[RunResult]] = field(default_factory=dict)
    peer_rates: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    raw_limit: dict[int, float] = field(default_factory=dict)
    profile_lines: list[str] = field(default_factory=list)

    def store_url(self, backend: str, db_url: str | None, name: str) -> str:
        if backend == "postgres":
            assert db_url is not None
            return fresh_schema_url(db_url)
        return sqlite_url(self.tmp, f"{name}-{time.monotonic_ns()}.db")


# -- steadyhand ---------------------------------------------------------------------------------
def sh_throughput(
    ctx: Context,
    backend: str,
    k: int,
    *,
    n: int,
    workflow: str = "three",
    on_started: Callable[[Any], None] | None = None,
) -> RunResult:
    if backend == "postgres":
        assert ctx.pg is not None
        with scratch_database(ctx.pg, "shbench") as db:
            url = fresh_schema_url(db)
            return run_throughput(
                url,
                n=n,
                workers_count=k,
                workflow=workflow,
                config=ctx.config,
                on_started=on_started,
            )
    url = ctx.store_url(backend, None, f"throughput-{k}")
    return run_throughput(url, n=n, workers_count=k, workflow=workflow, config=ctx.config)


def section_limit(ctx: Context) -> None:
    if ctx.pg is None:
        return
    clients = sorted({*ctx.workers, 16})
    with scratch_database(ctx.pg, "shlimit") as db:
        for c in clients:
            rate, tool = limit.commits_per_second(db, c, seconds=3 if ctx.args.quick else 4)
            ctx.raw_limit[c] = rate
            ctx.results.add(
                Row(
                    "limit",
                    "raw INSERT",
                    "postgres",
                    str(c),
                    "commits/s",
                    rate,
                    "/s",
                    f"{tool}, {c} clients",
                )
            )


def section_throughput(ctx: Context) -> None:
    n = ctx.args.n
    for backend in ctx.backends:
        for k in ctx.workers:
            run = sh_throughput(ctx, backend, k, n=n)
            ctx.sh_runs.setdefault((backend, k), []).append(run)
            _report_sh(ctx, run, "throughput")


def _report_sh(ctx: Context, run: RunResult, section: str) -> None:
    k = str(run.workers)
    ok = run.states.get("completed", 0) == run.n
    note = f"N={run.n}, C={ctx.config.concurrency}" + ("" if ok else f", states {run.states}")
    ctx.results.add(
        Row(section, "steadyhand", run.backend, k, "workflows/s", run.workflows_per_s, "/s", note),
        Row(section, "steadyhand", run.backend, k, "steps/s", run.calls_per_s, "/s"),
        Row(
            section,
            "steadyhand",
            run.backend,
            k,
            "starts/s",
            run.starts_per_s,
            "/s",
            "client.start, 4 threads, before the clock",
        ),
    )
    if run.commits_per_call is not None:
        ctx.results.add(
            Row(
                section,
                "steadyhand",
                run.backend,
                k,
                "commits/step",
                run.commits_per_call,
                "",
                "xact_commit delta / steps",
            )
        )


def section_peers(ctx: Context) -> None:
    from .peers import dbos_bench, pgqueuer_bench

    n = ctx.args.peer_n
    if not dbos_bench.installed():
        ctx.results.note("DBOS not installed (pip install '.[bench]'): DBOS columns skipped")
    else:
        for backend in ctx.backends:
            for k in ctx.workers:
                rate = _dbos_once(ctx, backend, k, n)
                ctx.peer_rates.setdefault(("dbos", backend, k), []).append(rate)
    if ctx.pg is None:
        return
    if not pgqueuer_bench.installed():
        ctx.results.note("pgqueuer not installed (pip install '.[bench]'): anchor skipped")
        return
    for k in ctx.workers:
        rate = _pgq_once(ctx, k, ctx.args.n)
        ctx.peer_rates.setdefault(("pgqueuer", "postgres", k), []).append(rate)


def _dbos_once(ctx: Context, backend: str, k: int, n: int, section: str = "peers") -> float:
    from .peers import dbos_bench

    c = ctx.config.concurrency
    if backend == "postgres":
        assert ctx.pg is not None
        with scratch_database(ctx.pg, "dbosbench") as db:
            res = dbos_bench.run(db, n=n, workers_count=k, concurrency=c)
    else:
        res = dbos_bench.run(
            sqlite_url(ctx.tmp, f"dbos-{time.monotonic_ns()}.sqlite"),
            n=n,
            workers_count=k,
            concurrency=c,
        )
    note = f"N={n}, worker_concurrency={c}, poll 0.05 s"
    ctx.results.add(
        Row(section, "DBOS", backend, str(k), "workflows/s", res.workflows_per_s, "/s", note),
        Row(section, "DBOS", backend, str(k), "steps/s", res.steps_per_s, "/s"),
    )
    if res.commits is not None:
        ctx.results.add(
            Row(
                section,
                "DBOS",
                backend,
                str(k),
                "commits/workflow",
                res.commits / n,
                "",
                "incl. queue polling",
            )
        )
    return res.workflows_per_s


def _pgq_once(ctx: Context, k: int, n: int, section: str = "peers") -> float:
    from .peers import pgqueuer_bench

    assert ctx.pg is not None
    with scratch_database(ctx.pg, "pgqbench") as db:
        res = pgqueuer_bench.run(db, n=n, workers_count=k)
    ctx.results.add(
        Row(
            section,
            "pgqueuer",
            "postgres",
            str(k),
            "jobs/s",
            res.jobs_per_s,
            "/s",
            f"N={n}, batch 10, durable tables",
        )
    )
    if res.commits is not None:
        ctx.results.add(
            Row(section, "pgqueuer", "postgres", str(k), "commits/job", res.commits / n, "")
        )
    return res.jobs_per_s


def section_latency(ctx: Context) -> None:
    runs = ctx.args.latency_runs
    for backend in ctx.backends:
        with _db_for(ctx, backend, "shlat") as db:
            one = latency.measure(ctx.store_url(backend, db, "lat1"), "one", runs)
            three = latency.measure(ctx.store_url(backend, db, "lat3"), "three", max(50, runs // 2))
        per_step = (statistics.median(three.ms) - statistics.median(one.ms)) / 2
        wake = "LISTEN/NOTIFY" if backend == "postgres" else "wake-up channel"
        ctx.results.add(
            Row(
                "latency",
                "steadyhand",
                backend,
                "1",
                "1-step p50",
                one.p50,
                "ms",
                f"{runs} runs, {wake}",
            ),
            Row("latency", "steadyhand", backend, "1", "1-step p99", one.p99, "ms"),
            Row(
                "latency",
                "steadyhand",
                backend,
                "1",
                "3-step p50",
                three.p50,
                "ms",
                f"{three.runs} runs",
            ),
            Row(
                "latency",
                "steadyhand",
                backend,
                "1",
                "added per step p50",
                per_step,
                "ms",
                "(p50 3-step - p50 1-step) / 2",
            ),
        )


def section_scale(ctx: Context) -> None:
    small, large = 10_000, ctx.args.scale_facts
    for backend in ctx.backends:
        with _db_for(ctx, backend, "shscale") as db:
            a = ctx.store_url(backend, db, "scale-small")
            b = ctx.store_url(backend, db, "scale-large")
            s, big = scale.measure(
                a,
                b,
                small=small,
                large=large,
                m=ctx.args.scale_m,
                rounds=ctx.args.scale_rounds,
                config=ctx.config,
            )
        for sample in (s, big):
            label = f"{sample.facts:,} facts"
            ctx.results.add(
                Row(
                    "scale",
                    "steadyhand",
                    backend,
                    "1",
                    f"step cost @ {label}",
                    sample.step,
                    "ms",
                    f"median of {len(sample.step_ms)}: "
                    + ", ".join(f"{x:.2f}" for x in sample.step_ms),
                ),
                Row(
                    "scale",
                    "steadyhand",
                    backend,
                    "1",
                    f"decide p50 @ {label}",
                    sample.decide,
                    "ms",
                ),
            )
        ctx.results.add(
            Row(
                "scale",
                "steadyhand",
                backend,
                "1",
                "step cost ratio",
                big.step / s.step,
                "x",
                f"{big.facts:,} vs {s.facts:,} facts",
            ),
            Row("scale", "steadyhand", backend, "1", "decide ratio", big.decide / s.decide, "x"),
        )


def section_memory(ctx: Context) -> None:
    w = ctx.args.in_flight
    for backend in ctx.backends:
        with _db_for(ctx, backend, "shmem") as db:
            res = memory.measure(ctx.store_url(backend, db, "memory"), w)
        ctx.results.add(
            Row(
                "memory",
                "steadyhand",
                backend,
                "1",
                "worker RSS",
                res.rss_mb,
                "MB",
                f"{w:,} in flight (async agent); idle {res.idle_rss_mb:.0f} MB; "
                f"{res.kb_per_workflow:.1f} kB each; leased in {res.ramp_seconds:.1f} s",
            ),
        )


def section_failure(ctx: Context) -> None:
    k = 2 if 2 in ctx.workers else ctx.workers[-1]
    n = max(100, ctx.args.n // 2)
    for backend in ctx.backends:
        base = sh_throughput(ctx, backend, k, n=n)
        flaky = sh_throughput(ctx, backend, k, n=n, workflow="flaky3")
        ok = flaky.states.get("completed", 0)
        ctx.results.add(
            Row(
                "failure",
                "steadyhand",
                backend,
                str(k),
                "workflows/s, no failures",
                base.workflows_per_s,
                "/s",
                f"N={n}",
            ),
            Row(
                "failure",
                "steadyhand",
                backend,
                str(k),
                "workflows/s, 20% transient",
                flaky.workflows_per_s,
                "/s",
                f"{ok}/{n} completed, backoff 0",
            ),
            Row(
                "failure",
                "steadyhand",
                backend,
                str(k),
                "attempts per step",
                flaky.calls / (3 * n),
                "",
                "expected 1/(1-0.2) = 1.25",
            ),
            Row(
                "failure",
                "steadyhand",
                backend,
                str(k),
                "cost of retries",
                base.workflows_per_s / flaky.workflows_per_s if flaky.workflows_per_s else None,
                "x",
                "time with failures / time without",
            ),
        )


def section_profile(ctx: Context) -> None:
    """Profile one worker during a PostgreSQL run: py-spy + CPU split + server wait events."""
    if ctx.pg is None:
        return
    import psutil

    out = ctx.tmp / "profile-gil.txt"
    state: dict[str, Any] = {}

    def hook(fleet: Any) -> None:
        def sample() -> None:
            time.sleep(1.0)
            pid = fleet.pids[0]
            # CPU split and wait events first, undisturbed; then py-spy (which costs CPU).
            state.update(_cpu_and_waits(psutil, pid, ctx.pg or "", 4.0))
            if profiling.available():
                profiling.start(pid, 4, out, gil=True).wait(30)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        state["thread"] = thread

    # Long enough (about 10 s at ~1,000 workflows/s) that the worker outlives the 1 s
    # settle, 4 s of CPU sampling and 4 s of py-spy.
    run = sh_throughput(ctx, "postgres", 1, n=max(12_000, ctx.args.n), on_started=hook)
    if "thread" in state:
        state["thread"].join(60)
    lines = [
        f"steadyhand worker, PostgreSQL, K=1, C={ctx.config.concurrency}: "
        f"{run.calls_per_s:,.0f} steps/s during the profile",
        f"CPU (cores busy): worker {state.get('worker', 0):.2f}, PostgreSQL backends "
        f"{state.get('postgres', 0):.2f}, whole machine {state.get('machine', 0):.2f} of "
        f"{psutil.cpu_count()}",
        f"worker CPU per step {state.get('worker', 0) / max(run.calls_per_s, 1) * 1000:.2f} ms; "
        f"server CPU per step {state.get('postgres', 0) / max(run.calls_per_s, 1) * 1000:.2f} ms",
        "server sessions of the run, sampled every 10 ms (pg_stat_activity): "
        + ", ".join(f"{k} {v:.0%}" for k, v in state.get("waits", {}).items()),
    ]
    if out.exists():
        prof = profiling.summarise(out)
        gil_share = prof.samples / (200 * 4) if prof.samples else 0.0
        lines.append(f"py-spy --gil: the GIL was held {gil_share:.0%} of the time; of that:")
        lines.extend("  " + line for line in prof.lines(12)[1:])
    elif profiling.available():
        lines.append("py-spy recorded nothing: the worker ended before it attached")
    else:
        lines.append("py-spy not installed: no Python profile")
    ctx.profile_lines = lines
    for line in lines:
        print("  " + line)


def _cpu_and_waits(psutil: Any, pid: int, admin: str, seconds: float) -> dict[str, Any]:
    import psycopg

    def pg_pids() -> list[int]:
        return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]

    def cpu(pids: list[int]) -> float:
        total = 0.0
        for p in pids:
            try:
                t = psutil.Process(p).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    pgs = pg_pids()
    w0, p0, m0, t0 = cpu([pid]), cpu(pgs), psutil.cpu_times(), time.monotonic()
    waits: dict[str, int] = {}
    samples = 0
    with psycopg.connect(admin, autocommit=True) as conn:
        while time.monotonic() - t0 < seconds:
            rows = conn.execute(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE datname LIKE 'shbench_%' AND pid <> pg_backend_pid()"
            ).fetchall()
            for state, wtype, wevent in rows:
                if state == "idle":
                    key = "idle (no transaction)"
                elif state == "idle in transaction":
                    key = "in transaction, waiting for the client"
                elif wtype is None:
                    key = "running on CPU"
                else:
                    key = f"waiting {wtype}:{wevent}"
                waits[key] = waits.get(key, 0) + 1
                samples += 1
            time.sleep(0.01)
    dt = time.monotonic() - t0
    m1 = psutil.cpu_times()
    busy = (m1.user + m1.system + m1.softirq) - (m0.user + m0.system + m0.softirq)
    ordered = dict(
        sorted(((k, v / max(samples, 1)) for k, v in waits.items()), key=lambda kv: -kv[1])
    )
    return {
        "worker": (cpu([pid]) - w0) / dt,
        "postgres": (cpu(pgs) - p0) / dt,
        "machine": busy / dt,
        "waits": ordered,
    }


def section_repeat(ctx: Context) -> None:
    """Repeat the headline figures so their spread on a shared machine is visible."""
    k = 2 if 2 in ctx.workers else ctx.workers[-1]
    for _ in range(ctx.args.repeat - 1):
        for backend in ctx.backends:
            run = sh_throughput(ctx, backend, k, n=ctx.args.n)
            ctx.sh_runs.setdefault((backend, k), []).append(run)
        if "peers" in ctx.args.only:
            from .peers import dbos_bench, pgqueuer_bench

            if dbos_bench.installed() and "postgres" in ctx.backends:
                rate = _dbos_once(ctx, "postgres", k, ctx.args.peer_n, "repeat")
                ctx.peer_rates.setdefault(("dbos", "postgres", k), []).append(rate)
            if pgqueuer_bench.installed() and ctx.pg is not None:
                rate = _pgq_once(ctx, k, ctx.args.n, "repeat")
                ctx.peer_rates.setdefault(("pgqueuer", "postgres", k), []).append(rate)


class _NoDb:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _db_for(ctx: Context, backend: str, prefix: str) -> Any:
    if backend == "postgres":
        assert ctx.pg is not None
        return scratch_database(ctx.pg, prefix)
    return _NoDb()


# -- targets and the report ---------------------------------------------------------------------
def targets(ctx: Context) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target of issue 7 that this run measured."""
    out: list[tuple[str, str, str]] = []
    med = statistics.median

    for backend in ctx.backends:
        for k in ctx.workers:
            sh = ctx.sh_runs.get((backend, k))
            dbos = ctx.peer_rates.get(("dbos", backend, k))
            if sh and dbos:
                mine = med(r.workflows_per_s for r in sh)
                ratio = mine / med(dbos)
                out.append(
                    (
                        f"{backend} K={k}: workflows/s >= 10x DBOS",
                        f"{ratio:.1f}x ({mine:,.0f} vs {med(dbos):,.0f})",
                        _verdict(ratio, 10.0),
                    )
                )
    for k in ctx.workers:
        sh = ctx.sh_runs.get(("postgres", k))
        pgq = ctx.peer_rates.get(("pgqueuer", "postgres", k))
        if sh and pgq:
            ratio = med(r.calls_per_s for r in sh) / med(pgq)
            out.append(
                (
                    f"postgres K={k}: steps/s >= 1/3 of pgqueuer jobs/s",
                    f"{ratio:.2f} ({med(r.calls_per_s for r in sh):,.0f} vs {med(pgq):,.0f})",
                    _verdict(ratio, 1 / 3),
                )
            )
    for k in ctx.workers:
        sh = ctx.sh_runs.get(("postgres", k))
        if not sh or sh[0].commits_per_call is None:
            continue
        cps = med(r.commits_per_call or 0 for r in sh)
        out.append((f"postgres K={k}: <= 2 commits per step", f"{cps:.2f}", _verdict(2.0, cps)))
        raw = ctx.raw_limit.get(k)
        if raw:
            bound = raw / cps
            frac = med(r.calls_per_s for r in sh) / bound
            out.append(
                (
                    f"postgres K={k}: steps/s >= 50% of raw commits/s / commits per step",
                    f"{frac:.0%} (bound {bound:,.0f} steps/s from {raw:,.0f} commits/s)",
                    _verdict(frac, 0.5),
                )
            )
    for row in ctx.results.rows:
        latency_row = row.section == "latency" and row.metric == "added per step p50"
        if latency_row and row.value and row.backend == "postgres":
            out.append(
                (
                    "postgres: added latency per step p50 <= 5 ms",
                    f"{row.value:.2f} ms",
                    _verdict(5.0, row.value),
                )
            )
        if row.section == "scale" and row.metric == "step cost ratio" and row.value:
            out.append(
                (
                    f"{row.backend}: step cost ratio (large/10k facts) <= 1.2",
                    f"{row.value:.2f}",
                    _verdict(1.2, row.value),
                )
            )
        if row.section == "memory" and row.value:
            out.append(
                (
                    f"{row.backend}: worker RSS <= 150 MB with {ctx.args.in_flight:,} in flight",
                    f"{row.value:.0f} MB",
                    _verdict(150.0, row.value),
                )
            )
    return out


def _verdict(value: float, needed: float) -> str:
    if value >= needed:
        return "met"
    return f"MISSED (off by x{needed / value:.2f})"


def render(ctx: Context, info: dict[str, str], command: str, elapsed: float) -> str:
    lines = [f"## {info['date']} — `{command}`", ""]
    lines.append(
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in info.items() if k != "date")
        + f". Suite took {elapsed / 60:.1f} min. A shared machine: other work ran on the same "
        "2 cores, so figures move from run to run (repeats below show the spread)."
    )
    lines += [
        "",
        "| section | system | backend | K | metric | value | unit | note |",
        "|---|---|---|---|---|---:|---|---|",
    ]
    for r in ctx.results.rows:
        lines.append(
            f"| {r.section} | {r.system} | {r.backend} | {r.workers} | {r.metric} | "
            f"{r.formatted()} | {r.unit} | {r.note} |"
        )
    repeats = {key: runs for key, runs in ctx.sh_runs.items() if len(runs) > 1}
    peers = {key: rates for key, rates in ctx.peer_rates.items() if len(rates) > 1}
    if repeats or peers:
        lines += ["", "Repeated figures, median (min-max):", ""]
        for (backend, k), runs in repeats.items():
            lines.append(
                f"- steadyhand {backend} K={k} workflows/s: "
                f"{spread([r.workflows_per_s for r in runs])}"
            )
        for (system, backend, k), rates in peers.items():
            lines.append(f"- {system} {backend} K={k}: {spread(rates)}")
    verdicts = targets(ctx)
    if verdicts:
        lines += ["", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {v} |" for t, m, v in verdicts]
    if ctx.profile_lines:
        lines += ["", "Profile:", "", "```", *ctx.profile_lines, "```"]
    if ctx.results.notes:
        lines += ["", *[f"- {n}" for n in ctx.results.notes]]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small N everywhere (about 4 minutes)")
    p.add_argument("--n", type=int, default=None, help="workflows per throughput run (5000)")
    p.add_argument("--peer-n", type=int, default=None, help="workflows per DBOS run (1000)")
    p.add_argument("--workers", default=None, help="worker processes, e.g. 1,2,4")
    p.add_argument(
        "--concurrency", type=int, default=64, help="tasks in flight per process, both systems"
    )
    p.add_argument("--backends", default="postgres,sqlite")
    p.add_argument("--pg", default=None, help=f"admin URL of the server (default {DEFAULT_PG})")
    p.add_argument("--only", default=",".join(SECTIONS), help="sections: " + ",".join(SECTIONS))
    p.add_argument("--no-peers", action="store_true", help="skip DBOS and pgqueuer")
    p.add_argument("--repeat", type=int, default=None, help="runs of the headline figures")
    p.add_argument("--latency-runs", type=int, default=None)
    p.add_argument("--scale-facts", type=int, default=None, help="the large history (1000000)")
    p.add_argument("--scale-m", type=int, default=None)
    p.add_argument("--scale-rounds", type=int, default=2)
    p.add_argument("--in-flight", type=int, default=None, help="workflows in flight (10000)")
    p.add_argument("--results", type=Path, default=RESULTS_FILE)
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "n": (1000, 5000),
        "peer_n": (300, 1000),
        "workers": ("1,2", "1,2,4"),
        "repeat": (1, 3),
        "latency_runs": (100, 500),
        "scale_facts": (200_000, 1_000_000),
        "scale_m": (300, 1000),
        "in_flight": (2000, 10_000),
    }
    for name, (q, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, q if quick else full)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.no_peers:
        args.only = [s for s in args.only if s != "peers"]
    return args


def main(argv: list[str] | None = None) -> int:
    from .common import quiet_logging

    quiet_logging()
    args = parse(argv)
    command = "python -m bench.run " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    pg = args.pg or DEFAULT_PG
    if "postgres" in backends and not pg_reachable(pg):
        print(f"PostgreSQL at {pg} does not answer: running SQLite only", file=sys.stderr)
        backends = [b for b in backends if b != "postgres"]
    uses_pg = "postgres" in backends
    info = machine_info(pg if uses_pg else None)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shbench-") as tmp:
        ctx = Context(
            args=args,
            results=Results(),
            tmp=Path(tmp),
            pg=pg if uses_pg else None,
            backends=backends,
            workers=[int(x) for x in args.workers.split(",")],
            config=WorkerConfig(concurrency=args.concurrency),
        )
        sections: dict[str, Callable[[Context], None]] = {
            "limit": section_limit,
            "throughput": section_throughput,
            "peers": section_peers,
            "latency": section_latency,
            "scale": section_scale,
            "memory": section_memory,
            "failure": section_failure,
            "profile": section_profile,
        }
        for name in SECTIONS:
            if name in args.only:
                print(f"== {name}", flush=True)
                sections[name](ctx)
        if args.repeat > 1 and "throughput" in args.only:
            print("== repeat", flush=True)
            section_repeat(ctx)
        text = render(ctx, info, command, time.monotonic() - started)
    print()
    print(text)
    if not args.no_write:
        with args.results.open("a") as fh:
            fh.write("\n" + text)
        print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
