"""One clock for the cluster: a worker whose wall clock is 40 s fast or slow (libfaketime)
beside a correct one neither steals a live call nor runs due work early or late.

Leases, due times and facts are kept on the store's clock (store/clock.py); these tests
shift a real worker process's clocks and look at the facts it leaves.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from steadyhand import Client
from steadyhand.store import Store
from tests.apps.clocked import BACKOFF, app
from tests.apps.scripted import effects
from tests.processes import faketime_env, worker_process

APP = "tests.apps.clocked:app"
OFFSETS = ["+40s", "-40s"]


def _kinds(client: Client, workflow_id: str) -> list[str]:
    return [f.kind for f in client.view(workflow_id).facts]


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_skewed_worker_never_declares_a_live_call_lost(
    store: Store, store_url: str, tmp_path: Path, offset: str
) -> None:
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    skewed = faketime_env(offset)
    ids = [
        client.start("long_call", {"ledger": ledger, "script": {"only": ["slow:4"]}}).workflow_id
        for _ in range(4)
    ]
    two = ("--concurrency", "2")  # four calls at once: both workers must take some
    with (
        worker_process(store_url, tmp_path / "a.log", app=APP, lease=1.0, extra=two),
        worker_process(store_url, tmp_path / "b.log", app=APP, lease=1.0, env=skewed, extra=two),
    ):
        states = [client.wait(i, timeout=60).state for i in ids]
    assert states == ["completed"] * 4
    workers = set()
    for workflow_id in ids:
        kinds = _kinds(client, workflow_id)
        assert "attempt_lost" not in kinds, f"a live call was declared lost: {kinds}"
        assert "outcome_reported_late" not in kinds
        view = client.view(workflow_id)
        workers |= {f.data.get("worker") for f in view.facts if f.kind == "attempt_succeeded"}
    assert len(workers) == 2, "both the correct and the skewed worker ran calls"
    acted = [key for key, phase, _, _ in effects(ledger) if phase == "action"]
    assert sorted(acted) == sorted(set(acted)) and len(acted) == 4, "each call ran once"
    log = (tmp_path / "b.log").read_text()
    assert "off the store's clock" in log, "the skewed worker warns about its clock"


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_skewed_worker_runs_due_work_on_time(
    store: Store, store_url: str, tmp_path: Path, offset: str
) -> None:
    """The retry is due BACKOFF seconds after the failure, stamped by a correct worker; a
    fast worker must not run it early, a slow one must not starve it (40 s)."""
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    skewed = faketime_env(offset)
    script = {"only": ["transient", "ok"]}
    workflow_id = client.start("backoff", {"ledger": ledger, "script": script}).workflow_id
    with worker_process(store_url, tmp_path / "a.log", app=APP) as correct:
        deadline = time.monotonic() + 30
        while "attempt_failed" not in _kinds(client, workflow_id):
            assert time.monotonic() < deadline, "attempt 1 never failed"
            time.sleep(0.05)
        failed_seen = time.monotonic()  # this test's own clock, which nobody shifts
        correct.send_signal(signal.SIGTERM)
        with worker_process(store_url, tmp_path / "b.log", app=APP, env=skewed):
            correct.wait(timeout=20)
            deadline = time.monotonic() + BACKOFF + 25  # a slow clock would starve it 40 s
            while not effects(ledger):
                assert time.monotonic() < deadline, "the retry never ran"
                time.sleep(0.02)
            acted_seen = time.monotonic()
            assert client.wait(workflow_id, timeout=20).state == "completed"
    assert acted_seen - failed_seen >= BACKOFF - 0.5, "the retry ran before it was due"
    facts = client.view(workflow_id).facts
    failed = next(f for f in facts if f.kind == "attempt_failed")
    retried = next(f for f in facts if f.kind == "attempt_succeeded")
    assert retried.attempt == 2
    assert retried.at - failed.at >= BACKOFF - 0.1, "facts are stamped on the store's clock"
