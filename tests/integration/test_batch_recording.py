"""Recording several outcomes in one transaction (`Engine.record_outcomes`) must leave the
same history as recording them one by one, on SQLite and PostgreSQL alike.

These tests drive the engine directly (no worker threads) with a clock they advance by
hand, so every round of "lease what is due, report what the calls did" is deterministic
and a batch run can be compared fact for fact with a one-by-one run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from steadyhand import (
    App,
    CallAgent,
    CancelChild,
    Complete,
    Context,
    Decision,
    RetryPolicy,
    StartChild,
    Step,
    WorkflowView,
)
from steadyhand.core.errors import StoreError, StoreUnavailable
from steadyhand.core.facts import ACTION, OUTCOME_REPORTED_LATE, OUTCOMES, call_slot
from steadyhand.core.records import SUPERVISE, Task
from steadyhand.define.client import new_workflow_id
from steadyhand.engine.answers import Outcome
from steadyhand.engine.engine import Engine
from steadyhand.engine.writes import Claim
from steadyhand.store import Store

# No jitter: a retry's backoff then depends on the facts only, not on the workflow's id, so
# two runs with different ids decide at the same (fake) moments.
QUICK = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, jitter=0.0)
OWNER = "worker-a"
LEASE = 30.0

app = App()


@app.agent()
def act(ctx: Context) -> None:
    """Never runs: these tests report outcomes themselves."""


@app.agent()
def undo(ctx: Context) -> None:
    """Never runs: these tests report outcomes themselves."""


def _step(name: str) -> Step:
    return Step(name, act, compensation=undo, retry=QUICK, compensation_retry=QUICK, timeout=5)


app.workflow("pair", [_step("a"), _step("b")])
app.workflow("single", [_step("only")])


@app.supervisor()
def watcher(view: WorkflowView, now: float) -> Decision:
    """Start a child and ping a service at once; when the ping answers, cancel the child and
    end. Its decision locks the child inside the parent's transaction (`CancelChild`)."""
    if view.terminal is not None:
        return Decision((), "ended")
    if not view.has("child_started", "kid"):
        start = StartChild("kid", "single", {})
        ping = CallAgent(ACTION, "ping", 1, "act", 5.0)
        return Decision((start, ping), "start the child and ping")
    if view.has("attempt_succeeded", "ping"):
        return Decision((CancelChild("kid", "the ping said stop"), Complete("stopped")), "stop")
    return Decision((), "waiting for the ping")


app.process("watch", watcher)


@app.supervisor()
def fan(view: WorkflowView, now: float) -> Decision:
    """Call x and y in parallel and complete once both answered. While a call is open it is
    asked for again, as `CallAgent` allows ("only makes sure its task exists")."""
    if view.terminal is not None:
        return Decision((), "ended")
    open_calls = tuple(
        CallAgent(ACTION, step, 1, "act", 5.0)
        for step in ("x", "y")
        if view.slot(call_slot(ACTION, step, 1, "outcome")) is None
    )
    if open_calls:
        return Decision(open_calls, "waiting for x and y")
    return Decision((Complete("both answered"),), "both answered")


app.process("fan", fan)


class FakeClock:
    """A clock the test moves by hand: the engine, the leases and the backoffs all read it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ok(**result: Any) -> Outcome:
    return Outcome("succeeded", {"result": result or None})


def failed(*, permanent: bool) -> Outcome:
    return Outcome(
        "failed", {"error": "503" if not permanent else "refused", "permanent": permanent}
    )


def engine_for(store: Store, clock: Callable[[], float] = time.time) -> Engine:
    return Engine(store, app.supervisors, clock=clock, plans=app.plans)


def start(engine: Engine, name: str, value: Any = None) -> str:
    """Start workflow `name` through the engine, so its first facts carry the engine's clock."""
    text = json.dumps(value)
    return engine.start(new_workflow_id(), app.plans[name], value, text, None).workflow_id


def facts_of(engine: Engine, workflow_id: str) -> WorkflowView:
    found = engine.read(workflow_id)
    assert found is not None, f"no workflow {workflow_id}"
    return found[0]


def tasks_of(store: Store, workflow_id: str) -> list[Task]:
    with store.snapshot() as tx:
        return tx.workflow_tasks(workflow_id)


def kinds(view: WorkflowView) -> list[tuple[str, str | None, int | None]]:
    return [(f.kind, f.step, f.attempt) for f in view.facts]


def outcome_facts(view: WorkflowView) -> list[tuple[str, str | None, int | None]]:
    suffixes = tuple(f"_{o}" for o in OUTCOMES)
    return [k for k in kinds(view) if k[0].endswith(suffixes)]


def lease_all(store: Store, clock: Callable[[], float], owner: str = OWNER) -> list[Task]:
    now = clock()
    return store.lease_tasks(owner, 100, now, now + LEASE)


def first_calls(store: Store, engine: Engine, *names: str) -> list[Task]:
    """Start one workflow per name and lease their first calls, in the order of `names`."""
    ids = [start(engine, name) for name in names]
    leased = {t.workflow_id: t for t in lease_all(store, engine.clock) if t.is_call}
    assert set(leased) == set(ids), "each start schedules its first call at once"
    return [leased[wid] for wid in ids]


# -- (a) a batch decides exactly as one-by-one does ------------------------------------------

# What each call of each workflow reports, by (phase, step, attempt); anything unlisted succeeds.
SCRIPTS: dict[str, tuple[str, dict[tuple[str, str, int], Outcome]]] = {
    "smooth": ("pair", {}),
    "retried": ("pair", {(ACTION, "b", 1): failed(permanent=False)}),
    "rolled_back": ("pair", {(ACTION, "b", 1): failed(permanent=True)}),
    "short": ("single", {}),
}


def drive(
    store: Store, engine: Engine, clock: FakeClock, *, batch: bool
) -> tuple[dict[str, WorkflowView], list[list[tuple[str, list[str]]]]]:
    """Start every scripted workflow, then round after round lease what is due, run the
    supervise tasks and report every call (as one batch, or one report at a time) until
    no task is left. Returns each workflow's facts and what was decided, round by round."""
    ids = {label: start(engine, name) for label, (name, _) in SCRIPTS.items()}
    label_of = {wid: label for label, wid in ids.items()}
    rounds: list[list[tuple[str, list[str]]]] = []
    for _ in range(30):
        if not any(tasks_of(store, wid) for wid in ids.values()):
            return {label: facts_of(engine, wid) for label, wid in ids.items()}, rounds
        leased = sorted(lease_all(store, clock), key=lambda t: label_of[t.workflow_id])
        decided: list[tuple[str, list[str]]] = []
        for task in (t for t in leased if t.kind == SUPERVISE):
            decision = engine.supervise(task)
            decided.append((label_of[task.workflow_id], decision.describe() if decision else []))
        calls = [t for t in leased if t.is_call]
        reports = []
        for task in calls:
            assert task.step is not None and task.attempt is not None
            script = SCRIPTS[label_of[task.workflow_id]][1]
            reports.append((task, script.get((task.kind, task.step, task.attempt), ok())))
        if batch:
            decisions = engine.record_outcomes(reports, OWNER)
        else:
            decisions = [engine.record_outcome(task, outcome, OWNER) for task, outcome in reports]
        for task, decision in zip(calls, decisions, strict=True):
            decided.append((label_of[task.workflow_id], decision.describe() if decision else []))
        rounds.append(decided)
        clock.advance(1.0)  # past any backoff: the next round finds the retries due
    raise AssertionError("the workflows did not settle within 30 rounds")


def test_a_batch_records_and_decides_exactly_as_one_by_one(store: Store) -> None:
    """The batch path reads facts for many workflows at once and extends its views in
    memory; any drift from what a fresh read would show changes a decision or a fact."""
    base = time.time()
    batch_clock, single_clock = FakeClock(base), FakeClock(base)
    batched, batch_rounds = drive(store, engine_for(store, batch_clock), batch_clock, batch=True)
    alone, alone_rounds = drive(store, engine_for(store, single_clock), single_clock, batch=False)

    for label in SCRIPTS:
        assert kinds(batched[label]) == kinds(alone[label]), label
        outcomes = outcome_facts(batched[label])
        assert len(outcomes) == len(set(outcomes)), f"{label}: an outcome was recorded twice"
    assert batch_rounds == alone_rounds
    # The first round is one batch of every workflow's first call.
    assert [label for label, _ in batch_rounds[0]] == sorted(SCRIPTS)
    assert {label: view.state for label, view in batched.items()} == {
        "smooth": "completed",
        "retried": "completed",
        "rolled_back": "compensated",
        "short": "completed",
    }
    assert outcome_facts(batched["retried"]) == [
        ("attempt_succeeded", "a", 1),
        ("attempt_failed", "b", 1),
        ("attempt_succeeded", "b", 2),
    ]
    assert outcome_facts(batched["rolled_back"]) == [
        ("attempt_succeeded", "a", 1),
        ("attempt_failed", "b", 1),
        ("compensation_succeeded", "a", 1),
    ]


# -- (b) an unknown workflow costs only its own report ---------------------------------------


def test_a_report_for_an_unknown_workflow_is_dropped_and_the_others_recorded(
    store: Store,
) -> None:
    """A task can outlive its workflow's rows (the queue is operational, not history); its
    report must not sink the batch, and its task must not be leased again and again."""
    engine = engine_for(store)
    first, second = first_calls(store, engine, "pair", "pair")
    now = time.time()
    payload = {"agent": "act", "timeout": 5.0, "key": "ghost:a"}
    with store.transaction() as tx:
        assert tx.insert_call_task("no-such-workflow", ACTION, "a", 1, payload, now, now)
    [ghost] = lease_all(store, engine.clock)
    assert ghost.workflow_id == "no-such-workflow"

    decisions = engine.record_outcomes([(first, ok()), (ghost, ok()), (second, ok())], OWNER)

    assert decisions[1] is None
    assert decisions[0] is not None and decisions[2] is not None
    assert tasks_of(store, "no-such-workflow") == []
    for task in (first, second):
        view = facts_of(engine, task.workflow_id)
        assert view.count("attempt_succeeded", "a") == 1
        assert view.count("attempt_scheduled", "b") == 1
        pending = [(t.kind, t.step, t.attempt) for t in tasks_of(store, task.workflow_id)]
        assert pending == [(ACTION, "b", 1)], "a's task is consumed, b's is queued"


# -- (c) the same report twice is recorded once ----------------------------------------------


def test_the_same_report_twice_in_a_batch_is_recorded_once(store: Store) -> None:
    """A worker may resend a report (its first commit's answer was lost); the second copy is
    recognised as its own earlier record: no late report, no second decision."""
    engine = engine_for(store)
    twice, once = first_calls(store, engine, "pair", "pair")
    outcome = ok(booked="a")

    decisions = engine.record_outcomes([(twice, outcome), (twice, outcome)], OWNER)
    engine.record_outcome(once, outcome, OWNER)

    assert decisions[0] is not None and decisions[1] is None
    view = facts_of(engine, twice.workflow_id)
    assert kinds(view) == kinds(facts_of(engine, once.workflow_id))
    assert view.count("attempt_succeeded", "a") == 1
    assert not view.has(OUTCOME_REPORTED_LATE)

    # Resent after the commit went through: still nothing new.
    assert engine.record_outcomes([(twice, outcome)], OWNER) == [None]
    assert kinds(facts_of(engine, twice.workflow_id)) == kinds(view)


# -- (d) a different second outcome is a late report -----------------------------------------


@pytest.mark.parametrize("together", [True, False], ids=["same-batch", "later-batch"])
def test_a_second_different_outcome_for_an_attempt_is_recorded_late(
    store: Store, together: bool
) -> None:
    """An attempt has one outcome; a contradicting report (a timeout that fired while the
    answer was on its way) is kept for people to read but changes nothing decided."""
    engine = engine_for(store)
    task, other = first_calls(store, engine, "pair", "pair")
    late = Outcome("timed_out", {"error": "no answer within 5s"})
    if together:
        engine.record_outcomes([(task, ok()), (other, ok()), (task, late)], OWNER)
    else:
        engine.record_outcomes([(task, ok()), (other, ok())], OWNER)
        engine.record_outcomes([(task, late), (other, ok())], OWNER)

    view = facts_of(engine, task.workflow_id)
    assert outcome_facts(view) == [("attempt_succeeded", "a", 1)]
    [reported] = view.of(OUTCOME_REPORTED_LATE)
    assert (reported.step, reported.attempt) == ("a", 1)
    assert reported.get("outcome") == "timed_out"
    assert reported.get("recorded") == "attempt_succeeded"
    assert reported.get("worker") == OWNER
    assert view.count("attempt_scheduled", "b") == 1, "the late report schedules nothing new"
    assert facts_of(engine, other.workflow_id).count(OUTCOME_REPORTED_LATE) == 0


# -- (e) hand-off: the next calls come back leased -------------------------------------------


def test_a_claim_receives_each_next_call_already_leased(store: Store) -> None:
    """The worker that decided runs the next call itself without a lease commit; nobody
    else may lease it meanwhile, and only calls are handed off, never a finished workflow."""
    clock = FakeClock(time.time())
    engine = engine_for(store, clock)
    first, second, short = first_calls(store, engine, "pair", "pair", "single")
    claim = Claim(OWNER, lease_seconds=LEASE)

    decisions = engine.record_outcomes(
        [(first, ok()), (second, ok()), (short, ok())], OWNER, claim=claim
    )

    assert all(d is not None for d in decisions)
    handed = sorted((t.workflow_id, t.kind, t.step, t.attempt) for t in claim.tasks)
    assert handed == sorted(
        [(first.workflow_id, ACTION, "b", 1), (second.workflow_id, ACTION, "b", 1)]
    )
    for task in claim.tasks:
        assert task.lease_owner == OWNER
        assert task.lease_expires_at == pytest.approx(clock() + LEASE)
        [stored] = tasks_of(store, task.workflow_id)
        assert (stored.id, stored.lease_owner) == (task.id, OWNER)
    assert facts_of(engine, short.workflow_id).state == "completed"
    assert store.lease_tasks("worker-b", 100, clock(), clock() + LEASE) == []
    assert store.renew_leases(OWNER, [t.id for t in claim.tasks], clock() + LEASE) == 2


# -- (f) a batch the database refuses is recorded report by report ----------------------------


def test_a_batch_the_database_refuses_is_recorded_one_by_one(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A parent that cancels its child locks and writes the child outside the batch's
    buffer; with the child's own report in the same batch, both append the child's next
    seq and the database refuses the whole transaction. Each report must still land."""
    engine = engine_for(store)
    parent = start(engine, "watch")
    child = f"{parent}.kid"
    leased = lease_all(store, engine.clock)
    [wake_child] = [t for t in leased if t.kind == SUPERVISE]
    [ping] = [t for t in leased if t.is_call]
    assert (wake_child.workflow_id, ping.workflow_id) == (child, parent)
    engine.supervise(wake_child)
    [child_call] = lease_all(store, engine.clock)
    assert child_call.workflow_id == child

    claim = Claim(OWNER, lease_seconds=LEASE)
    with caplog.at_level(logging.WARNING, logger="steadyhand.engine"):
        decisions = engine.record_outcomes(
            [(child_call, ok(done="child")), (ping, ok(pong=True))], OWNER, claim=claim
        )

    assert any("recording them one by one" in r.getMessage() for r in caplog.records), (
        "the batch was meant to be refused; this test no longer provokes the fallback"
    )
    assert all(d is not None for d in decisions)
    kid, top = facts_of(engine, child), facts_of(engine, parent)
    assert outcome_facts(kid) == [("attempt_succeeded", "only", 1)]
    assert outcome_facts(top) == [("attempt_succeeded", "ping", 1)]
    assert kid.state == "completed" and top.state == "completed"
    assert kid.count("cancel_requested") == 1 and top.count("child_cancel_requested") == 1
    assert claim.tasks == [], "nothing is left to call, so nothing was handed off"
    for workflow_id in (parent, child):
        assert not any(t.is_call for t in tasks_of(store, workflow_id))


# -- two reports for one workflow in one batch ------------------------------------------------


@pytest.mark.parametrize("with_claim", [False, True], ids=["queued", "handed-off"])
def test_parallel_calls_of_one_workflow_reported_in_one_batch_leave_no_task(
    store: Store, with_claim: bool
) -> None:
    """A supervisor with calls in parallel re-asks for the ones still open. One by one, that
    finds the open call's task and adds nothing; a batch must do the same, or a call whose
    outcome is already recorded runs again."""
    engine = engine_for(store)
    batched, alone = start(engine, "fan"), start(engine, "fan")
    leased = lease_all(store, engine.clock)
    calls = {(t.workflow_id, t.step): t for t in leased}
    assert len(calls) == 4
    claim = Claim(OWNER, lease_seconds=LEASE) if with_claim else None

    reports = [(calls[batched, "x"], ok()), (calls[batched, "y"], ok())]
    engine.record_outcomes(reports, OWNER, claim=claim)
    for step in ("x", "y"):
        engine.record_outcome(calls[alone, step], ok(), OWNER, claim=claim)

    assert kinds(facts_of(engine, batched)) == kinds(facts_of(engine, alone))
    assert facts_of(engine, batched).state == "completed"
    assert tasks_of(store, alone) == []
    assert tasks_of(store, batched) == [], "a completed workflow still has a call queued"
    assert claim is None or claim.tasks == [], "a recorded call was handed off to run again"


# -- (g) heartbeats ---------------------------------------------------------------------------


def test_renew_leases_renews_only_the_owners_tasks_and_counts_them(store: Store) -> None:
    engine = engine_for(store)
    for _ in range(3):
        start(engine, "single")
    now = time.time()
    mine = store.lease_tasks(OWNER, 2, now, now + 5)
    theirs = store.lease_tasks("worker-b", 10, now, now + 5)
    assert (len(mine), len(theirs)) == (2, 1)
    everything = [t.id for t in mine + theirs]

    assert store.renew_leases(OWNER, everything, now + 60) == 2
    assert store.renew_leases(OWNER, [], now + 60) == 0
    expiry = {t.id: t.lease_expires_at for t in _all_tasks(store, mine + theirs)}
    assert all(expiry[t.id] == pytest.approx(now + 60) for t in mine)
    assert expiry[theirs[0].id] == pytest.approx(now + 5), "another owner's lease is untouched"

    store.release_leases(OWNER, everything)
    assert store.renew_leases(OWNER, everything, now + 90) == 0, "released: no longer ours"
    assert store.renew_leases("worker-b", everything, now + 90) == 1


def test_renew_leases_skips_a_task_another_transaction_holds(store: Store) -> None:
    """On PostgreSQL a heartbeat must not wait for a row that a batch is finishing (it could
    close a lock cycle with that batch); the next heartbeat catches up."""
    if store.dialect == "sqlite":
        pytest.skip("SQLite serialises writers: there is no row another writer holds")
    engine = engine_for(store)
    start(engine, "single")
    start(engine, "single")
    now = time.time()
    held, free = store.lease_tasks(OWNER, 10, now, now + 5)
    renewed: list[int] = []
    with store.transaction() as tx:
        assert tx.lock_task(held.id) is not None
        heartbeat = threading.Thread(
            target=lambda: renewed.append(store.renew_leases(OWNER, [held.id, free.id], now + 60)),
            daemon=True,
        )
        heartbeat.start()
        heartbeat.join(timeout=10)
        assert not heartbeat.is_alive(), "the heartbeat waited for a locked row"
    assert renewed == [1]
    assert store.renew_leases(OWNER, [held.id, free.id], now + 60) == 2


def _all_tasks(store: Store, tasks: Sequence[Task]) -> list[Task]:
    found: list[Task] = []
    for workflow_id in sorted({t.workflow_id for t in tasks}):
        found += tasks_of(store, workflow_id)
    return found


# -- the store goes away in the middle of recording a batch ------------------------------------


class _FlakyStore:
    """The store, but the transactions listed in `plan` fail as they commit (rolled back):
    an exception instance to raise, or None to let that transaction through."""

    def __init__(self, inner: Store, plan: list[Exception | None]) -> None:
        self._inner = inner
        self.plan = plan

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        failure = self.plan.pop(0) if self.plan else None
        with self._inner.transaction() as tx:
            yield tx
            if failure is not None:
                raise failure


@pytest.mark.parametrize(
    "plan",
    [
        [StoreUnavailable("connection lost")],
        [StoreError("refused"), None, StoreUnavailable("failover")],
    ],
    ids=["batch-lost", "lost-while-recording-one-by-one"],
)
def test_no_outcome_of_a_batch_is_dropped_when_the_store_goes_away(
    store: Store, plan: list[Exception | None]
) -> None:
    """An unavailable store is not a refusal: `record_outcomes` must raise (the worker then
    retries the whole batch) instead of logging the unrecorded reports and dropping them,
    which would leave their calls to be run again after their leases expire."""
    engine = engine_for(store)
    calls = first_calls(store, engine, "single", "single", "single")
    reports = [(task, ok(n=n)) for n, task in enumerate(calls)]
    flaky = Engine(_FlakyStore(store, list(plan)), app.supervisors, plans=app.plans)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        flaky.record_outcomes(reports, OWNER)
    flaky.record_outcomes(reports, OWNER)  # what the worker's retry does
    for task in calls:
        view = facts_of(engine, task.workflow_id)
        assert outcome_facts(view) == [("attempt_succeeded", "only", 1)], view.workflow_id
        assert view.state == "completed"
        assert not any(t.is_call for t in tasks_of(store, task.workflow_id))
