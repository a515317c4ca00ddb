"""The example of issue 14 runs as written: on both backends with real workers, and on the
test kit's virtual clock with its full hour of sleep and ten minutes of waiting."""

from __future__ import annotations

from typing import Any

from steadyhand import Client
from steadyhand.store import Store
from steadyhand.testing import Event, Simulator
from tests.apps.codefirst import wait_until
from tests.apps.issue_example import DONE, app
from tests.conftest import running_worker

ORDER: dict[str, Any] = {"id": 7, "vip": True, "emails": ["a@x.test", "b@x.test"], "nap": 0.2}
EXPECTED = {
    "flight": {"ref": "flight-7"},
    "hotel": {"ref": "hotel-7"},
    "car": {"ref": "car-7"},
    "shipment": {"tracking": "TRK-7"},
    "paid": {"amount": 120},
    "receipts": ["sent:a@x.test", "sent:b@x.test"],
}


def test_the_issue_example_runs_on_a_real_store(store: Store) -> None:
    client = Client(app, store)
    started = client.start("trip", ORDER)
    wid = started.workflow_id
    with running_worker(app, store):
        wait_until(lambda: client.view(wid).has("wait_began"))
        client.signal("payment.confirmed", {"amount": 120}, workflow_id=wid)
        status = client.wait(wid, timeout=30)
    assert status.state == "completed", status.reason
    assert status.result == EXPECTED
    mine = [entry for entry in DONE if wid in entry]
    assert mine[0] == f"flight:{wid}:book_flight"
    assert sorted(mine[1:3]) == [f"car:{wid}:book_car", f"hotel:{wid}:book_hotel"]  # any order
    assert mine[3] == f"gift:{wid}:send_gift"
    assert sorted(mine[4:]) == [f"receipt:{wid}:{email}" for email in ORDER["emails"]]


def test_the_issue_example_on_the_virtual_clock_and_its_rollback() -> None:
    order = {k: v for k, v in ORDER.items() if k != "nap"}
    paid = Event("payment.confirmed", {"amount": 120}, after=3600 + 60)
    run = Simulator(app).run("trip", order, events=[paid])
    assert run.state == "completed" and run.result == EXPECTED
    assert run.elapsed == 3660
    late = Simulator(app).run("trip", order)  # no payment: the wait times out after 600 s
    assert late.state == "compensated" and "payment.confirmed" in (late.reason or "")
    assert late.elapsed == 3600 + 600
    assert late.steps("compensation") == ["book_car", "book_hotel", "book_flight"]
