"""The test kit: workflows run in-process against fake agents on a virtual clock, and a
recorded history replays against new code to catch changes that would break it."""

from __future__ import annotations

from typing import Any

import pytest

from steadyhand import Context, PermanentError, TransientError
from steadyhand.testing import CallTimedOut, Event, Simulator, assert_replays, replay_history
from tests.apps import codefirst as appmod
from tests.apps.codefirst import app


def test_fake_agents_replace_real_ones_by_function_or_name() -> None:
    seen: list[Any] = []

    def fake_book(ctx: Context) -> dict[str, Any]:
        seen.append(ctx.input["what"])
        return {"booked": f"fake-{ctx.input['what']}"}

    run = Simulator(app, {appmod.book: fake_book}).run("trip", {})
    assert run.state == "completed"
    assert run.result == {"flight": "fake-flight", "hotel": "fake-hotel", "car": "fake-car"}
    assert seen == ["flight", "hotel", "car"]
    assert run.steps() == ["book", "book#2", "book#3"]


def test_sleeps_and_deadlines_pass_on_the_virtual_clock() -> None:
    run = Simulator(app).run("sleeper", 86_400)
    assert run.state == "completed" and run.result == 86_400
    assert run.elapsed == 86_400
    waited = Simulator(app).run("waiter", {"timeout": 600}, events=[Event("paid", 7, after=90)])
    assert (waited.result, waited.elapsed) == (7, 90)
    timed_out = Simulator(app).run("booked_then_wait", {"timeout": 600})
    assert timed_out.state == "compensated" and timed_out.elapsed == 600


def test_failures_retries_and_rollback_in_the_simulator() -> None:
    attempts: list[int] = []

    def flaky(ctx: Context) -> Any:
        attempts.append(ctx.attempt)
        if ctx.input["what"] == "hotel" and ctx.attempt < 3:
            raise TransientError("503")
        if ctx.input["what"] == "car":
            raise PermanentError("sold out")
        return {"booked": ctx.input["what"]}

    run = Simulator(app, {"book": flaky}).run("trip", {})
    assert run.state == "compensated"
    assert run.steps("compensation") == ["book#2", "book"]  # hotel, then flight
    assert run.violations == []


def test_a_call_that_times_out_is_retried() -> None:
    def slow_once(ctx: Context) -> Any:
        if ctx.attempt == 1:
            raise CallTimedOut()
        return {"booked": ctx.input["what"]}

    run = Simulator(app, {"book": slow_once}).run("trip", {})
    assert run.state == "completed"
    assert [c.outcome for c in run.calls][:2] == ["timed_out", "succeeded"]


def test_a_history_replays_on_the_code_that_made_it() -> None:
    run = Simulator(app).run("trip", {"script": {"hotel": ["transient", "ok"]}})
    report = assert_replays(app, run.history())
    assert report.runs == len(run.decisions)


def test_replaying_a_history_catches_changed_code_and_accepts_a_patched_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(appmod.VERSION, "changing", 1)
    history = Simulator(app).run("changing").history()  # waits for "go" forever: stuck
    monkeypatch.setitem(appmod.VERSION, "changing", 2)
    report = replay_history(app, history)
    assert not report.ok
    (problem,) = report.problems
    assert "step book (agent book)" in problem and "step send (agent send)" in problem
    assert "wf.patched" in problem
    assert report.differences, "the first run, before anything was recorded, differs too"
    with pytest.raises(AssertionError, match="would not replay"):
        assert_replays(app, history)
    monkeypatch.setitem(appmod.VERSION, "changing", 3)
    patched = replay_history(app, history)
    assert patched.ok, patched.problems


def test_a_history_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="explain <id> --json"):
        replay_history(app, '{"nothing": 1}')
