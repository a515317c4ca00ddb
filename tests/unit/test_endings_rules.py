"""Pure rules of issues 21 and 23, from tables: which decisions can be applied, what a
supervisor's bug becomes, what an operator's action does in each state, and what each
store error is called."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from steadyhand.core import actions
from steadyhand.core.decisions import (
    CallAgent,
    CancelChild,
    Complete,
    Decision,
    EndCompensated,
    Fail,
    RecordFact,
    StartChild,
    WaitUntil,
)
from steadyhand.core.errors import StoreUnavailable
from steadyhand.core.facts import (
    CANCEL_REQUESTED,
    DECISION_REFUSED,
    RETRY_REQUESTED,
    SUPERVISOR_RAISED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    Fact,
    terminal_slot,
)
from steadyhand.core.guard import guarded
from steadyhand.core.plans import Plan
from steadyhand.core.validate import problems
from steadyhand.core.view import WorkflowView
from steadyhand.store import pg_errors, sqlite_errors

PLAN = Plan("p", (), "custom", 50, {})

VALID = [
    Decision(),
    Decision((CallAgent("action", "a", 1, "agent", 5.0, {"results": {"x": [1, "y"]}}),)),
    Decision((WaitUntil(1_800_000_000.5),)),
    Decision((RecordFact("my_fact", {"n": 1}, "a", "slot:1"),)),
    Decision((Complete({"ok": True}),)),
    Decision((EndCompensated("done"),)),
    Decision((Fail("no"),)),
    Decision((StartChild("kid", "other", {"a": 1}), CancelChild("kid", "stop"))),
    Decision([WaitUntil(1.0)]),  # type: ignore[arg-type]  # a list is accepted too
]

INVALID: list[tuple[Any, str]] = [
    (None, "returned None, not a Decision"),
    ({"commands": ()}, "returned dict"),
    (Decision("wait"), "not a tuple of commands"),  # type: ignore[arg-type]
    (Decision((WaitUntil(math.nan),)), "at must be a finite time"),
    (Decision((WaitUntil(-math.inf),)), "at must be a finite time"),
    (Decision((WaitUntil("soon"),)), "at must be a finite time"),  # type: ignore[arg-type]
    (Decision((WaitUntil(True),)), "at must be a finite time"),
    (Decision((Complete({1, 2}),)), "result must be JSON"),
    (Decision((Complete({"x": math.inf}),)), "result must be JSON"),
    (Decision((RecordFact("workflow_completed"),)), "is the engine's own"),
    (Decision((RecordFact("attempt_succeeded", {}, "a"),)), "is the engine's own"),
    (Decision((RecordFact("", {}),)), "kind must be a non-empty string"),
    (Decision((RecordFact("mine", {"d": object()}),)), "data must be JSON"),
    (Decision((CallAgent("action", "a", 1, "agent", 0.0),)), "timeout must be a finite"),
    (Decision((CallAgent("action", "", 1, "agent", 1.0),)), "step must be a non-empty"),
    (Decision((CallAgent("action", "a", 1, "agent", 1.0, {"f": open}),)), "args must be JSON"),
    (Decision((Fail(42),)), "reason must be a string"),  # type: ignore[arg-type]
    (Decision((StartChild("kid", "w", object()),)), "input must be JSON"),
    (Decision(("call the hotel",)), "is not a command"),  # type: ignore[arg-type]
    (Decision((Complete(1), EndCompensated("x"))), "2 commands end the workflow"),
    (Decision(why=None), "Decision.why must be a string"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("decision", VALID, ids=range(len(VALID)))
def test_valid_decisions_have_no_problems(decision: Decision) -> None:
    assert problems(decision) == []


@pytest.mark.parametrize(("decision", "said"), INVALID, ids=range(len(INVALID)))
def test_invalid_decisions_name_the_command_and_the_problem(decision: Any, said: str) -> None:
    found = problems(decision)
    assert found and said in " ".join(found), found


def view(*facts: tuple[str, dict[str, Any] | None, str | None]) -> WorkflowView:
    rows = [Fact(1, "workflow_started", 0.0, slot="started")]
    for kind, data, slot in facts:
        rows.append(Fact(len(rows) + 1, kind, float(len(rows)), slot=slot, data=data))
    return WorkflowView("w1", "p", {}, PLAN, 0.0, tuple(rows))


def test_a_supervisor_that_raises_becomes_a_recorded_failure() -> None:
    def broken(v: WorkflowView, now: float) -> Decision:
        return {}["missing"]  # type: ignore[no-any-return, index]

    decision = guarded(broken, view(), 10.0, "broken")
    record, end = decision.commands
    assert isinstance(record, RecordFact) and record.kind == SUPERVISOR_RAISED
    assert isinstance(end, Fail) and end.reason.startswith("supervisor 'broken' raised KeyError")
    assert record.data["where"].endswith("in broken")
    assert "test_endings_rules.py" in record.data["where"]
    assert 'return {}["missing"]' in record.data["traceback"]
    assert "steadyhand retry" in end.reason and "cancel it to roll back" in end.reason
    assert problems(decision) == [], "what the bug becomes can itself be applied"


def test_an_invalid_decision_becomes_a_refusal_and_an_ended_one_decides_nothing() -> None:
    decision = guarded(lambda v, n: Decision((WaitUntil(math.nan),)), view(), 10.0, "odd")
    record, end = decision.commands
    assert isinstance(record, RecordFact) and record.kind == DECISION_REFUSED
    assert isinstance(end, Fail) and "command 1 (WaitUntil)" in end.reason
    assert record.data["decided"] == ["WaitUntil WaitUntil(at=nan)"]
    ended = view((WORKFLOW_FAILED, {"reason": "x"}, terminal_slot(0)))
    assert guarded(lambda v, n: {}["x"], ended, 10.0).commands == ()  # type: ignore[misc, index]


# -- operator actions ------------------------------------------------------------------------

FAILED = (WORKFLOW_FAILED, {"reason": "x"}, terminal_slot(0))
COMPLETED = (WORKFLOW_COMPLETED, {"result": 1}, terminal_slot(0))
RETRIED = (RETRY_REQUESTED, {"by": "alice"}, "retry:1")
CANCELLED = (CANCEL_REQUESTED, {"by": "bob"}, None)

ACTION_TABLE = [
    ("retry", [FAILED], actions.DONE, [RETRY_REQUESTED]),
    ("retry", [FAILED, RETRIED], actions.ALREADY, []),
    ("retry", [], actions.NOT_APPLICABLE, []),
    ("retry", [COMPLETED], actions.NOT_APPLICABLE, []),
    ("cancel", [], actions.DONE, [CANCEL_REQUESTED]),
    ("cancel", [CANCELLED], actions.ALREADY, []),
    ("cancel", [FAILED], actions.DONE, [RETRY_REQUESTED, CANCEL_REQUESTED]),
    ("cancel", [FAILED, RETRIED], actions.DONE, [CANCEL_REQUESTED]),  # a new round
    ("cancel", [COMPLETED], actions.ENDED, ["cancel_ignored"]),
]


@pytest.mark.parametrize(("action", "history", "result", "kinds"), ACTION_TABLE)
def test_operator_actions_by_state(
    action: str, history: list[Any], result: str, kinds: list[str]
) -> None:
    act = actions.retry if action == "retry" else actions.cancel
    plan = act(view(*history), "why", "me")
    assert plan.status.result == result, plan.status.message
    assert [f.kind for f in plan.facts] == kinds
    assert plan.wake == (result == actions.DONE)
    reopen = [f for f in plan.facts if f.kind == RETRY_REQUESTED]
    assert all(f.slot == f"retry:{view(*history).round + 1}" for f in reopen)


# -- store errors ------------------------------------------------------------------------------


def _sqlite_error(code: int, text: str) -> sqlite3.Error:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


def test_sqlite_errors_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.db"

    def named(code: int, text: str) -> str:
        return sqlite_errors.store_error(_sqlite_error(code, text), path, 15).cause

    assert named(13, "database or disk is full") == "disk_full"
    assert named(5, "database is locked") == "locked"
    assert named(10, "disk I/O error") == "io_error"
    assert named(26, "file is not a database") == "corrupt"
    monkeypatch.setattr("steadyhand.store.sqlite_errors.os.access", lambda *a: False)
    error = sqlite_errors.store_error(_sqlite_error(14, "unable to open database file"), path, 15)
    assert error.cause == "permission_denied" and not isinstance(error, StoreUnavailable)
    assert "permission denied" in str(error) and "-wal" in str(error)


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("connection failed: FATAL:  sorry, too many clients already", "too_many_clients"),
        ('connection failed: FATAL:  password authentication failed for user "x"',
         "authentication_failed"),
        ('connection failed: FATAL:  database "nope" does not exist', "database_missing"),
        ("connection failed: Connection refused\n\tIs the server running", "connection_refused"),
        ("connection failed: FATAL:  the database system is starting up", "connection_refused"),
    ],
)  # fmt: skip
def test_pg_connection_failures_name_the_cause(message: str, cause: str) -> None:
    error = pg_errors.connect_error(psycopg.OperationalError(message), "postgresql://h/db")
    assert error.cause == cause
    assert "postgresql://h/db" in str(error)


def test_pg_disk_full_is_named() -> None:
    exc = psycopg.errors.DiskFull('could not extend file "base/1/2": No space left on device')
    error = pg_errors.store_error(exc, "postgresql://h/db")
    assert isinstance(error, StoreUnavailable) and error.cause == "disk_full"
    assert "Free space" in str(error)
