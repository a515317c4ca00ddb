"""Prometheus metrics after a small run: the dashboard's store-wide `/metrics` (both
backends) and a worker's own counters served on `--metrics-port`.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from steadyhand import Client, Worker, open_store
from steadyhand.ops.metrics import WorkerMetrics, store_registry
from steadyhand.ops.settings import stuck_rule
from steadyhand.web import DashboardOptions, create_app
from tests.apps.scripted import app
from tests.conftest import FAST
from tests.ops.conftest import FAIL_SCRIPT, Scenario, free_port, serve
from tests.ops.promtool import promtool, promtool_check_metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_dashboard_exports_store_wide_metrics(scenario: Scenario) -> None:
    store = open_store(scenario.url)
    try:
        with serve(create_app(store, DashboardOptions(token="m", metrics_settle=0))) as base:
            scrape = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer m"})
    finally:
        store.close()
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    got = samples(scrape.text)
    for state in ("completed", "compensated", "failed"):
        assert got[("steadyhand_workflows_ended_total", (("state", state),))] == 1
    assert got[("steadyhand_workflows", (("state", "running"),))] == 0
    assert got[("steadyhand_workflows_stuck", ())] == 0
    assert got[("steadyhand_workflows_started_total", ())] == 3
    assert got[("steadyhand_queue_depth", (("kind", "action"),))] == 0
    assert got[("steadyhand_queue_lag_seconds", ())] == 0
    car_failed = (("outcome", "failed"), ("phase", "action"), ("step", "car"))
    assert got[("steadyhand_calls_total", car_failed)] == 2
    retries = (("phase", "compensation"), ("step", "hotel"))
    assert got[("steadyhand_retries_total", retries)] == 3
    assert got[("steadyhand_compensations_began_total", ())] == 2
    decisions = got[("steadyhand_decision_seconds_count", ())]
    assert decisions > 0 and got[("steadyhand_decision_seconds_sum", ())] > 0
    assert got[("steadyhand_decision_seconds_bucket", (("le", "+Inf"),))] == decisions
    assert not any(name.endswith("_ms") for name, _ in got)
    assert not any(name == "steadyhand_replica_lag_seconds" for name, _ in got)  # a primary
    assert promtool_check_metrics(scrape.text) == ""


def test_counters_count_each_fact_once_across_scrapes(scenario: Scenario) -> None:
    store = open_store(scenario.url)
    try:
        registry = store_registry(store, stuck_rule(), settle=0)
        first = samples(generate_latest(registry).decode())
        second = samples(generate_latest(registry).decode())
    finally:
        store.close()
    started = ("steadyhand_workflows_started_total", ())
    assert first[started] == second[started] == 3
    decisions = ("steadyhand_decision_seconds_count", ())
    assert first[decisions] == second[decisions] > 0


def test_a_worker_counts_calls_retries_compensations_and_decisions(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'steadyhand.db'}")
    metrics = WorkerMetrics()
    port = free_port()
    stop_serving = metrics.serve(port, "127.0.0.1")
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    scripts = [{"hotel": ["transient"]}, {"car": ["permanent"]}, FAIL_SCRIPT]
    ids = [client.start("trip", {"ledger": ledger, "script": s}).workflow_id for s in scripts]
    worker = Worker(app, store, FAST, metrics)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        assert [client.wait(i, timeout=30).state for i in ids] == [
            "completed",
            "compensated",
            "failed",
        ]
    finally:
        worker.stop()
        thread.join(timeout=30)
        store.close()
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        got = samples(text)
    finally:
        stop_serving()
    hotel_ok = (("outcome", "succeeded"), ("phase", "action"), ("step", "hotel"))
    assert got[("steadyhand_worker_calls_total", hotel_ok)] == 3
    hotel_retry = (("phase", "action"), ("step", "hotel"))
    assert got[("steadyhand_worker_retries_total", hotel_retry)] == 1
    undo_failed = (("outcome", "failed"), ("step", "hotel"))
    assert got[("steadyhand_worker_compensations_total", undo_failed)] == 4
    assert got[("steadyhand_worker_decision_seconds_count", (("trigger", "outcome"),))] >= 15
    assert got[("steadyhand_worker_call_seconds_count", (("phase", "action"),))] >= 10
    assert promtool_check_metrics(text) == ""


def test_the_example_alert_rules_pass_promtool() -> None:
    rules = Path(__file__).parents[2] / "docs" / "alerts.yml"
    done = subprocess.run(
        [promtool(), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout
