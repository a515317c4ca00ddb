"""Event floods on both backends: an event nothing waits for is kept but spends no
supervisor run, a workflow holds a bounded number of events (TooManyEvents, HTTP 429), and
a spent run budget rolls back what took effect instead of stopping half-done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from steadyhand import (
    App,
    Client,
    Context,
    RetryPolicy,
    Step,
    TooManyEvents,
    TransientError,
)
from steadyhand.store import Store
from steadyhand.web.ingress import create_ingress, sign
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(90)
SECRET = "whsec_flood_1"
BUDGET = 30
DONE: list[str] = []


def make_app(max_supervisor_runs: int = BUDGET) -> App:
    app = App(max_supervisor_runs=max_supervisor_runs)

    @app.agent()
    def reserve(ctx: Context) -> str:
        return "seat 4A"

    @app.agent()
    def release(ctx: Context) -> None:
        DONE.append(f"released {ctx.workflow_id}")

    @app.agent()
    def stuck_release(ctx: Context) -> None:
        raise TransientError("the service is down")

    @app.agent()
    def charge(ctx: Context) -> None:
        raise TransientError("503")

    reserved = Step("reserve", reserve, compensation=release)
    app.workflow("checkout", [reserved, Step("pay", wait_for="paid", deadline=600)])
    app.workflow("capped", [reserved, Step("pay", wait_for="paid", deadline=600)], max_events=10)
    forever = RetryPolicy(max_attempts=1000, initial_backoff=0.01, max_backoff=0.01, jitter=0)
    app.workflow("spender", [reserved, Step("charge", charge, retry=forever)])
    app.workflow(
        "hopeless",
        [
            Step("reserve", reserve, compensation=stuck_release, compensation_retry=forever),
            Step("charge", charge, retry=forever),
        ],
    )
    return app


def eventually(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def waiting_for_payment(client: Client, workflow_id: str) -> None:
    eventually(lambda: client.view(workflow_id).has("wait_began", "pay"))


def runs(client: Client, workflow_id: str) -> int:
    return client.view(workflow_id).count("supervisor_ran")


def test_events_nothing_waits_for_spend_no_runs(store: Store) -> None:
    app = make_app()
    client = Client(app, store)
    with running_worker(app, store):
        started = client.start("checkout", {})
        waiting_for_payment(client, started.workflow_id)
        before = runs(client, started.workflow_id)
        for n in range(3 * BUDGET):  # each would spend a run if it woke the supervisor
            client.signal("noise", {"n": n}, workflow_id=started.workflow_id)
        assert runs(client, started.workflow_id) == before
        client.signal("paid", {"ref": "p-1"}, workflow_id=started.workflow_id)
        status = client.wait(started.workflow_id, timeout=30)
    assert status.state == "completed", status.reason
    assert status.result["pay"] == {"ref": "p-1"}
    view = client.view(started.workflow_id)
    assert len(view.events("noise")) == 3 * BUDGET  # recorded all the same
    assert view.count("supervisor_ran") < BUDGET


def test_a_workflow_holds_at_most_max_events(store: Store) -> None:
    app = make_app()
    client = Client(app, store)
    with running_worker(app, store):
        started = client.start("capped", {})
        waiting_for_payment(client, started.workflow_id)
        for n in range(10):
            client.signal("noise", {"n": n}, workflow_id=started.workflow_id)
        with pytest.raises(TooManyEvents, match=r"holds 10 events.*max_events=10"):
            client.signal("noise", {"n": 11}, workflow_id=started.workflow_id)
        http = TestClient(create_ingress(client, {"shop": SECRET}))
        body = json.dumps({"event": "noise", "workflow_id": started.workflow_id}).encode()
        answer = http.post(
            "/events/shop", content=body, headers={"Steadyhand-Signature": sign(SECRET, body)}
        )
        assert answer.status_code == 429, answer.text
        assert "max_events=10" in answer.json()["error"]
        # The event the workflow waits for is never locked out by a flood.
        client.signal("paid", {"ref": "p-2"}, workflow_id=started.workflow_id)
        status = client.wait(started.workflow_id, timeout=30)
    assert status.state == "completed", status.reason
    assert len(client.view(started.workflow_id).events("noise")) == 10


def test_a_spent_budget_rolls_back_what_took_effect(store: Store) -> None:
    app = make_app(max_supervisor_runs=8)
    client = Client(app, store)
    with running_worker(app, store):
        started = client.start("spender", {})
        status = client.wait(started.workflow_id, timeout=60)
    assert status.state == "compensated", status.reason
    assert "the budget is 8" in (status.reason or "")
    view = client.view(started.workflow_id)
    assert view.count("compensation_succeeded", "reserve") == 1
    assert f"released {started.workflow_id}" in DONE


def test_a_rollback_that_cannot_finish_in_its_budget_fails(store: Store) -> None:
    app = make_app(max_supervisor_runs=8)
    client = Client(app, store)
    with running_worker(app, store):
        started = client.start("hopeless", {})
        status = client.wait(started.workflow_id, timeout=60)
    assert status.state == "failed", status.reason
    assert "while rolling back (the budget is 8)" in (status.reason or "")
    view: Any = client.view(started.workflow_id)
    assert view.count("compensation_began") == 1
    assert view.count("supervisor_ran") == 8 + 1 + 8 + 1
