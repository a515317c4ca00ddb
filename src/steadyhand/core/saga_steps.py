"""What the saga reads off its steps besides their progress: the child a step started, and
the one-line summary of every step that each supervisor run records as what it saw."""

from __future__ import annotations

from steadyhand.core.plans import StepSpec
from steadyhand.core.progress import DONE, Progress
from steadyhand.core.slots import child_slot
from steadyhand.core.view import ChildState, WorkflowView


def child_of(view: WorkflowView, spec: StepSpec) -> ChildState | None:
    started = view.slot(child_slot(spec.name))
    if started is None:
        return None
    cid = str(started.get("child_id"))
    return view.children.get(cid, ChildState(cid, "running"))


def summarise(view: WorkflowView, progress: dict[str, Progress]) -> str:
    parts = []
    for spec in view.plan.steps:
        name, step = spec.name, progress[spec.name]
        if spec.child is not None:
            child = child_of(view, spec)
            parts.append(f"{name}: child {child.state if child else 'not started'}")
            continue
        label = step.status.replace("_", " ")
        if spec.wait_for is not None and step.status == DONE:
            arrived = view.event(spec.wait_for, spec.sources) is not None
            label = f"{spec.wait_for} {'received' if arrived else 'awaited'}"
        if step.attempt and step.status != DONE:
            label += f" (attempt {step.attempt})"
        parts.append(f"{name}: {label}")
    return f"{len(view)} facts up to #{view.last_seq}; " + ", ".join(parts)
