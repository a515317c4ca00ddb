"""Typed inputs on both backends: a pydantic model or dataclass annotation is validated at
start (nothing is written for a bad input) and handed to the agent, or to the code-first
workflow, as a typed value."""

from __future__ import annotations

import pytest

from steadyhand import App, Client, Context, DefinitionError, InputError, Step, Workflow
from steadyhand.store import Store
from steadyhand.testing import Simulator
from tests.apps.typed import SEEN, Address, Order, Parcel, app
from tests.conftest import running_worker


def test_a_typed_agent_gets_its_input_validated_and_typed(store: Store) -> None:
    client = Client(app, store)
    SEEN.clear()
    order = client.start("order", {"sku": "A-1", "quantity": "3"}).workflow_id
    parcel = client.start("parcel", Parcel(2.5, Address("Oslo", ["Storgata 1"]))).workflow_id
    with running_worker(app, store):
        assert client.wait(order, timeout=30).result == {"reserve": {"reserved": 3}}
        assert client.wait(parcel, timeout=30).result == {"send": {"city": "Oslo"}}
    assert Order(sku="A-1", quantity=3) in SEEN
    assert Parcel(2.5, Address("Oslo", ["Storgata 1"])) in SEEN
    assert client.view(order).input == {"sku": "A-1", "quantity": 3, "note": None}
    assert client.view(parcel).input == {
        "weight": 2.5,
        "to": {"city": "Oslo", "lines": ["Storgata 1"]},
    }


def test_a_bad_typed_input_is_refused_at_start_naming_the_field(store: Store) -> None:
    client = Client(app, store)
    with pytest.raises(InputError, match=r"not a valid Order: quantity: .*greater than 0"):
        client.start("order", {"sku": "A-1", "quantity": 0})
    with pytest.raises(InputError, match=r"to\.city is required for Address"):
        client.start("parcel", {"weight": 1, "to": {}})
    with pytest.raises(InputError, match=r"weight must be a number, not a string"):
        client.start("declared", {"weight": "heavy", "to": {"city": "Oslo"}})
    with pytest.raises(InputError, match="unknown field 'colour'"):
        client.start("declared", {"weight": 1, "to": {"city": "Oslo"}, "colour": "red"})
    assert client.list().rows == [], "nothing was written"


def test_a_wrong_annotation_is_a_definition_error() -> None:
    other = App()

    def agent(ctx: Context, order: dict) -> None:  # type: ignore[type-arg]
        return None

    with pytest.raises(DefinitionError, match="annotate it with a pydantic model or a dataclass"):
        other.agent()(agent)
    with pytest.raises(DefinitionError, match="input= must be a pydantic model or a dataclass"):
        other.workflow("w", [Step("s", wait_for="x")], input=dict)


def test_a_code_first_workflow_annotated_with_a_dataclass_validates_at_start(
    store: Store,
) -> None:
    flows = App()

    @flows.workflow()
    async def shipment(wf: Workflow, parcel: Parcel) -> str:
        return f"sent {parcel.weight} kg to {parcel.to.city}"  # the dataclass, not a dict

    client = Client(flows, store)
    with pytest.raises(InputError, match=r"weight must be a number"):
        client.start("shipment", {"weight": "heavy", "to": {"city": "Oslo"}})
    started = client.start("shipment", Parcel(1.5, Address("Oslo")))
    assert client.view(started.workflow_id).input == {
        "weight": 1.5,
        "to": {"city": "Oslo", "lines": []},
    }
    with running_worker(flows, store):
        assert client.wait(started.workflow_id, timeout=30).result == "sent 1.5 kg to Oslo"


def test_a_code_first_workflow_annotated_with_a_model_receives_the_model() -> None:
    flows = App()

    @flows.workflow()
    async def ordered(wf: Workflow, order: Order) -> dict[str, object]:
        assert isinstance(order, Order)
        return {"sku": order.sku, "twice": order.quantity * 2}

    @flows.workflow()
    async def untyped(wf: Workflow, order: dict[str, object]) -> str:
        return type(order).__name__

    simulated = Simulator(flows)
    assert simulated.run("ordered", {"sku": "A-1", "quantity": 2}).result == {
        "sku": "A-1",
        "twice": 4,
    }
    assert simulated.run("untyped", {"sku": "A-1"}).result == "dict"
