"""Agent heartbeats on both backends, with a real worker: a call that falls silent for its
step's heartbeat_timeout is recorded lost long before its timeout and retried; the next
attempt reads the last details; a call that keeps beating is left alone; and the details a
dead worker's call last saved reach the `lost` fact and the next attempt."""

from __future__ import annotations

import time

import pytest

from steadyhand import Client
from steadyhand.core.errors import DefinitionError
from steadyhand.core.facts import LOST, OUTCOME_REPORTED_LATE, SUCCEEDED, Fact, call_kind
from steadyhand.core.plans import StepSpec
from steadyhand.store import Store
from steadyhand.store.heartbeating import renew_with_heartbeats
from tests.apps.long_running import LOG, app
from tests.conftest import running_worker
from tests.waiting import eventually


@pytest.mark.parametrize("name", ["copy", "copy_async", "copy_code_first"])
def test_a_silent_call_is_lost_at_its_heartbeat_timeout_and_the_next_attempt_resumes(
    store: Store, name: str
) -> None:
    client = Client(app, store)
    workflow_id = client.start(name, {}).workflow_id
    with running_worker(app, store):
        # The step's timeout is 30 s: only the heartbeat timeout ends attempt 1 in time.
        status = client.wait(workflow_id, timeout=15)
        assert status.state == "completed"
        assert status.result == {"pages": {"resumed_from": {"page": 3}}}
        view = client.view(workflow_id)
        [lost] = view.of(call_kind("action", LOST), "pages")
        assert lost.attempt == 1 and "no heartbeat for 0.3s" in lost.get("error")
        assert lost.get("heartbeat") == {"page": 3}
        assert ("attempt:2:last={'page': 3}", workflow_id) in LOG
        if name != "copy_async":
            # A sync agent's thread cannot be stopped: when attempt 1 answers after all
            # (3 s in), its answer is recorded as late, not dropped.
            def late() -> list[Fact]:
                return client.view(workflow_id).of(OUTCOME_REPORTED_LATE)

            [answer] = eventually(late, timeout=15, what="attempt 1's late answer")
            assert answer.attempt == 1 and answer.get("outcome") == SUCCEEDED


def test_a_call_that_keeps_beating_is_not_cut_off(store: Store) -> None:
    client = Client(app, store)
    workflow_id = client.start("steady", {}).workflow_id
    with running_worker(app, store):
        status = client.wait(workflow_id, timeout=15)
    assert status.state == "completed" and status.result == {"pages": {"pages": 6}}
    view = client.view(workflow_id)
    assert view.of(call_kind("action", LOST)) == []
    [done] = view.of(call_kind("action", SUCCEEDED))
    assert done.get("heartbeat") == {"page": 5}


def test_a_dead_workers_last_heartbeat_reaches_the_lost_fact_and_the_next_attempt(
    store: Store,
) -> None:
    client = Client(app, store)
    workflow_id = client.start("copy", {}).workflow_id
    now = time.time()
    [call] = [t for t in store.lease_tasks("w1", 10, now, now + 30) if t.kind == "action"]
    assert call.payload["heartbeat_timeout"] == 0.3
    # The worker saved a beat with its renewal, then died: its lease ran out.
    renewed = renew_with_heartbeats(
        store, "w1", [call.id], time.time() - 1, {call.id: '{"page":7}'}
    )
    assert renewed == [call.id]
    assert client.engine.expire_lease(call)
    [lost] = client.view(workflow_id).of(call_kind("action", LOST))
    assert lost.get("heartbeat") == {"page": 7}
    time.sleep(0.05)  # past the retry's backoff (0.01 s)
    [supervise] = store.lease_tasks("w2", 10, time.time(), time.time() + 30)
    client.engine.supervise(supervise)
    retry = [t for t in store.lease_tasks("w2", 10, time.time(), time.time() + 30)]
    assert retry and retry[0].attempt == 2 and retry[0].payload["last_heartbeat"] == {"page": 7}


def test_heartbeat_timeout_must_be_positive() -> None:
    with pytest.raises(DefinitionError, match="heartbeat_timeout"):
        StepSpec("a", action="x", heartbeat_timeout=0)
