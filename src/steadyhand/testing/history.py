"""Replay a recorded history against the code you are about to deploy.

Give it what `steadyhand explain <id> --json` printed for a workflow (or `Run.history()`):
every supervisor run it recorded is replayed with the new code over the facts that run saw,
at the time it ran (as if the new code had been deployed just then), and once more over the
whole history. A replay that stops because the code changed under the workflow is a
*problem*: deploying would fail workflows in that state; guard the change with
`wf.patched("change-id")` (or keep the old code until such workflows have ended). Where the
new code merely asks for other calls than the recorded run did (a new path, taken by
workflows that had not got that far), that is listed in `differences`, for information.

What the history cannot tell is left out of the comparison: how a child ended (the parent's
facts only say it was started), and calls held back by an open circuit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.facts import SUPERVISOR_RAN, Fact
from steadyhand.core.guard import guarded
from steadyhand.core.slots import STARTED, call_slot, child_slot, patch_slot, sleep_slot, wait_slot
from steadyhand.core.view import WorkflowView
from steadyhand.define.app import App

CHANGED = "changed under this running workflow"
_COMPARED = ("call ", "start child ")


@dataclass
class ReplayReport:
    """What replaying one history found: `problems` in words (empty when it replays)."""

    workflow_id: str
    runs: int = 0  # supervisor runs replayed
    problems: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # new code decides otherwise there

    @property
    def ok(self) -> bool:
        return not self.problems


def load_history(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    """A history from `explain --json` output: a dict, a JSON string, or a file path."""
    if isinstance(source, Mapping):
        return source
    text = str(source)
    if isinstance(source, Path) or not text.lstrip().startswith("{"):
        text = Path(source).read_text(encoding="utf-8")
    loaded = jsoncodec.loads(text)
    if not isinstance(loaded, dict) or "facts" not in loaded or "status" not in loaded:
        raise ValueError("not a workflow history: expected `steadyhand explain <id> --json` output")
    return loaded


def replay_history(app: App, source: str | Path | Mapping[str, Any]) -> ReplayReport:
    """Replay every recorded supervisor run of a history with `app`'s code (module doc)."""
    history = load_history(source)
    status = history["status"]
    facts = tuple(_fact(entry) for entry in history["facts"])
    plan = app.plan(status["name"])
    created = float(status.get("created_at") or (facts[0].at if facts else 0.0))
    report = ReplayReport(str(status["id"]))
    supervisor = app.supervisors.get(plan.supervisor)
    if supervisor is None:
        report.problems.append(f"no supervisor {plan.supervisor!r} in this code")
        return report
    points: list[tuple[int, float, Fact | None]] = [
        (i, f.at, f) for i, f in enumerate(facts) if f.kind == SUPERVISOR_RAN
    ]
    if facts and not facts[-1].kind.startswith("workflow_"):
        points.append((len(facts), facts[-1].at, None))  # as it stands now
    for index, at, fact in points:
        view = WorkflowView(report.workflow_id, status["name"], history.get("input"), plan,
                            created, facts[:index])  # fmt: skip
        decision = guarded(supervisor, view, at)
        report.runs += 1
        where = f"#{fact.seq}" if fact is not None else "the end"
        if CHANGED in decision.why:
            report.problems.append(f"before fact {where}: {decision.why}")
            break
        if fact is None or any(
            str(d).startswith("record attempt_deferred") for d in fact.get("decided", ())
        ):
            continue  # nothing recorded to compare, or a call held back by an open circuit
        recorded = [d for d in fact.get("decided", ()) if str(d).startswith(_COMPARED)]
        new = [d for d in decision.describe() if d.startswith(_COMPARED)]
        if recorded != new and "child" not in " ".join(new + recorded) + decision.why:
            report.differences.append(
                f"before fact {where}: the recorded run asked for {recorded or 'no calls'}; "
                f"the new code asks for {new or 'no calls'}"
            )
    return report


def assert_replays(app: App, source: str | Path | Mapping[str, Any]) -> ReplayReport:
    """`replay_history`, raising AssertionError with every problem (for a test suite)."""
    report = replay_history(app, source)
    if not report.ok:
        raise AssertionError(
            f"workflow {report.workflow_id} would not replay on this code:\n- "
            + "\n- ".join(report.problems)
        )
    return report


def _fact(entry: Mapping[str, Any]) -> Fact:
    return Fact(
        seq=int(entry["seq"]),
        kind=str(entry["kind"]),
        at=float(entry["at"]),
        step=entry.get("step"),
        attempt=entry.get("attempt"),
        slot=entry.get("slot") or _slot(entry),
        data=entry.get("data") or {},
    )


def _slot(entry: Mapping[str, Any]) -> str | None:
    """Slots of histories exported without them, derived the way the engine names them."""
    kind, step, attempt = entry["kind"], entry.get("step"), entry.get("attempt")
    prefixes = {"attempt": "action", "compensation": "compensation", "probe": "probe"}
    head, _, suffix = kind.partition("_")
    if head in prefixes and step is not None and attempt is not None:
        what = "scheduled" if suffix == "scheduled" else "outcome"
        return call_slot(prefixes[head], step, attempt, what)
    name = str(step)
    named = {"child_started": child_slot(name), "sleep_began": sleep_slot(name),
             "wait_began": wait_slot(name, "began"), "wait_timed_out": wait_slot(name, "timed_out"),
             "workflow_started": STARTED}  # fmt: skip
    if kind == "patch_recorded":
        return patch_slot((entry.get("data") or {}).get("id"))
    return named.get(kind)
