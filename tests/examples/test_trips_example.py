"""The README's complete example (examples/trips.py) against its real booking services, on
both backends: a slow answer makes httpx time out after the seat was booked; the outcome is
uncertain, so it is probed; a sold-out hotel then rolls the trip back, and the flights
ledger is audited: no live booking after `compensated`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from examples.bookings_service import live_bookings, serve

from examples import trips
from steadyhand import Client
from steadyhand.store import Store
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(90)


class Service:
    def __init__(self, ledger: Path) -> None:
        self.ledger = str(ledger)
        self.server = serve(0, self.ledger)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def configure(self, **settings: object) -> None:
        httpx.post(f"{self.url}/admin", json=settings).raise_for_status()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Service, Service]]:
    flights, hotels = Service(tmp_path / "flights.db"), Service(tmp_path / "hotels.db")
    monkeypatch.setattr(trips, "FLIGHTS", flights.url)
    monkeypatch.setattr(trips, "HOTELS", hotels.url)
    monkeypatch.setattr(trips, "TIMEOUT", 0.3)
    yield flights, hotels
    flights.stop()
    hotels.stop()


def test_a_slow_answer_then_a_rollback_leaves_no_live_booking(
    store: Store, services: tuple[Service, Service]
) -> None:
    flights, hotels = services
    flights.configure(delay=1.0)  # booked at once, answered after httpx gave up
    hotels.configure(sold_out=True)  # so the trip rolls back
    client = Client(trips.app, store)
    with running_worker(trips.app, store):
        started = client.start("trip", {"from": "LIS", "to": "OSL"}, key="order-1017")
        status = client.wait(started.workflow_id, timeout=60)
    view = client.view(started.workflow_id)
    assert status.state == "compensated", status.reason
    uncertain = [f for f in view.facts if f.kind == "attempt_uncertain" and f.step == "flight"]
    assert uncertain and "ReadTimeout" in str(uncertain[0].get("error"))
    assert view.count("probe_succeeded") >= 1  # asked the service before anything else
    assert view.count("compensation_succeeded") == 1
    assert [f.step for f in view.facts if f.kind == "compensation_succeeded"] == ["flight"]
    assert live_bookings(flights.ledger) == []
    assert live_bookings(hotels.ledger) == []


def test_the_happy_path_books_both(store: Store, services: tuple[Service, Service]) -> None:
    flights, hotels = services
    client = Client(trips.app, store)
    with running_worker(trips.app, store):
        started = client.start("trip", {"from": "LIS", "to": "OSL"})
        status = client.wait(started.workflow_id, timeout=60)
    assert status.state == "completed", status.reason
    assert set(status.result) == {"flight", "hotel"}  # a saga's result is {step: result}
    assert len(live_bookings(flights.ledger)) == 1
    assert len(live_bookings(hotels.ledger)) == 1
