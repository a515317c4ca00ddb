"""The public API on both backends: starting, idempotency, bad input, cancel, retry, deploys."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import steadyhand
from steadyhand import App, Client, Context, IdempotencyConflict, InputError, Step
from steadyhand.core.errors import NotFoundError, UnknownWorkflowError
from steadyhand.store import Store
from tests.apps.scripted import FAST_RETRY, app, effects
from tests.conftest import running_worker
from tests.waiting import eventually


def test_public_api_is_curated() -> None:
    classes = {name for name in dir(steadyhand) if name[0].isupper()}
    assert classes <= set(steadyhand.__all__), "every public class is exported on purpose"
    assert set(steadyhand.__all__) == classes | {"call_progress", "open_store"}
    for name in steadyhand.__all__:
        assert getattr(steadyhand, name).__doc__, f"{name} needs a docstring"


def test_same_key_returns_the_same_workflow(store: Store, tmp_path: Path) -> None:
    client = Client(app, store)
    payload = {"ledger": str(tmp_path / "l.db"), "script": {}}
    first = client.start("trip", payload, key="order-17")
    again = client.start("trip", payload, key="order-17")
    assert first.created and not again.created
    assert first.workflow_id == again.workflow_id
    other = client.start("trip", payload, key="order-18")
    assert other.workflow_id != first.workflow_id


def test_same_key_with_other_input_is_refused(store: Store, tmp_path: Path) -> None:
    client = Client(app, store)
    client.start("trip", {"ledger": "a"}, key="k")
    with pytest.raises(IdempotencyConflict, match="different input"):
        client.start("trip", {"ledger": "b"}, key="k")
    with pytest.raises(IdempotencyConflict, match="different workflow name"):
        client.start("one", {"ledger": "a"}, key="k")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"when": object()}, "not JSON-serialisable"),
        ({"x": math.nan}, "JSON data"),
        ({"blob": "x" * 1_100_000}, "the limit is"),
        ({1, 2}, "not JSON-serialisable"),
    ],
)
def test_malformed_input_is_refused_and_nothing_is_written(
    store: Store, value: object, message: str
) -> None:
    client = Client(app, store)
    with pytest.raises(InputError, match=message):
        client.start("trip", value)
    with store.snapshot() as tx:
        assert tx.execute("next_due").fetchone()[0] is None


def test_unknown_workflow_name_says_what_is_known(store: Store) -> None:
    with pytest.raises(UnknownWorkflowError, match=r"no workflow named 'tirp'.*known: one"):
        Client(app, store).start("tirp", {})


def test_status_of_unknown_id_is_a_clear_error(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no workflow 'nope'"):
        Client(app, store).status("nope")


def test_cancel_compensates_what_was_done(store: Store, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.db")
    client = Client(app, store)
    started = client.start("trip", {"ledger": ledger, "script": {"hotel": ["slow:1.0"]}})
    with running_worker(app, store):
        eventually(lambda: client.view(started.workflow_id).has("attempt_scheduled", "hotel"))
        client.cancel(started.workflow_id, reason="customer changed their mind")
        status = client.wait(started.workflow_id, timeout=20)
    assert status.state == "compensated"
    assert "customer changed their mind" in (status.reason or "")
    undone = [step for _, phase, step, _ in effects(ledger) if phase == "compensation"]
    assert undone == ["hotel", "flight"], "the in-flight hotel settles, then both are undone"
    view = client.view(started.workflow_id)
    assert not view.has("attempt_scheduled", "car")


def test_failed_workflow_can_be_retried_by_an_operator(store: Store, tmp_path: Path) -> None:
    ledger = str(tmp_path / "l.db")
    client = Client(app, store)
    # The undo of hotel fails 4 times (the whole budget), then would succeed.
    script = {"car": ["permanent"], "undo:hotel": ["transient"] * 4}
    started = client.start("trip", {"ledger": ledger, "script": script})
    with running_worker(app, store):
        assert client.wait(started.workflow_id, timeout=20).state == "failed"
        client.retry(started.workflow_id, reason="provider is back")
        status = client.wait(started.workflow_id, timeout=20)
    assert status.state == "compensated"
    view = client.view(started.workflow_id)
    assert view.count("workflow_failed") == 1 and view.count("retry_requested") == 1
    with pytest.raises(InputError, match="only a failed workflow can be retried"):
        client.retry(started.workflow_id)


def test_inflight_workflows_finish_on_the_plan_they_started_with(
    store: Store, tmp_path: Path
) -> None:
    v1 = App()
    calls: list[str] = []

    @v1.agent()
    def step_agent(ctx: Context) -> str:
        calls.append(ctx.step)
        return ctx.step

    v1.workflow("deploy", [Step("a", step_agent), Step("b", step_agent)])
    started = Client(v1, store).start("deploy", {})

    v2 = App()
    v2.agent(name="step_agent")(step_agent)
    v2.workflow("deploy", [Step("a", step_agent), Step("b", step_agent), Step("c", step_agent)])
    with running_worker(v2, store):
        status = Client(v2, store).wait(started.workflow_id, timeout=10)
    assert status.state == "completed"
    assert calls == ["a", "b"], "the new step c is not forced on a workflow already running"


def test_step_whose_agent_was_removed_ends_failed_with_the_reason(store: Store) -> None:
    old = App()

    @old.agent()
    def charge(ctx: Context) -> str:
        return "ok"

    @old.agent()
    def ship(ctx: Context) -> str:
        return "ok"

    old.workflow("order", [Step("charge", charge), Step("ship", ship)])
    started = Client(old, store).start("order", {})
    new = App()
    new.agent(name="charge")(charge)
    with running_worker(new, store):
        status = Client(new, store).wait(started.workflow_id, timeout=10)
    assert status.state == "failed"
    assert "agent 'ship' is not registered in this deploy" in (status.reason or "")
    assert "steadyhand retry" in (status.reason or "")


def test_runaway_supervisor_is_stopped_by_the_run_budget(store: Store) -> None:
    tight = App(max_supervisor_runs=5)

    @tight.agent()
    def flaky(ctx: Context) -> str:
        raise steadyhand.TransientError("always")

    tight.workflow(
        "loop", [Step("x", flaky, retry=FAST_RETRY.__class__(max_attempts=50, initial_backoff=0))]
    )
    started = Client(tight, store).start("loop", {})
    with running_worker(tight, store):
        status = Client(tight, store).wait(started.workflow_id, timeout=10)
    assert status.state == "failed"
    assert "the supervisor ran 5 times" in (status.reason or "")
