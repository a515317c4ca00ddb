"""Smoke runs of the benchmark suite with tiny N, so `bench/` does not rot.

Only steadyhand's own measurements run here, on both backends; the peers (DBOS, pgqueuer)
need the `bench` extra and are only checked to skip cleanly. No timing is asserted:
benchmarks are not tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from bench.common import Results, Row
from bench.latency import measure as measure_latency
from bench.peers import dbos_bench, pgqueuer_bench
from bench.run import Context, parse, render, section_peers
from bench.scale import fact_count, seed_history
from bench.throughput import Monitor, WorkerConfig, backend_of, run_throughput

pytestmark = pytest.mark.slow

SMALL = WorkerConfig(concurrency=4, poll_interval=0.02, watchdog_interval=0.5)


def test_throughput_failures_and_latency(store_url: str) -> None:
    result = run_throughput(store_url, n=6, workers_count=1, config=SMALL)
    assert result.states == {"completed": 6, "compensated": 0, "failed": 0}
    assert result.calls == 18
    assert result.workflows_per_s > 0
    if backend_of(store_url) == "postgres":
        assert result.commits is not None and result.commits > 0
    else:
        assert result.commits is None

    flaky = run_throughput(store_url, n=4, workers_count=1, workflow="flaky3", config=SMALL)
    assert flaky.states["completed"] == 4
    assert flaky.calls >= 12  # every step once, plus the injected failures' retries

    lat = measure_latency(store_url, "one", 3, warmup=1, config=SMALL)
    assert len(lat.ms) == 3
    assert all(ms > 0 for ms in lat.ms)
    assert lat.p50 <= lat.p99


def test_seeded_history_is_closed_and_counted(store_url: str) -> None:
    from steadyhand import open_store

    open_store(store_url).close()
    added = seed_history(store_url, 200)
    assert added == 20
    assert fact_count(store_url) == 200
    # History is finished: nothing open, nothing queued, so no worker would touch it.
    monitor = Monitor(store_url)
    try:
        assert monitor.query("SELECT count(*) FROM open_workflows")[0][0] == 0
        assert monitor.query("SELECT count(*) FROM tasks")[0][0] == 0
    finally:
        monitor.close()


def test_report_and_missing_peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse(["--quick", "--no-peers", "--backends", "sqlite"])
    assert "peers" not in args.only
    assert args.n == 1000

    monkeypatch.setattr(dbos_bench, "installed", lambda: False)
    monkeypatch.setattr(pgqueuer_bench, "installed", lambda: False)
    ctx = Context(
        args=argparse.Namespace(**{**vars(args), "in_flight": 10}),
        results=Results(),
        tmp=tmp_path,
        pg=None,
        backends=["sqlite"],
        workers=[1],
        config=SMALL,
    )
    section_peers(ctx)  # skips DBOS with a note; pgqueuer needs PostgreSQL
    assert any("DBOS not installed" in note for note in ctx.results.notes)

    ctx.results.add(Row("memory", "steadyhand", "sqlite", "1", "worker RSS", 120.0, "MB"))
    text = render(ctx, {"date": "today", "cores": "2"}, "python -m bench.run", 1.0)
    assert "| memory | steadyhand | sqlite | 1 | worker RSS | 120 | MB |" in text
    assert "worker RSS <= 150 MB" in text and "| met |" in text
