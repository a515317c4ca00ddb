"""The code-first replay in detail, in-process on the simulator (pure decisions, no store):
gather and map semantics, refusals, naming, changed code, and the decorator's checks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from steadyhand import App, Context, DefinitionError, PermanentError, StepFailed, Workflow
from steadyhand.core.codefirst import decide
from steadyhand.core.facts import Fact
from steadyhand.core.view import WorkflowView
from steadyhand.testing import Simulator

app = App()
CALLS: list[str] = []


@app.agent()
def act(ctx: Context) -> Any:
    CALLS.append(str(ctx.input))
    if str(ctx.input).startswith("bad"):
        raise PermanentError(f"{ctx.input} refused")
    return ctx.input


@app.agent()
def undo(ctx: Context) -> None:
    CALLS.append(f"undo {ctx.input} -> {ctx.result}")


@app.workflow()
async def siblings(wf: Workflow, names: list[str]) -> list[Any]:
    return await wf.gather(*(wf.step(act, n, compensation=undo) for n in names))


@app.workflow()
async def mapped(wf: Workflow, options: dict[str, Any]) -> list[Any]:
    return await wf.map(act, options["items"], max_parallel=options["max_parallel"])


@app.workflow()
async def mutating(wf: Workflow, order: dict[str, Any]) -> Any:
    order["seen"] = order.get("seen", 0) + 1
    first = await wf.step(act, "one")
    second = await wf.step(act, "two")
    return [order["seen"], first, second]


@app.workflow("named")
async def named_twice(wf: Workflow) -> None:
    await wf.step(act, "a", name="same")
    await wf.step(act, "b", name="same")


@app.workflow
async def gathers_a_coroutine(wf: Workflow) -> None:
    async def branch() -> None:
        await wf.step(act, "x")

    await wf.gather(branch())  # type: ignore[arg-type]


@app.workflow()
async def silent_forever(wf: Workflow) -> None:
    await wf.step(act, "x", heartbeat_timeout=0)


@app.workflow()
async def returns_a_set(wf: Workflow) -> Any:
    return {1, 2}


@app.workflow()
async def polls(wf: Workflow) -> int:
    rounds = 0
    while rounds < 3:
        await wf.sleep(60)
        rounds += 1
    return rounds


def run(name: str, input: Any = None, **options: Any) -> Any:
    CALLS.clear()
    return Simulator(app, **options).run(name, input)


def test_a_failed_sibling_is_raised_after_the_others_ended_and_they_are_undone() -> None:
    result = run("siblings", ["ok1", "bad", "ok2"])
    assert result.state == "compensated"
    assert "bad refused" in result.reason
    assert CALLS[:3] == ["ok1", "bad", "ok2"]  # all three were started together
    assert sorted(CALLS[3:]) == ["undo ok1 -> ok1", "undo ok2 -> ok2"]
    began = result.view.latest("compensation_began")
    assert all(f.seq < began.seq for f in result.view.of("attempt_succeeded"))


def test_map_holds_items_back_and_starts_none_after_a_failure() -> None:
    ok = run("mapped", {"items": ["a", "b", "c", "d", "e"], "max_parallel": 2})
    assert ok.result == ["a", "b", "c", "d", "e"]
    batches = [[c for c in d.describe() if c.startswith("call")] for d in ok.decisions]
    assert max(len(b) for b in batches) == 2
    failed = run("mapped", {"items": ["a", "bad", "c", "d"], "max_parallel": 2})
    assert failed.state == "compensated"
    assert CALLS == ["a", "bad"], "no item starts once one failed"


def test_workflow_code_that_changes_its_input_sees_it_fresh_on_every_replay() -> None:
    assert run("mutating", {}).result == [1, "one", "two"]


def test_two_steps_with_one_explicit_name_fail_as_a_bug() -> None:
    result = run("named")
    assert result.state == "failed"
    assert "two steps of this workflow are named 'same'" in result.reason


def test_gather_refuses_a_coroutine_and_says_what_to_do() -> None:
    result = run("gathers_a_coroutine")
    assert result.state == "failed"
    assert "make it a child workflow" in result.reason


def test_a_heartbeat_timeout_that_is_not_positive_fails_with_a_clear_reason() -> None:
    result = run("silent_forever")
    assert result.state == "failed"
    assert "heartbeat_timeout must be positive seconds" in result.reason


def test_a_code_first_step_carries_its_heartbeat_timeout_and_its_policys_exception_lists() -> None:
    from steadyhand import RetryPolicy
    from steadyhand.core.decisions import CallAgent

    local = App()
    local.agent()(act)
    policy = RetryPolicy(not_done=("Refused",), uncertain=("Vanished",))

    @local.workflow()
    async def watched(wf: Workflow) -> None:
        await wf.step(act, "x", retry=policy, heartbeat_timeout=2.5)

    result = Simulator(local).run("watched")
    [call, *_] = [c for d in result.decisions for c in d.commands if isinstance(c, CallAgent)]
    assert call.heartbeat_timeout == 2.5
    assert call.not_done == ("Refused",) and call.uncertain == ("Vanished",)


def test_a_result_that_is_not_json_fails_with_a_clear_reason() -> None:
    result = run("returns_a_set")
    assert result.state == "failed" and "must be JSON data" in result.reason


def test_a_loop_of_sleeps_is_durable_and_named_in_order() -> None:
    result = run("polls")
    assert result.result == 3 and result.elapsed == 180
    assert [f.step for f in result.view.of("sleep_began")] == ["sleep", "sleep#2", "sleep#3"]


def test_a_recorded_step_with_another_agent_is_changed_code() -> None:
    plan = app.plans["mutating"]
    facts = (
        Fact(1, "workflow_started", 0.0, slot="started"),
        Fact(2, "attempt_scheduled", 0.0, "act", 1, "action:act:1:scheduled", {"agent": "undo"}),
    )
    view = WorkflowView("w", "mutating", {}, plan, 0.0, facts)
    decision = decide(app.code_workflows["mutating"], view, 1.0, app._registered_agent)
    assert decision.describe() == ["end failed"]
    assert "step act (agent undo)" in decision.why and "step act (agent act)" in decision.why


def test_a_missing_workflow_function_fails_and_says_to_deploy_it() -> None:
    other = App()
    plan = app.plans["mutating"]
    view = WorkflowView("w", "mutating", {}, plan, 0.0, (Fact(1, "workflow_started", 0.0),))
    decision = other.supervisors["code"](view, 1.0)
    assert decision.describe() == ["end failed"] and "@app.workflow()" in decision.why


def test_the_decorator_checks_what_it_decorates() -> None:
    local = App()
    with pytest.raises(DefinitionError, match="async def"):
        local.workflow()(lambda wf: None)
    with pytest.raises(DefinitionError, match="positional parameter"):

        @local.workflow()
        async def too_many(wf: Workflow, a: int, b: int) -> None: ...

    @local.workflow("chosen")
    async def flow(wf: Workflow) -> None: ...

    with pytest.raises(DefinitionError, match="declared twice"):
        local.workflow("chosen")(flow)
    assert local.plan("chosen").supervisor == "code"


def test_an_unregistered_agent_is_a_bug_with_a_clear_reason() -> None:
    local = App()

    def stray(ctx: Context) -> None: ...

    @local.workflow()
    async def uses_stray(wf: Workflow) -> None:
        await wf.step(stray)

    result = Simulator(local).run("uses_stray")
    assert result.state == "failed" and "is not a registered agent" in (result.reason or "")


def test_step_failed_carries_the_step_and_reason() -> None:
    error = StepFailed("book#2", "permanent failure: sold out")
    assert (error.step, error.reason) == ("book#2", "permanent failure: sold out")
    assert str(error) == "step book#2 permanent failure: sold out"
    assert asyncio.iscoroutinefunction(siblings)
