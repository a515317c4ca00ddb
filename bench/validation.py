"""What checking a decision before applying it costs (`core.validate.problems`), next to
what deciding costs, per decision: `python -m bench.validation`.

Decisions come from the saga supervisor on a 10-step plan at each point of a run (each
call carries the results so far, so later decisions carry more JSON), and a Complete with
a 10-step result; payloads of `size` bytes per step result.
"""

from __future__ import annotations

import sys
import time

from steadyhand.core.decisions import Complete, Decision
from steadyhand.core.facts import Fact
from steadyhand.core.guard import guarded
from steadyhand.core.plans import Plan, RetryPolicy, StepSpec
from steadyhand.core.saga import saga
from steadyhand.core.validate import problems
from steadyhand.core.view import WorkflowView

STEPS = 10


def _views(size: int) -> list[WorkflowView]:
    specs = tuple(
        StepSpec(name=f"s{i}", action="act", compensation="undo", retry=RetryPolicy())
        for i in range(STEPS)
    )
    plan = Plan("bench", specs, "saga", 1000, {})
    facts = [Fact(1, "workflow_started", 0.0, slot="started")]
    views = []
    for i in range(STEPS):
        views.append(WorkflowView("w", "bench", {}, plan, 0.0, tuple(facts)))
        n = len(facts)
        facts.append(Fact(n + 1, "attempt_scheduled", 1.0, f"s{i}", 1, f"action:s{i}:1:scheduled",
                          {"agent": "act", "timeout": 30}))  # fmt: skip
        facts.append(Fact(n + 2, "attempt_succeeded", 2.0, f"s{i}", 1, f"action:s{i}:1:outcome",
                          {"result": {"blob": "x" * size}}))  # fmt: skip
    return views


def _per_call(fn: object, args: tuple[object, ...], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        fn(*args)  # type: ignore[operator]
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    rounds = 2000
    print("| result bytes/step | decide µs (saga) | validate µs | validate / decide |")
    print("|---:|---:|---:|---:|")
    for size in (10, 1000, 10_000):
        views = _views(size)
        decisions = [guarded(saga, v, 10.0) for v in views]
        decisions.append(Decision((Complete({f"s{i}": "x" * size for i in range(STEPS)}),)))
        decide = sum(_per_call(guarded, (saga, v, 10.0), rounds) for v in views) / len(views)
        check = sum(_per_call(problems, (d,), rounds) for d in decisions) / len(decisions)
        print(f"| {size:,} | {decide:.1f} | {check:.1f} | {check / decide:.0%} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
