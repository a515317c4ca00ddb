"""Properties of the code-first replay, over histories hypothesis makes up: replaying any
prefix of a history gives the decision that was recorded there, a call that ended is never
asked for again (at that moment or any later one), and every run ends."""

from __future__ import annotations

import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steadyhand import (
    App,
    CallAgent,
    Context,
    OutcomeUnknown,
    PermanentError,
    ProbeAnswer,
    RetryPolicy,
    StepFailed,
    TransientError,
    WaitTimedOut,
    Workflow,
    WorkflowView,
)
from steadyhand.core.facts import SUPERVISOR_RAN, call_slot
from steadyhand.core.guard import guarded
from steadyhand.testing import CallTimedOut, Event, Simulator, replay_history

app = App()
R = RetryPolicy(max_attempts=3, initial_backoff=1.0, max_backoff=4.0)
WORDS = ["ok", "ok", "ok", "transient", "permanent", "timeout", "unknown"]
SCRIPT: dict[str, list[str]] = {"words": ["ok"]}


def word(ctx: Context) -> str:
    words = SCRIPT["words"]
    return words[zlib.crc32(f"{ctx.phase}:{ctx.step}:{ctx.attempt}".encode()) % len(words)]


def behave(ctx: Context) -> Any:
    chosen = word(ctx)
    if chosen == "transient":
        raise TransientError("503")
    if chosen == "permanent":
        raise PermanentError("refused")
    if chosen == "timeout":
        raise CallTimedOut()
    if chosen == "unknown":
        raise OutcomeUnknown("cut off")
    return {"done": ctx.input, "attempt": ctx.attempt}


@app.agent()
def act(ctx: Context) -> Any:
    return behave(ctx)


@app.agent()
def undo(ctx: Context) -> Any:
    return behave(ctx)


@app.agent()
def check(ctx: Context) -> ProbeAnswer:
    return ProbeAnswer.done({"probed": ctx.input}) if word(ctx) == "ok" else ProbeAnswer.not_done()


@app.workflow()
async def busy(wf: Workflow, options: dict[str, Any]) -> list[Any]:
    seen: list[Any] = [await wf.step(act, "a", compensation=undo, probe=check, retry=R)]
    try:
        seen += await wf.gather(
            wf.step(act, "b", compensation=undo, retry=R),
            wf.step(act, "c", retry=R),
            wf.sleep(2),
        )
    except StepFailed as failed:
        seen.append(await wf.step(act, f"instead of {failed.step}", retry=R))
    if wf.random() < 0.5:
        await wf.sleep(5)
    seen += await wf.map(act, ["m1", "m2", "m3", "m4"], max_parallel=2, compensation=undo, retry=R)
    try:
        seen.append(await wf.wait_for("go", timeout=30))
    except WaitTimedOut:
        seen.append("no go")
    if options.get("strict"):
        seen.append(await wf.step(act, "last", compensation=undo, retry=R))
    return seen


def prefix_view(view: WorkflowView, upto: int) -> WorkflowView:
    return WorkflowView(view.workflow_id, view.name, view.input, view.plan, view.created_at,
                        view.facts[:upto])  # fmt: skip


histories = st.fixed_dictionaries(
    {
        "words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=8),
        "strict": st.booleans(),
        "go_after": st.none() | st.floats(min_value=0, max_value=60),
        "cancel_after": st.none() | st.floats(min_value=0, max_value=40),
        "id": st.sampled_from(["wf-1", "wf-2", "wf-3"]),
    }
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_replaying_any_prefix_gives_the_recorded_decision(case: dict[str, Any]) -> None:
    SCRIPT["words"] = case["words"]
    events = [] if case["go_after"] is None else [Event("go", {"go": 1}, case["go_after"])]
    run = Simulator(app).run(
        "busy",
        {"strict": case["strict"]},
        events=events,
        workflow_id=case["id"],
        cancel_after=case["cancel_after"],
    )
    assert run.state in ("completed", "compensated", "failed"), run.reason
    assert run.violations == []
    supervisor = app.supervisors["code"]
    for index, fact in enumerate(run.view.facts):
        if fact.kind != SUPERVISOR_RAN:
            continue
        view = prefix_view(run.view, index)
        again = guarded(supervisor, view, fact.at)
        assert again.describe() == fact.get("decided"), f"before fact #{fact.seq}"
        assert again.why == fact.get("why")
        for later in (fact.at + 1.0, fact.at + 10_000.0):
            for command in guarded(supervisor, view, later).commands:
                if isinstance(command, CallAgent):
                    ended = call_slot(command.phase, command.step, command.attempt, "outcome")
                    assert view.slot(ended) is None, f"{command.describe()} asked again"
    assert replay_history(app, run.history()).ok


def test_the_property_workflow_reaches_every_ending() -> None:
    """The strategy above is worth something only if it produces each kind of ending."""
    endings = set()
    for words in (["ok"], ["permanent"], ["ok", "ok", "ok", "permanent"], ["timeout"]):
        SCRIPT["words"] = words
        endings.add(Simulator(app).run("busy", {"strict": True}).state)
    SCRIPT["words"] = ["ok"]
    endings.add(Simulator(app).run("busy", {}, cancel_after=1).state)
    assert endings >= {"completed", "compensated"}
