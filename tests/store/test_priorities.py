"""Priorities and fairness when leasing, on both backends: higher priority first, a task
that waited longer than AGE_BOOST before any priority (no starvation), gated calls
round-robin across fairness keys; and end to end with a real worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from steadyhand import Client, InputError, NotFoundError
from steadyhand.cli.main import main
from steadyhand.core.circuit import allowance, trial_window_start
from steadyhand.store import Store
from steadyhand.store.priorities import AGE_BOOST
from tests.apps.long_running import LOG, app
from tests.conftest import running_worker


def _lease(store: Store, limit: int, now: float) -> list[str]:
    return [t.workflow_id for t in store.lease_tasks("w", limit, now, now + 30)]


def test_higher_priority_first_then_oldest(store: Store) -> None:
    client = Client(app, store)
    low = [client.start("booking", {}).workflow_id for _ in range(3)]
    high = client.start("booking", {}, priority=9).workflow_id
    middle = client.start("booking", {}, priority=4).workflow_id
    now = time.time()
    assert _lease(store, 1, now) == [high]
    assert _lease(store, 1, now) == [middle]
    assert _lease(store, 10, now) == low  # same priority: oldest first


def test_a_flood_of_priority_9_does_not_starve_priority_0(store: Store) -> None:
    client = Client(app, store)
    patient = client.start("booking", {}).workflow_id
    flood = [client.start("booking", {}, priority=9).workflow_id for _ in range(20)]
    now = time.time()
    assert _lease(store, 1, now) == flood[:1]  # fresh: priority wins
    # Once it has waited longer than AGE_BOOST, the oldest goes first, whatever the priority.
    assert _lease(store, 1, now + AGE_BOOST + 1) == [patient]
    assert _lease(store, 100, now) == flood[1:]


def test_gated_calls_take_turns_across_fairness_keys(store: Store) -> None:
    client = Client(app, store)
    client.engine.publish_services(app.services)
    burst = [client.start("print", {}, fairness_key="tenant-a").workflow_id for _ in range(5)]
    other = client.start("print", {}, fairness_key="tenant-b").workflow_id
    now = time.time()
    # The service allows one call at a time; round-robin puts tenant-b second, not sixth.
    order = []
    for _ in range(6):
        [task] = store.lease_gated("w", 10, now, now + 30, allowance, trial_window_start)
        order.append(task.workflow_id)
        store.release_leases("w", [task.id])  # the call "ended": its slot is free again
        with store.transaction() as tx:
            tx.delete_task(task.id)
    assert order[:2] == [burst[0], other] and order[2:] == burst[1:]


def test_a_late_tenant_is_served_before_an_earlier_burst_ends(store: Store) -> None:
    client = Client(app, store)
    burst = [client.start("print", {}, fairness_key="a").workflow_id for _ in range(8)]
    late = client.start("print", {}, fairness_key="b").workflow_id
    with running_worker(app, store):
        for workflow_id in [*burst, late]:
            assert client.wait(workflow_id, timeout=30).state == "completed"
    printed = [wid for what, wid in LOG if what == "print" and wid in {*burst, late}]
    assert printed.index(late) < len(burst) - 2  # FIFO would print it last


def test_bad_priorities_are_refused(store: Store) -> None:
    client = Client(app, store)
    for bad in (-1, 10, 2.5, "9", True):
        with pytest.raises(InputError, match="priority must be a whole number from 0 to 9"):
            client.start("booking", {}, priority=bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="fairness_key"):
        client.start("booking", {}, fairness_key="")


def test_an_ended_prioritised_workflow_can_still_be_archived(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    client = Client(app, store)
    workflow_id = client.start("booking", {}, priority=7, fairness_key="t").workflow_id
    client.signal("confirmed", {}, workflow_id=workflow_id)
    with running_worker(app, store):
        assert client.wait(workflow_id, timeout=20).state == "completed"
    args = ["archive", "--ended-before", "0s", "--to", str(tmp_path / "a"), "--db", store_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with pytest.raises(NotFoundError):
        client.status(workflow_id)


def test_a_child_runs_at_its_parents_priority_and_fairness_key(store: Store) -> None:
    client = Client(app, store)
    parent = client.start("print_twice", {}, priority=6, fairness_key="t-9").workflow_id
    with running_worker(app, store):
        assert client.wait(parent, timeout=20).state == "completed"
    with store.snapshot() as tx:
        rows = tx.query(
            "SELECT workflow_id, priority, fairness_key FROM workflow_priorities "
            "WHERE workflow_id LIKE :p ORDER BY workflow_id",
            {"p": f"{parent}%"},
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        (parent, 6, "t-9"),
        (f"{parent}.first", 6, "t-9"),
        (f"{parent}.second", 6, "t-9"),
    ]


def _priority_of(store: Store, workflow_id: str) -> tuple[int, str | None] | None:
    with store.snapshot() as tx:
        row = tx.query(
            "SELECT priority, fairness_key FROM workflow_priorities WHERE workflow_id = :id",
            {"id": workflow_id},
        ).fetchone()
    return None if row is None else (int(row[0]), row[1])


def test_a_workflow_started_by_its_first_event_gets_the_priority_asked_for(store: Store) -> None:
    client = Client(app, store)
    first = client.signal(
        "confirmed", {}, key="order-1", start="booking", priority=7, fairness_key="tenant-a"
    )
    assert first.started
    assert _priority_of(store, first.workflow_id) == (7, "tenant-a")
    plain = client.start("booking", {}, priority=3).workflow_id
    now = time.time()
    assert _lease(store, 10, now) == [first.workflow_id, plain]  # 7 before 3
    # A later event for the same key starts nothing, and changes nothing.
    again = client.signal("confirmed", {}, key="order-1", start="booking", priority=1)
    assert not again.started and _priority_of(store, first.workflow_id) == (7, "tenant-a")
    with pytest.raises(InputError, match="priority"):
        client.signal("confirmed", {}, key="order-2", start="booking", priority=12)


def test_a_schedule_starts_its_workflows_with_its_priority(store: Store) -> None:
    from steadyhand import App, DefinitionError, Step
    from tests.apps.long_running import book

    timed = App()
    timed.agent()(book)
    timed.workflow("nightly", [Step("seat", book)])
    timed.schedule("urgent", workflow="nightly", every=3600, priority=8, fairness_key="ops")
    timed.schedule("routine", workflow="nightly", every=3600)
    engine = Client(timed, store).engine
    engine.publish_schedules(timed.schedules)
    firing = engine.schedules
    [urgent] = firing.trigger("urgent").started
    [routine] = firing.trigger("routine").started
    assert _priority_of(store, urgent) == (8, "ops")
    assert _priority_of(store, routine) is None  # the default needs no row
    with pytest.raises(DefinitionError, match=r"schedule late: .*priority"):
        timed.schedule("late", workflow="nightly", every=60, priority=-1)
