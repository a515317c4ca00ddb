"""A workflow's whole story in words: its plan step by step, every fact as a sentence, every
supervisor run with what it saw, decided and why, and a verdict saying what a person can do.

Pure (facts in, plain values out), so `steadyhand explain` and the dashboard tell it alike.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.facts import (
    ACTION,
    CANCEL_IGNORED,
    CANCEL_REQUESTED,
    COMPENSATION,
    COMPENSATION_BEGAN,
    DECISION_REFUSED,
    OUTCOME_REPORTED_LATE,
    PHASE_PREFIX,
    RETRY_REQUESTED,
    SUPERVISOR_RAISED,
    SUPERVISOR_RAN,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    Fact,
)
from steadyhand.core.progress import DONE, NOT_STARTED, call_progress
from steadyhand.core.redact import redact
from steadyhand.core.status import Status
from steadyhand.core.view import WorkflowView
from steadyhand.define.tracecontext import trace_id_of
from steadyhand.ops.discovered import discovered, is_code_first
from steadyhand.ops.timetext import when

PHASE_OF_PREFIX = {prefix: phase for phase, prefix in PHASE_PREFIX.items()}
PHASE_NOUN = {ACTION: "attempt", COMPENSATION: "compensation", "probe": "probe"}  # probes: per step
TONE = {  # how a line is coloured: good, bad, warn, decision, operator, or plain
    "succeeded": "good",
    "failed": "bad",
    "timed_out": "warn",
    "lost": "warn",
    "uncertain": "warn",
    WORKFLOW_COMPLETED: "good",
    WORKFLOW_COMPENSATED: "warn",
    WORKFLOW_FAILED: "bad",
    COMPENSATION_BEGAN: "warn",
    SUPERVISOR_RAN: "decision",
    CANCEL_REQUESTED: "operator",
    RETRY_REQUESTED: "operator",
    CANCEL_IGNORED: "operator",
    SUPERVISOR_RAISED: "bad",
    DECISION_REFUSED: "bad",
    "withdrawn": "warn",
}
MAX_VALUE_CHARS = 300
TIMELINE_PAGE = 500  # facts told at once: a workflow with 100,000 events stays readable
TRACE_URL_ENV = "STEADYHAND_TRACE_URL"
_EPOCH = re.compile(r"\bat (\d{9,}\.\d+)\b")


@dataclass(frozen=True)
class StepLine:
    """Where one step of the plan stands: its action and, if any, its compensation."""

    name: str
    action: str
    attempts: int
    compensation: str | None  # None when the step declares no compensation
    undo_attempts: int
    tone: str
    kind: str = "step"  # code-first plans also show sleeps, waits and children
    group: int | None = None  # code-first: steps started together (side by side) share one
    detail: str = ""  # code-first: the agent, a sleep's end, a wait's event and deadline


@dataclass(frozen=True)
class Entry:
    """One fact of the timeline, told as a sentence (plus the decision of a supervisor run)."""

    seq: int
    at: float
    offset: float  # seconds since the workflow started
    kind: str
    step: str | None
    attempt: int | None
    text: str
    tone: str
    saw: str | None = None
    decided: tuple[str, ...] = ()
    why: str | None = None
    decide_ms: float | None = None


@dataclass(frozen=True)
class Story:
    """Everything `explain` shows about one workflow."""

    status: Status
    plan: list[StepLine]
    entries: list[Entry]
    verdict: str
    stuck: str | None
    rounds: int
    total: int = 0  # facts in the whole history (entries may hold one page of them)
    next_after: int | None = None  # the `after` of the next page, None on the last
    trace_id: str | None = None  # the OpenTelemetry trace its start (or a signal) carried

    @property
    def trace_url(self) -> str | None:
        """A link to the trace, from $STEADYHAND_TRACE_URL (e.g. `https://…/trace/{trace_id}`)."""
        template = os.environ.get(TRACE_URL_ENV)
        if not self.trace_id or not template or "{trace_id}" not in template:
            return None
        return template.replace("{trace_id}", self.trace_id)


def tell(
    view: WorkflowView,
    status: Status,
    stuck: str | None = None,
    *,
    after: int = 0,
    limit: int | None = TIMELINE_PAGE,
) -> Story:
    """Build the story of `view` (see the module docstring). The timeline is one page: the
    facts after seq `after`, at most `limit` of them (None: all)."""
    facts = [fact for fact in view.facts if fact.seq > after]
    page = facts if limit is None else facts[: max(limit, 1)]
    more = page[-1].seq if len(page) < len(facts) else None
    entries = [_entry(view, fact) for fact in page]
    verdict = redact(_verdict(view, status, stuck))
    trace_id = trace_id_of(view.facts)
    return Story(
        status,
        plan_lines(view),
        entries,
        verdict,
        stuck,
        view.round,
        len(view.facts),
        more,
        trace_id,
    )


def plan_lines(view: WorkflowView) -> list[StepLine]:
    """Each step of the frozen plan with the state of its action and its compensation (for
    a code-first workflow: each step its replays discovered, see `ops.discovered`)."""
    if is_code_first(view):
        return [StepLine(**line) for line in discovered(view)]
    lines = []
    for spec in view.plan.steps:
        action = call_progress(
            view, ACTION, spec.name, spec.retry, spec.probe is not None, spec.probe_policy
        )
        undo = None
        undo_attempts = 0
        if spec.compensation is not None:
            progress = call_progress(view, COMPENSATION, spec.name, spec.compensation_retry)
            undo_attempts = progress.attempt
            undo = "not needed" if progress.status == NOT_STARTED else _label(progress.status)
            if (
                progress.status == NOT_STARTED
                and action.took_effect
                and view.has(COMPENSATION_BEGAN)
            ):
                undo = "to do"
        tone = "good" if action.status == DONE else ""
        if undo == "succeeded":
            tone = "warn"
        if action.status in ("gave_up", "agent_missing") or undo == "gave up":
            tone = "bad"
        lines.append(
            StepLine(spec.name, _label(action.status), action.attempt, undo, undo_attempts, tone)
        )
    return lines


def _label(status: str) -> str:
    return status.replace("_", " ")


def _entry(view: WorkflowView, fact: Fact) -> Entry:
    prefix, _, rest = fact.kind.partition("_")
    suffix = rest if prefix in PHASE_OF_PREFIX else ""
    entry = Entry(
        seq=fact.seq,
        at=fact.at,
        offset=fact.at - view.created_at,
        kind=fact.kind,
        step=fact.step,
        attempt=fact.attempt,
        text=redact(sentence(fact)),  # facts recorded before redaction existed, too
        tone=TONE.get(fact.kind) or TONE.get(suffix, ""),
    )
    if fact.kind != SUPERVISOR_RAN:
        return entry
    decided = tuple(_readable(str(d), fact.at) for d in fact.get("decided", ()))
    ms = fact.get("decide_ms")
    return replace(
        entry,
        text=f"supervisor run {fact.get('run', '?')}: {'; '.join(decided) or 'wait'}",
        saw=fact.get("saw"),
        decided=decided,
        why=redact(str(fact.get("why"))) if fact.get("why") is not None else None,
        decide_ms=float(ms) if isinstance(ms, int | float) else None,
    )


def _readable(decided: str, at: float) -> str:
    """`check again at 1795364328.03` -> `check again in 0.02s (16:18:48.030)`."""
    match = _EPOCH.search(decided)
    if match is None:
        return decided
    when = float(match.group(1))
    clock = time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d}"
    return decided.replace(match.group(0), f"in {max(0.0, when - at):.2f}s ({clock})")


def sentence(fact: Fact) -> str:
    """One fact as a sentence a person on call can read."""
    prefix, _, suffix = fact.kind.partition("_")
    phase = PHASE_OF_PREFIX.get(prefix)
    if phase is not None and fact.step is not None:
        return _call_sentence(fact, phase, suffix)
    who = f" by {fact.get('by')}" if fact.get("by") else ""
    if fact.kind == WORKFLOW_STARTED:
        at = fact.get("deadline_at")
        if at is None:
            return "started"
        return f"started; deadline {float(fact.get('deadline', 0)):g}s, at {when(float(at))}"
    if fact.kind == CANCEL_REQUESTED:
        return f"cancel requested{who}: {fact.get('reason', '')}"
    if fact.kind == RETRY_REQUESTED and fact.get("rollback"):
        return f"{fact.get('reason', '')}{who}: a new round that compensates what took effect"
    if fact.kind == RETRY_REQUESTED:
        return f"retry requested{who}: {fact.get('reason', '')}; a new round of attempts begins"
    if fact.kind == COMPENSATION_BEGAN:
        return f"rolling back: {fact.get('reason', '')}"
    if fact.kind == WORKFLOW_COMPLETED:
        return f"completed with result {short(fact.get('result'))}"
    if fact.kind == WORKFLOW_COMPENSATED:
        return f"ended compensated: {fact.get('reason', '')}"
    if fact.kind == WORKFLOW_FAILED:
        return f"ended FAILED: {fact.get('reason', '')}"
    if fact.kind == SUPERVISOR_RAISED:
        return (
            f"supervisor {fact.get('supervisor', '')} raised {fact.get('error', '')}"
            f" at {fact.get('where') or 'an unknown line'} (a bug in supervisor code)"
        )
    if fact.kind == DECISION_REFUSED:
        what = "; ".join(str(p) for p in fact.get("problems", ()))
        return f"decision of supervisor {fact.get('supervisor', '')} refused: {what}"
    if fact.kind == CANCEL_IGNORED:
        return f"cancel ignored{who}: the workflow had already ended {fact.get('state', '')}"
    if fact.kind == OUTCOME_REPORTED_LATE:
        return (
            f"{fact.get('phase', 'call')} {fact.get('attempt', '')} of {fact.step} answered late "
            f"({fact.get('outcome')}) after it was recorded as {fact.get('recorded')}"
        )
    details = ", ".join(f"{k}={short(v)}" for k, v in (fact.data or {}).items() if k != "trace")
    return fact.kind.replace("_", " ") + (f": {details}" if details else "")


def _call_sentence(fact: Fact, phase: str, suffix: str) -> str:
    what = f"{PHASE_NOUN[phase]} {fact.attempt} of {fact.step}"
    worker = f" on {fact.get('worker')}" if fact.get("worker") else ""
    took = f" after {fact.get('duration_ms')} ms" if fact.get("duration_ms") is not None else ""
    if suffix == "scheduled":
        return f"{what} scheduled: agent {fact.get('agent')} (timeout {fact.get('timeout')}s)"
    if suffix == "succeeded":
        if phase == "probe":
            return f"{what} answered {fact.get('answer')}{worker}"
        result = fact.get("result")
        shown = f": {short(result)}" if result is not None else ""
        late = f" (late: after the workflow ended {fact.get('after_end')})"
        return f"{what} succeeded{worker}{took}{shown}" + (late if fact.get("after_end") else "")
    if suffix == "failed":
        kind = "permanently" if fact.get("permanent") else "for a passing reason"
        if fact.get("agent_missing"):
            kind = "(agent missing)"
        return f"{what} failed {kind}{worker}{took}: {fact.get('error', '')}"
    if suffix == "timed_out":
        return f"{what} timed out{worker}: {fact.get('error', '')}; the outcome is unknown"
    if suffix == "lost":
        return f"{what} lost: {fact.get('error', '')}; the outcome is unknown"
    if suffix == "uncertain":
        return (
            f"{what} ended uncertain{worker}: {fact.get('error', '')}; it may have taken "
            "effect (probed before a retry, undone on rollback)"
        )
    if suffix == "withdrawn":
        return f"{what} withdrawn: {fact.get('reason', '')}"
    return f"{what} {suffix.replace('_', ' ')}"


def _verdict(view: WorkflowView, status: Status, stuck: str | None) -> str:
    """What happened in the end, or what is happening now, and what a person can do."""
    if status.state == "completed":
        return "Completed: every step succeeded. Nothing to do."
    if status.state == "compensated":
        return f"Compensated (rolled back cleanly): {status.reason}. Nothing is left half-done."
    if status.state == "failed":
        return (
            f"FAILED: {status.reason}\nA person must look: fix the cause, then "
            f"`steadyhand retry {view.workflow_id}` to resume with a new round of attempts "
            f"(or `steadyhand cancel {view.workflow_id}` to roll back what can be)."
        )
    now_doing = ""
    if status.step:
        now_doing = f"; now: {status.step} ({status.phase}, attempt {status.attempt})"
    if stuck:
        return (
            f"STUCK ({status.state}{now_doing}): {stuck}. Check that workers are running "
            f"against this store; `steadyhand cancel {view.workflow_id}` rolls it back."
        )
    if status.state == "compensating":
        return f"Rolling back: {status.reason}{now_doing}."
    if status.state == "waiting":
        return f"Waiting for its next check{now_doing}."
    return f"Running{now_doing}."


def short(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A value as compact JSON, cut to `limit` characters."""
    text = jsoncodec.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
