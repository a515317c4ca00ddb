"""Workflow deadlines on both backends: when a workflow's deadline (from `start` or from
its definition) passes before it ends, it rolls back with a reason naming the deadline;
one that ends in time is untouched."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from steadyhand import Client, DefinitionError, InputError, open_store
from steadyhand.cli.main import main
from steadyhand.core.facts import CANCEL_REQUESTED, WORKFLOW_STARTED
from steadyhand.define.app import App
from steadyhand.define.steps import Step
from steadyhand.ops.story import sentence
from steadyhand.store import Store
from tests.apps.long_running import LOG, app
from tests.conftest import running_worker


def test_a_passed_deadline_rolls_the_workflow_back(store: Store) -> None:
    client = Client(app, store)
    late = client.start("booking", {}, deadline=0.5).workflow_id
    with running_worker(app, store):
        status = client.wait(late, timeout=20)
    assert status.state == "compensated"
    assert "deadline (0.5s) passed" in (status.reason or "")
    assert ("book", late) in LOG and ("unbook", late) in LOG
    view = client.view(late)
    [cancel] = view.of(CANCEL_REQUESTED)
    assert cancel.get("by") == "deadline"
    started = view.latest(WORKFLOW_STARTED)
    assert started is not None and started.get("deadline") == 0.5
    assert started.get("deadline_at") == pytest.approx(view.created_at + 0.5)
    assert "started; deadline 0.5s, at " in sentence(started)  # as explain tells it


def test_the_definition_deadline_applies_and_start_overrides_it(store: Store) -> None:
    client = Client(app, store)
    by_definition = client.start("booking_by_definition", {}).workflow_id
    overridden = client.start("booking_by_definition", {}, deadline=3600).workflow_id
    with running_worker(app, store):
        assert client.wait(by_definition, timeout=20).state == "compensated"
        client.signal("confirmed", {"ok": True}, workflow_id=overridden)
        status = client.wait(overridden, timeout=20)
    assert status.state == "completed"
    assert client.view(overridden).of(CANCEL_REQUESTED) == []
    assert "deadline" in (client.status(by_definition).reason or "")


def test_a_custom_supervisor_gets_the_deadline_as_a_cancel(store: Store) -> None:
    client = Client(app, store)
    workflow_id = client.start("patient", {}).workflow_id
    with running_worker(app, store):
        status = client.wait(workflow_id, timeout=20)
    assert status.state == "compensated" and "deadline (0.3s) passed" in (status.reason or "")


def test_a_code_first_workflow_rolls_back_at_its_deadline(store: Store) -> None:
    client = Client(app, store)
    late = client.start("coded_booking", {}).workflow_id
    in_time = client.start("coded_booking", {}, deadline=3600).workflow_id
    client.signal("confirmed", {"ok": True}, workflow_id=in_time)
    with running_worker(app, store):
        status = client.wait(late, timeout=20)
        assert client.wait(in_time, timeout=20).state == "completed"
    assert status.state == "compensated" and "deadline (0.4s) passed" in (status.reason or "")
    assert ("unbook", late) in LOG and ("unbook", in_time) not in LOG


def test_a_workflow_that_ends_in_time_keeps_its_result(store: Store) -> None:
    client = Client(app, store)
    on_time = client.start("booking", {}, deadline=3600).workflow_id
    client.signal("confirmed", {"ok": True}, workflow_id=on_time)
    with running_worker(app, store):
        assert client.wait(on_time, timeout=20).state == "completed"


def test_bad_deadlines_are_refused_clearly(store: Store) -> None:
    client = Client(app, store)
    for bad in (0, -1, float("nan"), "2h", True):
        with pytest.raises(InputError, match="deadline"):
            client.start("booking", {}, deadline=bad)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="deadline must be more than 0"):
        App().workflow("x", [Step("a", wait_for="e")], deadline=0)


def test_start_deadline_from_the_cli(store_url: str) -> None:
    ref = "tests.apps.long_running:app"
    args = ["start", "booking", "--app", ref, "--db", store_url, "--deadline", "2h"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    store = open_store(store_url)
    try:
        started = Client(app, store).view(result.output.strip()).latest(WORKFLOW_STARTED)
    finally:
        store.close()
    assert started is not None and started.get("deadline") == 7200
    bad = CliRunner().invoke(main, [*args[:-1], "soon"])
    assert bad.exit_code == 2 and "'soon' is not a duration" in bad.output
