"""Ending is final, and a supervisor's bug says so once (issues 21 and 23), on both stores:
a supervisor that raises or returns a decision that cannot be applied ends its workflow
`failed` with the reason, recorded once; a workflow that ends withdraws its queued calls;
a call that succeeds after a rollback is undone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from steadyhand import (
    App,
    CallAgent,
    Client,
    Complete,
    Context,
    Decision,
    Fail,
    PermanentError,
    ProbeAnswer,
    RetryPolicy,
    Step,
    WaitUntil,
    WorkflowView,
)
from steadyhand.core.facts import (
    ACTION,
    CANCEL_REQUESTED,
    SUPERVISOR_RAISED,
    TERMINAL_KINDS,
    WORKFLOW_FAILED,
)
from steadyhand.core.saga import saga
from steadyhand.define.client import new_workflow_id
from steadyhand.engine.answers import Outcome
from steadyhand.engine.engine import Engine
from steadyhand.ops.metrics import WorkerMetrics
from steadyhand.store import Store
from tests.apps.scripted import effects, ledger
from tests.conftest import FAST, running_worker

QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


def _fact_count(client: Client, workflow_id: str, kind: str) -> int:
    return client.view(workflow_id).count(kind)


# -- a supervisor that raises ----------------------------------------------------------------


def _raising_app() -> App:
    app = App()

    @app.supervisor()
    def buggy(view: WorkflowView, now: float) -> Decision:
        return {}["missing"]  # type: ignore[no-any-return, index]  # the bug a user would write

    app.process("buggy", buggy)
    return app


def _fixed_app() -> App:
    app = App()

    @app.supervisor(name="buggy")
    def fixed(view: WorkflowView, now: float) -> Decision:
        return Decision((Complete("fixed"),), "fixed")

    app.process("buggy", fixed)
    return app


def test_a_supervisor_that_raises_at_start_ends_failed_and_retry_resumes(store: Store) -> None:
    client = Client(_raising_app(), store)
    started = client.start("buggy", {})  # never raises the supervisor's KeyError
    status = client.status(started.workflow_id)
    assert status.state == "failed"
    assert "raised KeyError: 'missing'" in (status.reason or "")
    assert "test_endings.py" in (status.reason or ""), "the reason says where it was raised"
    view = client.view(started.workflow_id)
    raised = view.of(SUPERVISOR_RAISED)
    assert len(raised) == 1 and view.count(WORKFLOW_FAILED) == 1
    assert 'return {}["missing"]' in raised[0].get("traceback")
    assert raised[0].get("where").split(":")[0].endswith("test_endings.py")
    assert "in buggy" in raised[0].get("where")

    fixed = Client(_fixed_app(), store)  # a fixed deploy
    assert fixed.retry(started.workflow_id, reason="deployed the fix").result == "done"
    with running_worker(_fixed_app(), store):
        assert fixed.wait(started.workflow_id, timeout=10).state == "completed"


def _flight_app(calls: list[str]) -> App:
    """A saga (book, then wait for `go`) whose supervisor has a bug hit by a `go` event
    carrying {"boom": true} — until the workflow is cancelled."""
    app = App()

    @app.agent()
    def book(ctx: Context) -> str:
        calls.append(f"book:{ctx.workflow_id}")
        return "booked"

    @app.agent()
    def unbook(ctx: Context) -> None:
        calls.append(f"unbook:{ctx.workflow_id}")

    @app.supervisor()
    def fragile(view: WorkflowView, now: float) -> Decision:
        go = view.event("go")
        if go is not None and go.get("payload", {}).get("boom") and not view.has(CANCEL_REQUESTED):
            return {}["missing"]  # type: ignore[no-any-return, index]
        return saga(view, now)

    plan = app.workflow(
        "flight",
        [Step("book", book, compensation=unbook, retry=QUICK), Step("confirm", wait_for="go")],
    )
    app.plans["flight"] = dataclasses.replace(plan, supervisor="fragile")
    return app


def test_a_bug_hit_by_a_worker_is_recorded_once_and_cancel_rolls_back(store: Store) -> None:
    calls: list[str] = []
    app = _flight_app(calls)
    client = Client(app, store)
    metrics = WorkerMetrics()
    started = client.start("flight", {})
    wid = started.workflow_id
    with running_worker(app, store, metrics=metrics):
        deadline = time.monotonic() + 10
        while not client.view(wid).has("wait_began", "confirm"):
            assert time.monotonic() < deadline, "the saga never reached its wait"
            time.sleep(0.02)
        client.signal("go", {"boom": True}, workflow_id=wid)
        status = client.wait(wid, timeout=10)
        assert status.state == "failed"
        assert "raised KeyError" in (status.reason or "")
        time.sleep(FAST.lease_seconds)  # a lease period: nothing retries the bug
        assert _fact_count(client, wid, SUPERVISOR_RAISED) == 1
        assert not client.view(wid).has("compensation_scheduled"), "nothing undone by itself"

        answer = client.cancel(wid, reason="roll it back")
        assert answer.result == "done" and answer.state != "failed"
        assert client.wait(wid, timeout=10).state == "compensated"
    assert calls == [f"book:{wid}", f"unbook:{wid}"]
    assert metrics.supervisor_errors.labels("raised")._value.get() == 1


# -- decisions that cannot be applied -------------------------------------------------------

BAD_DECISIONS: dict[str, tuple[Any, str]] = {
    "wait_nan": (Decision((WaitUntil(math.nan),)), "command 1 (WaitUntil): at must be a finite"),
    "wait_inf": (Decision((WaitUntil(math.inf),)), "command 1 (WaitUntil): at must be a finite"),
    "result_not_json": (Decision((Complete(object()),)), "command 1 (Complete): result must be"),
    "result_nan": (Decision((Complete({"x": math.nan}),)), "command 1 (Complete): result must"),
    "none": (None, "the supervisor returned None, not a Decision"),
    "dict": ({"commands": []}, "the supervisor returned dict"),
    "two_ends": (Decision((Complete(1), Fail("no"))), "2 commands end the workflow"),
    "bad_timeout": (
        Decision((CallAgent(ACTION, "s", 1, "a", math.inf),)),
        "command 1 (CallAgent): timeout must be a finite",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DECISIONS))
def test_an_invalid_decision_ends_failed_naming_the_command(store: Store, case: str) -> None:
    decision, expected = BAD_DECISIONS[case]
    app = App()

    @app.supervisor()
    def odd(view: WorkflowView, now: float) -> Decision:
        return decision  # type: ignore[no-any-return]

    app.process("odd", odd)
    client = Client(app, store)
    started = client.start("odd", {})
    status = client.status(started.workflow_id)
    assert status.state == "failed"
    assert expected in (status.reason or ""), status.reason
    assert "cannot be applied" in (status.reason or "")
    view = client.view(started.workflow_id)
    assert view.count("decision_refused") == 1
    assert sum(1 for f in view.facts if f.kind in TERMINAL_KINDS) == 1
    assert client.engine.read(started.workflow_id)[1] == [], "nothing left queued"  # type: ignore[index]


# -- one workflow's bug never holds back a batch ------------------------------------------------


def test_one_workflows_bug_does_not_hold_back_a_batch_of_outcomes(store: Store) -> None:
    app = App()

    @app.agent()
    def ping(ctx: Context) -> None:
        """Never runs: the test reports outcomes itself."""

    @app.supervisor()
    def caller(view: WorkflowView, now: float) -> Decision:
        if view.slot("action:p:1:outcome") is None:
            return Decision((CallAgent(ACTION, "p", 1, "ping", 5.0),), "ping")
        if view.input.get("bad"):
            raise RuntimeError("this workflow's supervisor has a bug")
        return Decision((Complete("pong"),), "done")

    app.process("caller", caller)
    engine = Engine(store, app.supervisors, plans=app.plans)
    plan = app.plans["caller"]
    ids = []
    for i in range(6):
        value = {"bad": i == 3}
        text = json.dumps(value)
        ids.append(engine.start(new_workflow_id(), plan, value, text, None).workflow_id)
    now = engine.clock()  # the store's clock, which stamped the calls due
    leased = store.lease_tasks("w", 20, now, now + 30)
    calls = [t for t in leased if t.kind == ACTION]
    assert len(calls) == 6
    refused: list[str] = []
    engine_log = _capture("steadyhand.engine", refused)
    try:
        decisions = engine.record_outcomes([(t, Outcome("succeeded", {})) for t in calls], "w")
    finally:
        engine_log()
    assert all(d is not None for d in decisions)
    assert not [m for m in refused if "recording them one by one" in m], "one batch, not split"
    client = Client(app, store)
    states = [client.status(wid).state for wid in ids]
    assert states == ["completed"] * 3 + ["failed"] + ["completed"] * 2
    assert client.view(ids[3]).count(SUPERVISOR_RAISED) == 1


def _capture(logger: str, into: list[str]) -> Any:
    import logging

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            into.append(record.getMessage())

    handler = Keep()
    logging.getLogger(logger).addHandler(handler)
    return lambda: logging.getLogger(logger).removeHandler(handler)


# -- a workflow that ends withdraws its queued calls --------------------------------------------


def test_a_workflow_that_fails_withdraws_its_queued_calls(store: Store) -> None:
    performed: list[str] = []
    lock = threading.Lock()
    app = App()

    @app.agent()
    def work(ctx: Context) -> str:
        with lock:
            performed.append(ctx.step)
        return "ok"

    @app.supervisor()
    def fan_out(view: WorkflowView, now: float) -> Decision:
        done = view.count("attempt_succeeded")
        if done >= 5:
            return Decision((Fail("five calls were enough"),), "stop")
        if not view.has("attempt_scheduled"):
            calls = tuple(CallAgent(ACTION, f"s{i}", 1, "work", 5.0) for i in range(300))
            return Decision(calls, "fan out 300 calls")
        return Decision((), "waiting")

    app.process("fan", fan_out)
    client = Client(app, store)
    wid = client.start("fan", {}).workflow_id
    with running_worker(app, store):
        assert client.wait(wid, timeout=30).state == "failed"
        time.sleep(FAST.lease_seconds)  # anything still in flight has answered by now
    view = client.view(wid)
    end = view.of(WORKFLOW_FAILED)[0]
    withdrawn = view.of("attempt_withdrawn")
    after = [f for f in view.of("attempt_succeeded") if f.seq > end.seq]
    assert len(performed) + len(withdrawn) == 300, "every call ran or was withdrawn, not both"
    assert len(set(performed)) == len(performed)
    assert not {f.step for f in withdrawn} & set(performed), "a withdrawn call never ran"
    assert all(f.seq > end.seq for f in withdrawn), "withdrawn in the ending transaction"
    assert len(after) <= FAST.concurrency, "only calls in flight at the end ran after it"
    assert all(f.get("after_end") == "failed" for f in after), "and they are recorded as late"
    assert client.engine.read(wid)[1] == [], "nothing is left queued"  # type: ignore[index]
    with running_worker(app, store):  # a worker started later finds nothing to run
        time.sleep(0.3)
    assert len(performed) == 5 + len(after)


def test_calls_queued_by_the_ending_decision_itself_are_withdrawn(store: Store) -> None:
    app = App()

    @app.agent()
    def work(ctx: Context) -> None:
        raise AssertionError("never runs")

    @app.supervisor()
    def careless(view: WorkflowView, now: float) -> Decision:
        call = CallAgent(ACTION, "x", 1, "work", 5.0)
        return Decision((call, Complete("done anyway")), "call, then end")

    app.process("careless", careless)
    client = Client(app, store)
    wid = client.start("careless", {}).workflow_id
    assert client.status(wid).state == "completed"
    view = client.view(wid)
    assert view.count("attempt_scheduled") == 1 and view.count("attempt_withdrawn") == 1
    assert client.engine.read(wid)[1] == []  # type: ignore[index]


# -- a success after the rollback is undone ------------------------------------------------------


def test_a_step_that_succeeds_after_the_rollback_is_compensated(
    store: Store, tmp_path: Path
) -> None:
    """Attempt 1 of `hold` times out but its call goes on; the probe answers not_done (the
    service has not finished yet), attempt 2 is refused, the workflow rolls back with
    nothing to undo and ends compensated. Then attempt 1's call returns success: late."""
    path = str(tmp_path / "ledger.db")
    ledger(path).close()
    released = threading.Event()
    app = App()

    @app.agent()
    def hold(ctx: Context) -> str:
        if ctx.attempt == 1:
            released.wait(20)  # far past its timeout: the answer comes late
            with ledger(path) as conn:
                conn.execute(
                    "INSERT INTO effects VALUES (?, 'action', 'hold', 1, 0, 0)",
                    (ctx.idempotency_key,),
                )
            return "held"
        raise PermanentError("refused")

    @app.agent()
    def release(ctx: Context) -> None:
        with ledger(path) as conn:
            conn.execute(
                "INSERT INTO effects VALUES (?, 'compensation', 'hold', ?, 0, 0)",
                (ctx.idempotency_key, ctx.attempt),
            )

    @app.agent()
    def ask(ctx: Context) -> ProbeAnswer:
        return ProbeAnswer.not_done()

    app.workflow(
        "late",
        [Step("hold", hold, compensation=release, probe=ask, retry=QUICK, timeout=0.3)],
    )
    client = Client(app, store)
    wid = client.start("late", {}).workflow_id
    with running_worker(app, store):
        assert client.wait(wid, timeout=15).state == "compensated"
        assert [e[1] for e in effects(path)] == [], "nothing to undo when it ended"
        released.set()
        deadline = time.monotonic() + 15
        while len(effects(path)) < 2:
            assert time.monotonic() < deadline, f"not compensated: {effects(path)}"
            time.sleep(0.05)
    assert [(e[1], e[2]) for e in effects(path)] == [("action", "hold"), ("compensation", "hold")]
    view = client.view(wid)
    assert client.status(wid).state == "compensated", "the end stays final"
    assert view.count("compensation_succeeded") == 1


def test_an_engine_error_in_one_workflow_costs_only_its_own_report(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App()

    @app.agent()
    def ping(ctx: Context) -> None:
        """Never runs: the test reports outcomes itself."""

    @app.supervisor()
    def caller(view: WorkflowView, now: float) -> Decision:
        if view.slot("action:p:1:outcome") is None:
            return Decision((CallAgent(ACTION, "p", 1, "ping", 5.0),), "ping")
        return Decision((Complete("pong"),), "done")

    app.process("caller", caller)
    engine = Engine(store, app.supervisors, plans=app.plans)
    ids = []
    for i in range(3):
        value = {"bad": i == 1}
        started = engine.start(
            new_workflow_id(), app.plans["caller"], value, json.dumps(value), None
        )
        ids.append(started.workflow_id)
    now = engine.clock()  # the store's clock, which stamped the calls due
    calls = [t for t in store.lease_tasks("w", 20, now, now + 30) if t.kind == ACTION]
    applier = engine.applier
    original = applier.apply_txn

    def apply_txn(tx: Any, view: WorkflowView, *args: Any) -> None:
        if view.input.get("bad"):
            raise RuntimeError("an engine bug hit by this workflow only")
        original(tx, view, *args)

    monkeypatch.setattr(applier, "apply_txn", apply_txn)
    decisions = engine.record_outcomes([(t, Outcome("succeeded", {})) for t in calls], "w")
    assert [d is None for d in decisions] == [c.workflow_id == ids[1] for c in calls]
    client = Client(app, store)
    assert [client.status(wid).state for wid in ids] == ["completed", "running", "completed"]
