"""Events, custom supervisors and supervision trees, on both backends."""

from __future__ import annotations

import itertools
import threading

import pytest

from steadyhand import Client, InputError, NotFoundError, open_store
from steadyhand.store import Store
from tests.apps.events import LOG, app
from tests.conftest import running_worker
from tests.waiting import eventually

EVENTS = ["checkout.completed", "subscription.created", "invoice.paid"]


@pytest.mark.parametrize("order", list(itertools.permutations(EVENTS)))
def test_events_in_any_order_meet_in_one_workflow(store: Store, order: tuple[str, ...]) -> None:
    client = Client(app, store)
    start = {"needed": EVENTS, "deadline": 30}
    ids = {
        client.signal(
            name, {"status": "ok", "n": i}, key="cust-7", start="join", start_input=start
        ).workflow_id
        for i, name in enumerate(order)
    }
    assert len(ids) == 1
    (workflow_id,) = ids
    with running_worker(app, store):
        status = client.wait(workflow_id, timeout=10)
    assert status.state == "completed"
    assert set(status.result) == set(EVENTS)


def test_a_missing_event_fails_the_join_at_its_deadline(store: Store) -> None:
    client = Client(app, store)
    start = {"needed": EVENTS[:2], "deadline": 0.5}
    sent = client.signal(EVENTS[0], {}, key="late", start="join", start_input=start)
    with running_worker(app, store):
        status = client.wait(sent.workflow_id, timeout=10)
    assert status.state == "failed"
    assert "still missing subscription.created" in (status.reason or "")


def test_a_failure_event_takes_the_failure_path(store: Store) -> None:
    client = Client(app, store)
    start = {"needed": EVENTS[:2]}
    client.signal(EVENTS[1], {"status": "failed"}, key="k", start="join", start_input=start)
    sent = client.signal(EVENTS[0], {"status": "ok"}, key="k", start="join", start_input=start)
    with running_worker(app, store):
        status = client.wait(sent.workflow_id, timeout=10)
    assert status.state == "failed" and "subscription.created reported a failure" in str(
        status.reason
    )


def test_a_redelivered_event_is_recorded_once(store: Store) -> None:
    client = Client(app, store)
    first = client.signal("checkout.completed", {"a": 1}, key="d", start="join",
                          start_input={"needed": EVENTS}, dedupe_key="evt_1")  # fmt: skip
    again = client.signal("checkout.completed", {"a": 1}, key="d", dedupe_key="evt_1")
    assert first.recorded and first.started
    assert not again.recorded and not again.started
    assert client.view(first.workflow_id).count("event_received") == 1


def test_events_for_unknown_workflows_and_bad_payloads_are_refused(store: Store) -> None:
    client = Client(app, store)
    with pytest.raises(NotFoundError, match="name a workflow to start"):
        client.signal("checkout.completed", {}, key="nobody")
    with pytest.raises(NotFoundError):
        client.signal("checkout.completed", {}, workflow_id="nope")
    with pytest.raises(InputError, match="JSON"):
        client.signal("x", {"bad": object()}, key="k", start="join", start_input={})
    with pytest.raises(InputError, match="exactly one"):
        client.signal("x", {}, workflow_id="a", key="b")
    with store.snapshot() as tx:
        assert tx.workflow_by_key("k") is None, "nothing half-recorded"


def test_signal_with_start_racing_from_two_connections(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    results = []

    def send(store: Store, event: str) -> None:
        client = Client(app, store)
        barrier.wait()
        results.append(
            client.signal(event, {}, key="race", start="join", start_input={"needed": EVENTS[:2]})
        )

    threads = [
        threading.Thread(target=send, args=(s, e)) for s, e in zip(stores, EVENTS[:2], strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len({r.workflow_id for r in results}) == 1
    assert sorted(r.started for r in results) == [False, True]
    client = Client(app, stores[0])
    assert client.view(results[0].workflow_id).count("event_received") == 2
    for s in stores:
        s.close()


def test_saga_step_completes_when_its_confirmation_arrives(store: Store) -> None:
    client = Client(app, store)
    started = client.start("checkout", {})
    with running_worker(app, store):
        eventually(lambda: client.view(started.workflow_id).has("wait_began"))
        client.signal("payment.confirmed", {"ref": "p-1"}, workflow_id=started.workflow_id)
        status = client.wait(started.workflow_id, timeout=10)
    assert status.state == "completed"
    assert status.result == {"payment": {"ref": "p-1"}}


def test_saga_step_waiting_past_its_deadline_rolls_back(store: Store) -> None:
    client = Client(app, store)
    started = client.start("checkout", {})
    with running_worker(app, store):
        status = client.wait(started.workflow_id, timeout=10)
    assert status.state == "compensated"
    assert "no payment.confirmed event within 1s" in (status.reason or "")
    view = client.view(started.workflow_id)
    assert view.has("wait_timed_out", "payment")
    assert view.has("compensation_succeeded", "payment"), "the requested payment is voided"


def test_confirmation_arriving_before_the_step_waits_still_counts(store: Store) -> None:
    client = Client(app, store)
    started = client.start("checkout", {})
    client.signal("payment.confirmed", {"early": True}, workflow_id=started.workflow_id)
    with running_worker(app, store):
        status = client.wait(started.workflow_id, timeout=10)
    assert status.state == "completed" and status.result == {"payment": {"early": True}}


def test_child_workflow_completes_and_its_result_flows_to_the_parent(store: Store) -> None:
    client = Client(app, store)
    started = client.start("order", {})
    with running_worker(app, store):
        status = client.wait(started.workflow_id, timeout=15)
    assert status.state == "completed"
    child_id = f"{started.workflow_id}.fulfil"
    assert client.status(child_id).state == "completed"
    assert status.result["fulfil"] == {"reserve": "reserved", "pack": "slow done"}
    assert client.view(started.workflow_id).count("child_started") == 1


def test_failed_child_lets_the_parent_compensate(store: Store) -> None:
    client = Client(app, store)
    started = client.start("order", {"refuse": True})
    with running_worker(app, store):
        status = client.wait(started.workflow_id, timeout=15)
    assert status.state == "compensated"
    assert "child" in (status.reason or "") and "compensated" in (status.reason or "")
    assert ("void_payment", started.workflow_id) in LOG


def test_cancelling_a_parent_cancels_its_child(store: Store) -> None:
    client = Client(app, store)
    started = client.start("order", {})
    child_id = f"{started.workflow_id}.fulfil"
    with running_worker(app, store):
        # the child has started and its first step took effect
        eventually(lambda: ("reserve", child_id) in LOG, timeout=15, interval=0.01)
        client.cancel(started.workflow_id, reason="customer cancelled")
        status = client.wait(started.workflow_id, timeout=15)
    assert status.state == "compensated"
    child = client.status(child_id)
    assert child.state == "compensated", "the running child was cancelled and rolled back"
    assert "customer cancelled" in (child.reason or ""), "the parent's reason travels down"
    assert ("release", child_id) in LOG
