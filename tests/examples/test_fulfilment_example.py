"""The order-fulfilment example on both backends: wf.map over the lines with max_parallel,
rollback of every reservation when one line is refused, and the warehouse's ledger audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from examples.fulfilment import (
    MAX_PARALLEL,
    WAREHOUSE_URL,
    Warehouse,
    app,
    audit,
    main,
    sample_order,
)

from steadyhand import Client, WorkerOptions
from steadyhand.store import Store
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(90)

# Enough calls in flight that only max_parallel can keep an order's reservations to three.
WIDE = WorkerOptions(concurrency=16, lease_seconds=5.0, poll_interval=0.02, watchdog_interval=0.3)


@pytest.fixture
def house() -> Iterator[Warehouse]:
    warehouse = Warehouse(latency=0.1)
    WAREHOUSE_URL["url"] = warehouse.start()
    yield warehouse
    warehouse.stop()


@pytest.fixture
def client(store: Store, house: Warehouse) -> Iterator[Client]:
    with running_worker(app, store, WIDE):
        yield Client(app, store)


def test_orders_complete_or_roll_back_and_the_ledger_agrees(
    client: Client, house: Warehouse
) -> None:
    orders = {client.start("fulfil_order", sample_order(n, lines=8)).workflow_id: n for n in (0, 3)}
    ended = {}
    for wid in orders:
        status = client.wait(wid, timeout=60)
        ended[wid] = (status.state, status.result)
    assert audit(house.ledger(), ended) == []
    done, refused = list(orders)
    assert ended[done][0] == "completed"
    assert len(ended[done][1]["reservations"]) == 8
    # Results come back in line order whatever order the calls finished in.
    skus = [line["sku"] for line in sample_order(0, lines=8)["lines"]]
    sku_of = {r["id"]: r["sku"] for r in house.reservations.values()}
    assert [sku_of[r] for r in ended[done][1]["reservations"]] == skus
    # One key per line, numbered in program order (reserve_item, reserve_item#2, ...).
    keys = {r["key"] for r in house.reservations.values() if r["order"] == done}
    assert keys == {f"{done}:reserve_item"} | {f"{done}:reserve_item#{i}" for i in range(2, 9)}
    # Order 3 asks for 500 figs as its last line: everything reserved before is released.
    assert ended[refused][0] == "compensated"
    released = [r for r in house.reservations.values() if r["order"] == refused]
    assert released and all(r["status"] == "released" for r in released)
    assert not [c for c in house.charges.values() if c["order"] == refused]
    # Parallel, but never more than max_parallel of one order at once; the 503s were retried.
    assert 1 < house.ledger()["max_in_flight"][done] <= MAX_PARALLEL
    assert house.refused_once


def test_the_audit_catches_a_ledger_at_odds_with_the_outcome() -> None:
    ledger = {
        "reservations": [
            {"key": "w1:reserve_item", "order": "w1", "id": "R-1", "status": "reserved"},
            {"key": "w2:reserve_item", "order": "w2", "id": "R-2", "status": "reserved"},
            {"key": "zz:other", "order": "zz", "id": "R-3", "status": "reserved"},
        ],
        "charges": [{"order": "w1"}],
        "max_in_flight": {"w1": MAX_PARALLEL + 1},
    }
    ended = {
        "w1": ("completed", {"reservations": ["R-1"], "charge": "C-1"}),
        "w2": ("compensated", None),
    }
    problems = audit(ledger, ended)
    assert len(problems) == 3
    assert "stray key" in problems[0] and "w2: compensated but holds" in problems[1]
    assert "in flight at once" in problems[2]


def test_main_runs_and_passes_its_audit(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--orders", "4", "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert "order 3: compensated" in out and "audit: passed" in out
