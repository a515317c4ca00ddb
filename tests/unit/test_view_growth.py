"""A view grown by the facts its transaction is about to write answers every question as a
view built from scratch does (its indexes are extended, not rebuilt), and a workflow's
open calls are read from its facts (an ending asks the store for queued calls only then)."""

from __future__ import annotations

from typing import Any

import pytest

from steadyhand.core.facts import RETRY_REQUESTED, Fact, call_slot, terminal_slot
from steadyhand.core.jsoncodec import UNDECODABLE
from steadyhand.core.plans import Plan
from steadyhand.core.view import WorkflowView
from steadyhand.engine.apply import has_open_calls

PLAN = Plan("p", (), "saga", 50, {})


def fact(seq: int, kind: str, step: str | None = None, attempt: int | None = None,
         slot: str | None = None, data: dict[str, Any] | None = None) -> Fact:  # fmt: skip
    return Fact(seq, kind, float(seq), step, attempt, slot, data)


def view(*facts: Fact) -> WorkflowView:
    return WorkflowView("w1", "p", {}, PLAN, 0.0, facts)


HISTORY = (
    fact(1, "workflow_started", slot="started"),
    fact(2, "attempt_scheduled", "a", 1, call_slot("action", "a", 1, "scheduled")),
    fact(3, "supervisor_ran", data={"run": 1}),
)
MORE = (
    fact(4, "attempt_succeeded", "a", 1, call_slot("action", "a", 1, "outcome")),
    fact(5, "supervisor_ran", data={"run": 2}),
    fact(6, "attempt_scheduled", "b", 1, call_slot("action", "b", 1, "scheduled")),
)


KINDS = ("supervisor_ran", "attempt_scheduled", "attempt_succeeded")


def answers(v: WorkflowView) -> tuple[Any, ...]:
    return (
        v.facts,
        v.last_seq,
        [v.slot(f.slot) for f in (*HISTORY, *MORE, fact(9, "x", slot="nowhere")) if f.slot],
        [v.of(kind, step) for kind in KINDS for step in (None, "a", "b")],
        v.count("supervisor_ran"),
        v.latest("attempt_scheduled"),
        v.round,
        v.round_start,
        v.terminal,
        v.undecodable,
        v.supervisor_runs_this_round(),
    )


@pytest.mark.parametrize("read_first", [True, False])
def test_a_grown_view_answers_as_one_built_from_scratch(read_first: bool) -> None:
    small = view(*HISTORY)
    if read_first:  # the indexes exist before the view grows
        answers(small)
    grown = small.with_facts(MORE)
    assert answers(grown) == answers(view(*HISTORY, *MORE))
    assert answers(small) == answers(view(*HISTORY)), "the smaller view is unchanged"


def test_growing_by_a_retry_or_an_undecodable_fact_is_seen() -> None:
    small = view(*HISTORY)
    answers(small)
    ended = small.with_facts([fact(4, "workflow_failed", slot=terminal_slot(0))])
    assert ended.terminal is not None
    retried = ended.with_facts([fact(5, RETRY_REQUESTED, data={})])
    assert (retried.round, retried.round_start, retried.terminal) == (1, 5, None)
    broken = small.with_facts([fact(4, "event_received", data={UNDECODABLE: "too deep"})])
    assert broken.undecodable == "fact #4 (event_received): too deep"


def test_open_calls_are_scheduled_calls_without_an_outcome() -> None:
    assert has_open_calls(view(*HISTORY))
    assert has_open_calls(view(*HISTORY, *MORE))
    done = fact(7, "attempt_failed", "b", 1, call_slot("action", "b", 1, "outcome"))
    assert not has_open_calls(view(*HISTORY, *MORE, done))
    probe = fact(8, "probe_scheduled", "b", 1, call_slot("probe", "b", 1, "scheduled"))
    assert has_open_calls(view(*HISTORY, *MORE, done, probe))
    assert not has_open_calls(view(fact(1, "workflow_started", slot="started")))
