"""Smoke run of bench.codefirst with tiny N on both backends (no timing asserted)."""

from __future__ import annotations

import pytest
from bench.codefirst import decisions, main
from bench.throughput import WorkerConfig, run_throughput

pytestmark = pytest.mark.slow

SMALL = WorkerConfig(concurrency=4, poll_interval=0.02, watchdog_interval=0.5)


def test_code_first_three_runs_like_the_saga(store_url: str) -> None:
    run = run_throughput(store_url, n=6, workers_count=1, workflow="three_code", config=SMALL)
    assert run.states == {"completed": 6, "compensated": 0, "failed": 0}
    assert run.calls == 18


def test_decision_times_come_from_every_breadcrumb(store_url: str) -> None:
    times = decisions(store_url, "chain_code10")
    assert len(times) == 11  # one decision per step, and the one that completes
    assert all(ms > 0 for ms in times)


def test_main_prints_the_ratio_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--backends", "sqlite", "-n", "6", "-k", "1", "--repeat", "1", "--steps", "10"]
    assert main([*args, "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "ratio saga/code-first" in out and "| sqlite | 10 |" in out
    with pytest.raises(SystemExit):
        main(["--steps", "7", "--no-write"])
