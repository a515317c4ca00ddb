"""Listing and searching workflows from code (`Client.list`) and from the CLI (`list`
filters), on both backends: state, name, key, id prefix, service, input values, time, pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from steadyhand import Client, InputError
from steadyhand.cli.main import main
from steadyhand.store import Store
from tests.apps.shop import app
from tests.conftest import running_worker


@pytest.fixture
def shop(store: Store) -> dict[str, str]:
    """Four orders and an approval, ended as their inputs say (the approval still waits)."""
    client = Client(app, store)
    ids = {
        "paid": client.start("order", {"amount": 5, "customer": {"id": 7}}, key="o-1"),
        "big": client.start("order", {"amount": 500, "customer": {"id": 8}}, key="o-2"),
        "declined": client.start("order", {"amount": 9, "decline": True}, key="o-3"),
        "lost": client.start("order", {"amount": 1, "undeliverable": True}, key="o-4"),
        "approval": client.start("approval", {"customer": {"id": 7}}, key="a-1"),
    }
    with running_worker(app, store):
        for name in ("paid", "big", "declined", "lost"):
            client.wait(ids[name].workflow_id, timeout=30)
    return {name: started.workflow_id for name, started in ids.items()}


def found(client: Client, **filters: Any) -> set[str]:
    return {row.id for row in client.list(**filters).rows}


def test_client_list_filters_by_state_name_key_and_id_prefix(
    store: Store, shop: dict[str, str]
) -> None:
    client = Client(app, store)
    assert found(client) == set(shop.values())
    assert found(client, state="completed") == {shop["paid"], shop["big"]}
    assert found(client, state="compensated") == {shop["declined"], shop["lost"]}
    assert found(client, state="waiting") == {shop["approval"]}
    assert found(client, name="approval") == {shop["approval"]}
    assert found(client, key="o-3") == {shop["declined"]}
    assert found(client, key="o-3", state="compensated") == {shop["declined"]}
    assert found(client, key="o-3", state="completed") == set()
    assert found(client, id_prefix=shop["big"][:20]) == {shop["big"]}
    assert found(client, id_prefix="zz%") == set()
    assert found(client, since=datetime.now(UTC) - timedelta(hours=1)) == set(shop.values())
    assert found(client, since="2099-01-01T00:00") == set()


def test_client_list_filters_by_service_and_input_values(
    store: Store, shop: dict[str, str]
) -> None:
    client = Client(app, store)
    orders = {shop[n] for n in ("paid", "big", "declined", "lost")}
    assert found(client, service="payments") == orders
    assert found(client, service="nope") == set()
    assert found(client, input={"amount": 500}) == {shop["big"]}
    assert found(client, input={"customer.id": 7}) == {shop["paid"], shop["approval"]}
    assert found(client, input={"customer.id": 7}, name="order") == {shop["paid"]}
    assert found(client, input={"customer": {"id": 8}}) == {shop["big"]}
    assert found(client, input={"decline": True}, state="compensated") == {shop["declined"]}
    assert found(client, input={"amount": "500"}) == set(), "a string is not the number"


def test_client_list_pages_with_a_cursor(store: Store, shop: dict[str, str]) -> None:
    client = Client(app, store)
    seen: list[str] = []
    cursor = None
    while True:
        page = client.list(limit=2, cursor=cursor)
        seen += [row.id for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(shop.values())


def test_client_list_refuses_bad_filters_clearly(store: Store) -> None:
    client = Client(app, store)
    with pytest.raises(InputError, match="unknown state"):
        client.list(state="done")
    with pytest.raises(InputError, match="input key"):
        client.list(input={"a'; DROP": 1})
    with pytest.raises(InputError, match="timezone-aware"):
        client.list(since=datetime(2020, 1, 1))


def test_cli_list_filters_match_the_client(store: Store, shop: dict[str, str]) -> None:
    def ids(*args: str) -> set[str]:
        result = CliRunner().invoke(main, ["list", *args, "--json", "--db", store.url])
        assert result.exit_code == 0, result.output
        return {row["id"] for row in json.loads(result.stdout)["workflows"]}

    assert ids("--key", "o-2") == {shop["big"]}
    assert ids("--id", shop["lost"][:18]) >= {shop["lost"]}
    assert ids("--service", "payments", "--state", "completed") == {shop["paid"], shop["big"]}
    assert ids("--input", "customer.id=7") == {shop["paid"], shop["approval"]}
    assert ids("--input", "customer.id=7", "--input", "amount=5") == {shop["paid"]}
    bad = CliRunner().invoke(main, ["list", "--input", "amount", "--db", store.url])
    assert bad.exit_code == 2 and "expected KEY=VALUE" in bad.output
