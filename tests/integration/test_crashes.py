"""Processes die, databases drop connections: nothing decided is lost, nothing is done twice.

These tests run real worker processes (`steadyhand worker`) and kill them with signals.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from steadyhand import Client
from steadyhand.core.facts import ACTION, call_slot
from steadyhand.runtime.presence import recent_workers
from steadyhand.store import Store
from steadyhand.store.pg_admin import terminate_sessions
from tests.apps import codefirst
from tests.apps.scripted import app, calls_started, effects, open_gate
from tests.conftest import application_name, running_worker
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
STEADYHAND = str(Path(sys.executable).with_name("steadyhand"))


@contextmanager
def worker_process(
    store_url: str, log: Path, lease: float = 1.5, app: str = "tests.apps.scripted:app"
) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        STEADYHAND, "worker", "--app", app, "--db", store_url,
        "--concurrency", "4", "--lease", str(lease), "--poll", "0.02", "--watchdog", "0.3",
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def call_in_flight(client: Client, workflow_id: str, ledger: str) -> None:
    """Wait until the first attempt of step `only` has started (its agent wrote the marker),
    and check that its outcome is not recorded: the crash point is reached, not passed."""
    eventually(lambda: ("action", "only", 1) in calls_started(ledger), what="the call's start")
    outcome = client.view(workflow_id).slot(call_slot(ACTION, "only", 1, "outcome"))
    assert outcome is None, f"the call ended before the test could interrupt it: {outcome}"


@pytest.mark.parametrize(
    ("script", "attempts", "probe_answer"),
    [
        (["gate", "ok"], 2, "not_done"),  # killed before the effect: probe, then retry
        (["act_then_hang"], 1, "done"),  # killed after the effect: the probe finds it
    ],
)
def test_worker_killed_mid_call_is_recovered_after_its_lease_expires(
    store: Store,
    store_url: str,
    tmp_path: Path,
    script: list[str],
    attempts: int,
    probe_answer: str,
) -> None:
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    started = client.start("slow_gated", {"ledger": ledger, "script": {"only": script}})
    with worker_process(store_url, tmp_path / "worker.log") as proc:
        if script[0] == "act_then_hang":
            eventually(lambda: len(effects(ledger)) == 1, what="the effect")
        call_in_flight(client, started.workflow_id, ledger)
        assert not effects(ledger) or script[0] == "act_then_hang", "gated: no effect yet"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    with running_worker(app, store):
        status = client.wait(started.workflow_id, timeout=30)
    assert status.state == "completed"
    view = client.view(started.workflow_id)
    assert view.count("attempt_lost") == 1
    probe = view.latest("probe_succeeded")
    assert probe is not None and probe.get("answer") == probe_answer
    assert view.count("attempt_scheduled") == attempts
    assert len([e for e in effects(ledger) if e[1] == "action"]) == 1, "the effect happened once"


def test_several_worker_processes_share_the_work(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    scripts = [{}, {"hotel": ["transient", "ok"]}, {"car": ["permanent"]}]
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    with (
        worker_process(store_url, logs[0]),
        worker_process(store_url, logs[1]),
        worker_process(store_url, logs[2]),
    ):
        # All three present before any work exists: on a loaded machine the first process
        # up could otherwise drain all 24 before the others have imported the app.
        eventually(lambda: len(recent_workers(store, time.time(), 0.0)) >= 3, what="3 workers")
        ids = [
            client.start("trip", {"ledger": ledger, "script": scripts[i % 3]}).workflow_id
            for i in range(24)
        ]
        states = [client.wait(i, timeout=60).state for i in ids]
    assert states.count("completed") == 16 and states.count("compensated") == 8
    workers = set()
    for workflow_id in ids:
        view = client.view(workflow_id)
        workers |= {f.get("worker") for f in view.facts if f.kind.endswith("_succeeded")}
        scheduled = [
            (f.kind, f.step, f.attempt) for f in view.facts if f.kind.endswith("_scheduled")
        ]
        assert len(scheduled) == len(set(scheduled))
    assert len(workers) >= 2, "the work was shared"
    acted = [(key, phase) for key, phase, _, _ in effects(ledger)]
    assert len(acted) == len(set(acted)), "no call acted twice"


def test_sigterm_lets_the_call_in_flight_finish(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    started = client.start("slow_gated", {"ledger": ledger, "script": {"only": ["gate"]}})
    with worker_process(store_url, tmp_path / "worker.log", lease=5) as proc:
        call_in_flight(client, started.workflow_id, ledger)
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)  # draining: it waits for the call it holds
        open_gate(ledger)
        assert proc.wait(timeout=15) == 0
    status = client.status(started.workflow_id)
    assert status.state == "completed", "the in-flight call finished and its outcome was recorded"
    assert client.view(started.workflow_id).count("attempt_lost") == 0


def _interrupt_store(store_url: str, store: Store) -> None:
    """Make the store unusable for a while, the way each backend fails in production."""
    if store.dialect == "postgresql":
        # Only this test's sessions: every test store names its sessions after its schema.
        name = application_name(store_url)
        for _ in range(3):
            terminate_sessions(store_url, name)
            time.sleep(0.5)  # the outage lasts a while (the work pauses, then resumes)
    else:
        import sqlite3

        path = store_url.removeprefix("sqlite:///")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock: a busy store
        time.sleep(3.0)
        blocker.execute("ROLLBACK")
        blocker.close()


def test_losing_the_database_for_a_while_only_pauses_the_work(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    script = {"flight": ["slow:0.3"], "hotel": ["slow:0.3"], "car": ["slow:0.3"]}
    ids = [
        client.start("trip_probed", {"ledger": ledger, "script": script}).workflow_id
        for _ in range(8)
    ]
    with running_worker(app, store):
        eventually(lambda: effects(ledger), what="the first booking")
        interrupter = threading.Thread(target=_interrupt_store, args=(store_url, store))
        interrupter.start()
        interrupter.join()
        states = [_wait_through_outage(client, i) for i in ids]
    assert states == ["completed"] * 8
    acted = [(key, phase) for key, phase, _, _ in effects(ledger)]
    assert len(acted) == len(set(acted)) == 24, "every booking made exactly once"


def _wait_through_outage(client: Client, workflow_id: str) -> str:
    from steadyhand import StoreUnavailable

    def ended() -> str | None:
        try:
            status = client.wait(workflow_id, timeout=5)
        except (StoreUnavailable, TimeoutError):
            return None
        return status.state if status.done else None

    return eventually(ended, timeout=60, interval=0.2, what=f"the end of {workflow_id}")


def test_a_worker_killed_mid_gather_of_a_code_first_workflow_loses_nothing(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    client = Client(codefirst.app, store)
    started = client.start("slow_pair", {"ledger": str(ledger), "sleep": 3})
    wid = started.workflow_id

    def both_leased() -> bool:
        with store.snapshot() as tx:
            return sum(1 for t in tx.workflow_tasks(wid) if t.lease_owner) == 2

    with worker_process(store_url, tmp_path / "w.log", app="tests.apps.codefirst:app") as proc:
        eventually(both_leased, what="both calls leased")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert not ledger.exists(), "killed before either call acted"
    with running_worker(codefirst.app, store):
        status = client.wait(wid, timeout=40)
    assert status.state == "completed" and status.result == ["left", "right"]
    view = client.view(wid)
    assert sorted(f.step or "" for f in view.of("attempt_lost")) == ["slow_leg", "slow_leg#2"]
    with sqlite3.connect(ledger) as conn:
        keys = sorted(k for (k,) in conn.execute("SELECT key FROM effects"))
    assert keys == [f"{wid}:slow_leg", f"{wid}:slow_leg#2"]
