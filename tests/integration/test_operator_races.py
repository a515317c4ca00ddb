"""Operator actions decide under the workflow's lock (issue 23), on both stores: two
retries at once open one round and both are told what happened; a cancel racing the last
step's success either rolls the step back or is answered "already ended"; two cancels at
once record one. Each race is run many rounds, released together by a barrier, so a
window of a millisecond between a check and a write would be hit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from steadyhand import App, Client, Context, Decision, Fail, Step, WaitUntil, WorkflowView
from steadyhand.core.actions import ActionStatus
from steadyhand.core.facts import CANCEL_IGNORED, CANCEL_REQUESTED, RETRY_REQUESTED
from steadyhand.engine.answers import Outcome
from steadyhand.store import Store
from steadyhand.store.clock import store_clock

ROUNDS = 100


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` on threads released at the same instant; their results, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


def _failing_app() -> App:
    app = App()

    @app.supervisor()
    def fails_once(view: WorkflowView, now: float) -> Decision:
        if view.round == 0:
            return Decision((Fail("first round fails"),), "fail")
        return Decision((WaitUntil(now + 3600),), "wait")

    app.process("fails_once", fails_once)
    return app


def test_two_retries_at_once_open_one_round_and_both_are_told(store: Store) -> None:
    client = Client(_failing_app(), store)
    for _ in range(ROUNDS):
        wid = client.start("fails_once", {}).workflow_id
        assert client.status(wid).state == "failed"
        answers: list[ActionStatus] = _together(
            partial(client.retry, wid, "alice", by="alice"),
            partial(client.retry, wid, "bob", by="bob"),
        )
        assert sorted(a.result for a in answers) == ["already", "done"]
        already = next(a for a in answers if a.result == "already")
        assert "already retried by" in already.message and "round 1" in already.message
        view = client.view(wid)
        assert view.count(RETRY_REQUESTED) == 1 and view.round == 1


def _one_step_app() -> App:
    app = App()

    @app.agent()
    def book(ctx: Context) -> None:
        """Never runs: the test reports outcomes itself."""

    @app.agent()
    def unbook(ctx: Context) -> None:
        """Never runs: the test reports outcomes itself."""

    app.workflow("one", [Step("only", book, compensation=unbook)])
    return app


def _lease_call(store: Store, wid: str, phase: str) -> Any:
    now = store_clock(store).now()  # the store's clock, which stamped the calls due
    for task in store.lease_tasks("w", 50, now, now + 60):
        if task.workflow_id == wid and task.kind == phase:
            return task
    raise AssertionError(f"no {phase} task for {wid}")


def test_a_cancel_racing_the_last_success_rolls_back_or_is_told_it_ended(store: Store) -> None:
    client = Client(_one_step_app(), store)
    engine = client.engine
    seen = set()
    for _ in range(ROUNDS):
        wid = client.start("one", {}).workflow_id
        task = _lease_call(store, wid, "action")
        _, answer = _together(
            partial(engine.record_outcome, task, Outcome("succeeded", {"result": 1}), "w"),
            partial(client.cancel, wid, "race", by="carol"),
        )
        seen.add(answer.result)
        view = client.view(wid)
        if answer.result == "ended":
            assert view.state == "completed" and answer.state == "completed"
            assert view.count(CANCEL_IGNORED) == 1 and view.count(CANCEL_REQUESTED) == 0
            continue
        assert answer.result == "done", answer
        assert view.terminal is None and view.count(CANCEL_REQUESTED) == 1
        undo = _lease_call(store, wid, "compensation")  # the success is rolled back
        engine.record_outcome(undo, Outcome("succeeded", {}), "w")
        assert client.status(wid).state == "compensated"
    assert seen <= {"done", "ended"}


def test_two_cancels_at_once_record_one(store: Store) -> None:
    client = Client(_one_step_app(), store)
    for _ in range(ROUNDS // 2):
        wid = client.start("one", {}).workflow_id
        answers = _together(
            partial(client.cancel, wid, "one", by="dave"),
            partial(client.cancel, wid, "two", by="erin"),
        )
        assert sorted(a.result for a in answers) == ["already", "done"]
        assert client.view(wid).count(CANCEL_REQUESTED) == 1


def test_cancel_after_the_end_is_answered_already_ended(store: Store) -> None:
    client = Client(_one_step_app(), store)
    wid = client.start("one", {}).workflow_id
    client.engine.record_outcome(_lease_call(store, wid, "action"), Outcome("succeeded", {}), "w")
    answer = client.cancel(wid, "too late", by="frank")
    assert (answer.result, answer.state) == ("ended", "completed")
    assert "already ended completed" in answer.message
    view = client.view(wid)
    assert view.state == "completed" and view.count(CANCEL_IGNORED) == 1
    assert view.of(CANCEL_IGNORED)[0].get("by") == "frank"
