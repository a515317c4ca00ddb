"""A slow supervisor holds its workflow's lock while it runs (issue 23): a run longer than
the worker's threshold is logged with the workflow and counted; and workers count the
store errors they meet, by cause (issue 21)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from steadyhand import App, Client, Complete, Decision, WorkerOptions, WorkflowView
from steadyhand.core.errors import StoreUnavailable
from steadyhand.ops.metrics import WorkerMetrics
from steadyhand.runtime.storecalls import StoreCalls
from steadyhand.store import Store
from tests.conftest import FAST, running_worker


def _slow_app() -> App:
    app = App()

    @app.supervisor()
    def ponder(view: WorkflowView, now: float) -> Decision:
        if view.event("go") is None:
            return Decision((), "waiting for go")
        time.sleep(0.3)  # far beyond the 0.05 s threshold below
        return Decision((Complete("thought hard"),), "done")

    app.process("ponder", ponder)
    return app


def test_a_slow_decision_is_logged_with_its_workflow_and_counted(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    app = _slow_app()
    client = Client(app, store)
    wid = client.start("ponder", {}).workflow_id
    metrics = WorkerMetrics()
    options = WorkerOptions(**{**FAST.__dict__, "slow_decision": 0.05})
    with (
        caplog.at_level(logging.WARNING, "steadyhand.engine"),
        running_worker(app, store, options, metrics),
    ):
        client.signal("go", {}, workflow_id=wid)
        assert client.wait(wid, timeout=10).state == "completed"
    slow = [r for r in caplog.records if "to decide" in r.getMessage()]
    assert slow and wid in slow[0].getMessage() and "threshold is 0.05s" in slow[0].getMessage()
    assert getattr(slow[0], "workflow_id", None) == wid
    assert metrics.slow_decisions._value.get() >= 1


def test_workers_count_store_errors_by_cause() -> None:
    metrics = WorkerMetrics()
    calls = StoreCalls(2)
    calls.noticed = metrics.noticed
    failures = [StoreUnavailable("disk full: ...", cause="disk_full")]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "answered"

    assert asyncio.run(calls.call_until_answered(flaky)) == "answered"
    assert metrics.store_errors.labels("disk_full")._value.get() == 1
