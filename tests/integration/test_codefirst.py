"""Code-first workflows end to end, on both backends, with real workers: every primitive,
the endings (complete, roll back, bug), and changed code under a running workflow."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from steadyhand import Client, NotFoundError, WorkflowView
from steadyhand.store import Store
from tests.apps import codefirst as appmod
from tests.apps.codefirst import app, entries, wait_until
from tests.conftest import running_worker


@pytest.fixture
def client(store: Store) -> Iterator[Client]:
    yield Client(app, store)


def run(client: Client, name: str, input: Any = None, timeout: float = 30) -> tuple[Any, Any]:
    started = client.start(name, input)
    with running_worker(app, client.store):
        status = client.wait(started.workflow_id, timeout=timeout)
    return status, client.view(started.workflow_id)


def has(client: Client, workflow_id: str, kind: str) -> bool:
    try:
        return client.view(workflow_id).has(kind)
    except NotFoundError:
        return False


def scheduled(view: WorkflowView) -> list[str]:
    return [f.step or "" for f in view.of("attempt_scheduled")]


def test_steps_run_in_order_and_gather_runs_side_by_side(client: Client) -> None:
    status, view = run(client, "trip", {"vip": True})
    assert status.state == "completed"
    assert status.result == {"flight": "flight", "hotel": "hotel", "car": "car"}
    assert scheduled(view) == ["book", "book#2", "book#3", "book#4"]  # numbered on repeats
    first_outcome = min(f.seq for f in view.facts if f.kind == "attempt_succeeded" and
                        f.step in ("book#2", "book#3"))  # fmt: skip
    sides = [f.seq for f in view.of("attempt_scheduled") if f.step in ("book#2", "book#3")]
    assert max(sides) < first_outcome, "hotel and car were scheduled together"
    assert entries(view.workflow_id)[-1] == ("book", "gift")


def test_a_branch_not_taken_calls_nothing(client: Client) -> None:
    status, view = run(client, "trip", {})
    assert status.state == "completed"
    assert ("book", "gift") not in entries(view.workflow_id)
    assert len(scheduled(view)) == 3


def test_transient_failures_are_retried(client: Client) -> None:
    status, view = run(client, "trip", {"script": {"hotel": ["transient", "ok"]}})
    assert status.state == "completed"
    assert view.count("attempt_scheduled", "book#2") == 2


def test_an_uncaught_step_failure_rolls_back_newest_first(client: Client) -> None:
    status, view = run(client, "trip", {"script": {"car": ["permanent"]}})
    assert status.state == "compensated"
    assert "book#3" in status.reason and "sold out" in status.reason
    undone = [e for e in entries(view.workflow_id) if e[0] == "cancel"]
    assert undone == [("cancel", "hotel:hotel"), ("cancel", "flight:flight")]
    assert not view.has("compensation_scheduled", "book#3"), "car never took effect"


def test_a_caught_step_failure_takes_another_path(client: Client) -> None:
    status, view = run(client, "fallback", {})
    assert status.state == "completed"
    assert status.result == "plan b after book"
    assert scheduled(view) == ["book", "plan_b"]
    assert not view.has("compensation_began")


def test_an_unknown_outcome_is_probed_before_any_retry(client: Client) -> None:
    status, view = run(client, "probed", "flight")
    assert status.state == "completed"
    assert status.result == {"booked": "flight", "probed": True}
    assert view.count("attempt_scheduled") == 1, "the probe found it done: no second attempt"
    assert view.latest("probe_succeeded").get("answer") == "done"  # type: ignore[union-attr]
    assert entries(view.workflow_id) == [("book", "flight")]


def test_sleep_until_a_moment(client: Client) -> None:
    at = time.time() + 0.3
    status, view = run(client, "until_then", at)
    assert status.state == "completed" and status.result == at
    assert view.latest("sleep_began").get("until") == at  # type: ignore[union-attr]


def test_sleep_is_durable_and_now_moves_with_it(client: Client) -> None:
    status, view = run(client, "sleeper", 0.4)
    assert status.state == "completed"
    assert status.result >= 0.4
    (began,) = view.of("sleep_began")
    assert began.get("until") == began.at + 0.4  # from when the sleep was first reached


def test_wait_for_returns_the_event_payload(client: Client) -> None:
    started = client.start("waiter", {"timeout": 60})
    with running_worker(app, client.store):
        wait_until(lambda: client.view(started.workflow_id).has("wait_began"))
        client.signal("paid", {"amount": 12}, workflow_id=started.workflow_id)
        status = client.wait(started.workflow_id, timeout=20)
    assert status.state == "completed"
    assert status.result == {"amount": 12}


def test_wait_for_timeout_can_be_caught(client: Client) -> None:
    status, view = run(client, "waiter", {"timeout": 0.3, "catch": True})
    assert status.state == "completed"
    assert status.result == "gave up waiting"
    assert view.has("wait_timed_out")


def test_an_uncaught_wait_timeout_rolls_back(client: Client) -> None:
    status, view = run(client, "booked_then_wait", {"timeout": 0.3})
    assert status.state == "compensated"
    assert "no paid event within 0.3s" in status.reason
    assert ("cancel", "flight:flight") in entries(view.workflow_id)


def test_map_keeps_item_order_and_at_most_max_parallel_in_flight(client: Client) -> None:
    items = [f"r{i}" for i in range(7)]
    status, view = run(client, "mapper", {"items": items, "max_parallel": 2})
    assert status.state == "completed"
    assert status.result == [f"sent:{item}" for item in items]
    open_calls, most = set(), 0
    for fact in view.facts:
        if fact.kind == "attempt_scheduled":
            open_calls.add(fact.step)
        elif fact.kind.startswith("attempt_") and fact.step in open_calls:
            open_calls.discard(fact.step)
        most = max(most, len(open_calls))
    assert most == 2


def test_child_result_is_the_steps_result(client: Client) -> None:
    status, view = run(client, "parent", {"what": "kid-leg"})
    assert status.state == "completed"
    assert status.result == "kid-leg"
    (started,) = view.of("child_started")
    assert started.get("child_id") == f"{view.workflow_id}.kid"


def test_a_failed_child_raises_step_failed_and_the_parent_rolls_back(client: Client) -> None:
    status, view = run(client, "parent", {"what": "kid-leg", "script": ["permanent"]})
    assert status.state == "compensated"
    assert "child" in status.reason and "compensated" in status.reason
    assert ("cancel", "parent:parent") in entries(view.workflow_id)


def test_cancelling_the_parent_rolls_the_running_child_back(client: Client) -> None:
    started = client.start("parent", {"what": "kid-leg", "wait": True})
    wid = started.workflow_id
    with running_worker(app, client.store):
        wait_until(lambda: has(client, f"{wid}.kid", "wait_began"))
        client.cancel(wid, "changed my mind")
        status = client.wait(wid, timeout=20)
        child = client.wait(f"{wid}.kid", timeout=20)
    assert status.state == "compensated"
    assert child.state == "compensated"
    assert ("cancel", "kid-leg:kid-leg") in entries(wid)
    assert ("cancel", "parent:parent") in entries(wid)


def test_a_bug_in_workflow_code_fails_with_the_traceback_and_retry_replays_fixed_code(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, view = run(client, "buggy", {})
    assert status.state == "failed"
    assert "ValueError: the workflow code has a bug" in status.reason
    assert "Traceback" in status.reason and "raise ValueError" in status.reason
    assert not view.has("compensation_began"), "a bug compensates nothing"
    monkeypatch.setitem(appmod.FIXED, "buggy", True)
    client.retry(view.workflow_id)
    with running_worker(app, client.store):
        status = client.wait(view.workflow_id, timeout=20)
    assert status.state == "completed"
    assert entries(view.workflow_id).count(("book", "before-bug")) == 1, "not called twice"


def test_cancelling_a_workflow_that_failed_on_a_bug_rolls_it_back(client: Client) -> None:
    status, view = run(client, "buggy", {})
    assert status.state == "failed"
    client.cancel(view.workflow_id, "give up on it")
    with running_worker(app, client.store):
        status = client.wait(view.workflow_id, timeout=20)
    assert status.state == "compensated"
    assert "give up on it" in (status.reason or "")
    assert ("cancel", "before-bug:before-bug") in entries(view.workflow_id)


def test_awaiting_anything_but_wf_is_refused(client: Client) -> None:
    status, _ = run(client, "does_io")
    assert status.state == "failed"
    assert "do I/O in an agent" in status.reason


def test_changed_code_fails_naming_both_steps_and_patched_code_resumes(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(appmod.VERSION, "changing", 1)
    started = client.start("changing")
    wid = started.workflow_id
    with running_worker(app, client.store):
        wait_until(lambda: client.view(wid).has("wait_began"))
        monkeypatch.setitem(appmod.VERSION, "changing", 2)
        client.signal("go", {}, workflow_id=wid)
        status = client.wait(wid, timeout=20)
        assert status.state == "failed"
        assert "step book (agent book)" in (status.reason or "")
        assert "step send (agent send)" in (status.reason or "")
        assert "wf.patched" in (status.reason or "")
        monkeypatch.setitem(appmod.VERSION, "changing", 3)  # the change, guarded
        client.retry(wid)
        status = client.wait(wid, timeout=20)
        fresh = client.start("changing")
        wait_until(lambda: client.view(fresh.workflow_id).has("wait_began"))
        client.signal("go", {}, workflow_id=fresh.workflow_id)
        new = client.wait(fresh.workflow_id, timeout=20)
    assert status.state == "completed" and status.result == "v3"
    assert client.view(wid).latest("patch_recorded").get("value") is False  # type: ignore[union-attr]
    assert new.state == "completed"
    assert scheduled(client.view(fresh.workflow_id)) == ["send"], "new workflows take the new path"


def test_a_child_started_with_a_key_can_be_signalled_by_it(client: Client) -> None:
    started = client.start("keyed_parent", {"child_key": "child-of-order-9"})
    wid = started.workflow_id
    with running_worker(app, client.store):
        wait_until(lambda: has(client, f"{wid}.waiter", "wait_began"))
        client.signal("paid", {"via": "key"}, key="child-of-order-9")
        status = client.wait(wid, timeout=20)
    assert status.state == "completed" and status.result == {"via": "key"}


def test_signal_with_start_meets_a_code_first_workflow_in_any_order(client: Client) -> None:
    first = client.signal("shipped", {"n": 2}, key="cust-1", start="checkout",
                          start_input={"id": 1})  # fmt: skip
    second = client.signal("paid", {"n": 1}, key="cust-1", start="checkout", start_input={"id": 1})
    assert first.workflow_id == second.workflow_id
    with running_worker(app, client.store):
        status = client.wait(first.workflow_id, timeout=20)
    assert status.state == "completed"
    assert status.result == [{"id": 1}, {"n": 1}, {"n": 2}]


def test_now_random_id_and_input_are_stable(client: Client) -> None:
    status, view = run(client, "clock_and_dice", {"x": 1})
    assert status.state == "completed"
    seeded = random.Random(view.workflow_id)
    assert status.result == [view.workflow_id, {"x": 1}, seeded.random(), seeded.random(), True]


def test_cancel_rolls_back_what_took_effect(client: Client) -> None:
    started = client.start("booked_then_wait", {"timeout": None})
    wid = started.workflow_id
    with running_worker(app, client.store):
        wait_until(lambda: client.view(wid).has("wait_began"))
        client.cancel(wid, "no longer needed")
        status = client.wait(wid, timeout=20)
    assert status.state == "compensated"
    assert "no longer needed" in (status.reason or "")
    assert ("cancel", "flight:flight") in entries(wid)


def test_sagas_and_code_first_share_one_app(client: Client) -> None:
    assert app.plan("trip").supervisor == "code"
    assert app.plan("trip").to_json()["options"]["code_first"] is True
