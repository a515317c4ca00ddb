"""The two-webhooks example on both backends: any order, a failure, a missing webhook."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from examples.webhooks import ACTIVATED, CHECKOUT, REFUNDED, SUBSCRIPTION, app, main, webhook

from steadyhand import Client
from steadyhand.store import Store
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(store: Store) -> Iterator[Client]:
    ACTIVATED.clear()
    REFUNDED.clear()
    with running_worker(app, store):
        yield Client(app, store)


@pytest.mark.parametrize("order", [(CHECKOUT, SUBSCRIPTION), (SUBSCRIPTION, CHECKOUT)])
def test_both_webhooks_in_either_order_activate_once(
    client: Client, order: tuple[str, str]
) -> None:
    ids = {webhook(client, event, "ada") for event in order}
    ids.add(webhook(client, order[0], "ada"))  # a redelivery changes nothing
    assert len(ids) == 1
    status = client.wait(ids.pop(), timeout=15)
    assert status.state == "completed"
    assert ACTIVATED == ["ada"] and REFUNDED == []
    assert client.view(status.id).count("event_received") == 2


def test_a_failed_webhook_takes_the_failure_path(client: Client) -> None:
    webhook(client, SUBSCRIPTION, "cy", ok=False)
    workflow_id = webhook(client, CHECKOUT, "cy")
    status = client.wait(workflow_id, timeout=15)
    assert status.state == "failed"
    assert "subscription.created reported a failure" in (status.reason or "")
    assert REFUNDED == ["cy"] and ACTIVATED == []


def test_a_missing_webhook_fails_at_the_deadline(client: Client) -> None:
    workflow_id = webhook(client, CHECKOUT, "dee", deadline=0.5)
    status = client.wait(workflow_id, timeout=15)
    assert status.state == "failed"
    assert "subscription.created never arrived" in (status.reason or "")
    assert ACTIVATED == [] and REFUNDED == []


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "ada: completed" in out and "bob: completed" in out
    assert "cy: failed" in out and "dee: failed" in out
