"""The plan of a code-first workflow as operators see it: the steps its replays discovered,
in order, read from the facts (its frozen plan lists none).

Steps first scheduled by the same supervisor run ran side by side (a `wf.gather` or a
`wf.map` window) and share a branch group; sleeps show until when, waits their event and
deadline, children their id. Pure: facts in, lines out.
"""

from __future__ import annotations

import time
from typing import Any

from steadyhand.core.facts import (
    ACTION,
    CHILD_STARTED,
    COMPENSATION,
    COMPENSATION_BEGAN,
    EVENT_RECEIVED,
    SLEEP_BEGAN,
    SUPERVISOR_RAN,
    WAIT_BEGAN,
    call_kind,
)
from steadyhand.core.plans import RetryPolicy
from steadyhand.core.progress import DONE, NOT_STARTED, call_progress
from steadyhand.core.slots import wait_slot
from steadyhand.core.view import WorkflowView

SCHEDULED_ACTION = call_kind(ACTION, "scheduled")
_KINDS = {
    SCHEDULED_ACTION: "step",
    CHILD_STARTED: "child",
    SLEEP_BEGAN: "sleep",
    WAIT_BEGAN: "wait",
}


def is_code_first(view: WorkflowView) -> bool:
    return bool(view.plan.options.get("code_first"))


def discovered(view: WorkflowView) -> list[dict[str, Any]]:
    """One dict per discovered step (name, kind, action, attempts, compensation,
    undo_attempts, tone, group, detail), in the order the replays reached them."""
    firsts: dict[str, tuple[str, int, Any]] = {}
    run = 0
    for fact in view.facts:
        if fact.kind == SUPERVISOR_RAN:
            run += 1
        kind = _KINDS.get(fact.kind)
        if kind is not None and fact.step is not None and fact.step not in firsts:
            firsts[fact.step] = (kind, run, fact)
    together: dict[int, int] = {}
    for _, run_no, _ in firsts.values():
        together[run_no] = together.get(run_no, 0) + 1
    groups: dict[int, int] = {}
    consumed: dict[str, int] = {}
    last_at = view.facts[-1].at if view.facts else 0.0
    lines = []
    for name, (kind, run_no, fact) in firsts.items():
        group = None
        if together[run_no] > 1:
            group = groups.setdefault(run_no, len(groups) + 1)
        line: dict[str, Any] = {"name": name, "kind": kind, "group": group, "detail": ""}
        line.update(attempts=0, compensation=None, undo_attempts=0, tone="")
        if kind == "step":
            _step(view, name, fact.get("agent"), line)
        elif kind == "sleep":
            until = float(fact.get("until") or 0.0)
            over = last_at >= until
            line.update(action="slept" if over else "sleeping", tone="good" if over else "")
            line["detail"] = f"until {_clock(until)}"
        elif kind == "wait":
            _wait(view, name, fact, consumed, line)
        else:
            line["action"] = "started" if not fact.get("error") else "could not start"
            line["detail"] = f"child {fact.get('workflow')} {fact.get('child_id')}"
            line["tone"] = "bad" if fact.get("error") else ""
        lines.append(line)
    return lines


def _step(view: WorkflowView, name: str, agent: Any, line: dict[str, Any]) -> None:
    tries = view.count(SCHEDULED_ACTION, name)
    lenient = RetryPolicy(max_attempts=tries + 1)  # the policy is in code: never guess "gave up"
    action = call_progress(view, ACTION, name, lenient, has_probe=True)
    label = action.status.replace("_", " ")
    if action.status == "retry" and action.reason.startswith("permanent"):
        label = "gave up"
    line.update(action=label, attempts=action.attempt, detail=f"agent {agent}")
    undo = call_progress(view, COMPENSATION, name, RetryPolicy(max_attempts=1_000))
    if undo.status != NOT_STARTED:
        line.update(compensation=undo.status.replace("_", " "), undo_attempts=undo.attempt)
    elif view.has(COMPENSATION_BEGAN) and action.took_effect:
        line["compensation"] = "kept or to do"
    tone = "good" if action.status == DONE else ""
    if undo.status == DONE:
        tone = "warn"
    if label == "gave up":
        tone = "bad"
    line["tone"] = tone


def _wait(
    view: WorkflowView, name: str, fact: Any, consumed: dict[str, int], line: dict[str, Any]
) -> None:
    event = str(fact.get("event"))
    until = fact.get("until")
    deadline = f", deadline {_clock(float(until))}" if until is not None else ", no deadline"
    line["detail"] = f"event {event}{deadline}"
    if view.slot(wait_slot(name, "timed_out")) is not None:
        line.update(action="timed out", tone="bad")
        return
    index = consumed.get(event, 0)
    if len(view.of(EVENT_RECEIVED, event)) > index:
        consumed[event] = index + 1
        line.update(action="received", tone="good")
    else:
        line["action"] = "waiting"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def in_progress(lines: list[dict[str, Any]]) -> str:
    """What a code-first workflow is doing now, for `status`: open steps, side by side."""
    open_words = ("in flight", "retry", "needs probe", "probing", "sleeping", "waiting", "started")
    parts = []
    for index, line in enumerate(lines):
        if line["kind"] == "child" and index < len(lines) - 1:
            continue  # the parent went on: that child ended
        if line["action"] in open_words:
            mark = f"∥{line['group']} " if line["group"] else ""
            what = line["name"] if line["kind"] == "step" else f"{line['kind']} {line['name']}"
            parts.append(f"{mark}{what}: {line['action']} ({line['detail']})")
    return "; ".join(parts)
