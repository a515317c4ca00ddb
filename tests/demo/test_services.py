"""The demo's unreliable remote services, tested as real processes over real sockets.

Checks what the engine relies on: idempotent bookings, safe cancels, honest status lookups,
and faults (lost confirmations, hangs, 503s, outages) that look real to an httpx client.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from steadyhand.demo.faults import PROFILES, is_sold_out, outage_windows
from steadyhand.demo.service_process import RunningService, fetch_ledger, set_faults, start_service
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)
SEED = 7


@pytest.fixture(scope="module")
def shared_flights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with start_service("flights", tmp_path_factory.mktemp("svc"), "none", SEED) as service:
        yield service


@pytest.fixture
def flights(shared_flights: RunningService) -> RunningService:
    """The shared service, back on the reliable profile; tests use their own keys."""
    set_faults(shared_flights.url, "none")
    return shared_flights


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"


def book(client: httpx.Client, url: str, key: str, trip: str = "trip-1") -> httpx.Response:
    return client.post(f"{url}/bookings", json={"key": key, "trip": trip, "details": {"n": 1}})


def rows_for(url: str, key: str) -> list[dict[str, Any]]:
    return [row for row in fetch_ledger(url)["bookings"] if row["key"] == key]


def test_same_key_twice_books_once(flights: RunningService, client: httpx.Client) -> None:
    key = new_key()
    first, second = book(client, flights.url, key), book(client, flights.url, key)
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json()["booking_id"] == second.json()["booking_id"]
    assert first.json()["status"] == "booked"
    assert first.json()["details"] == {"n": 1}
    assert len(rows_for(flights.url, key)) == 1


def test_cancel_twice_and_cancel_nothing_are_safe(
    flights: RunningService, client: httpx.Client
) -> None:
    key = new_key()
    booking_id = book(client, flights.url, key).json()["booking_id"]
    for _ in range(2):
        answer = client.delete(f"{flights.url}/bookings/{key}")
        assert answer.status_code == 200
        assert answer.json()["status"] == "cancelled"
        assert answer.json()["booking_id"] == booking_id
    nothing = client.delete(f"{flights.url}/bookings/{new_key()}")
    assert (nothing.status_code, nothing.json()["status"]) == (200, "not_found")
    assert [r["status"] for r in rows_for(flights.url, key)] == ["cancelled"]


def test_status_lookup(flights: RunningService, client: httpx.Client) -> None:
    key = "trip-9/flight/step 1"  # slashes and spaces must survive the path
    booking_id = book(client, flights.url, key).json()["booking_id"]
    booked = client.get(f"{flights.url}/bookings/{key}")
    assert (booked.status_code, booked.json()["status"]) == (200, "booked")
    assert booked.json()["booking_id"] == booking_id
    client.delete(f"{flights.url}/bookings/{key}")
    cancelled = client.get(f"{flights.url}/bookings/{key}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    unknown = client.get(f"{flights.url}/bookings/{new_key()}")
    assert (unknown.status_code, unknown.json()["status"]) == (404, "unknown")


def test_rebooking_a_cancelled_key_is_refused(
    flights: RunningService, client: httpx.Client
) -> None:
    key = new_key()
    book(client, flights.url, key)
    client.delete(f"{flights.url}/bookings/{key}")
    again = book(client, flights.url, key)
    assert again.status_code == 409
    assert again.json()["error"] == "cancelled"
    assert len(rows_for(flights.url, key)) == 1


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"{not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"trip": "t"}', "key must be"),
        (b'{"key": "k", "trip": ""}', "trip must be"),
        (b'{"key": "k", "trip": "t", "details": [1]}', "details must be"),
    ],
)
def test_malformed_booking_is_400(
    flights: RunningService, client: httpx.Client, body: bytes, complaint: str
) -> None:
    answer = client.post(f"{flights.url}/bookings", content=body)
    assert answer.status_code == 400
    assert complaint in answer.json()["message"]


def test_sold_out_is_deterministic_per_key(flights: RunningService, client: httpx.Client) -> None:
    set_faults(flights.url, "custom", p_sold_out=0.5)
    keys = [new_key() for _ in range(30)]
    answers = [[book(client, flights.url, k).status_code for k in keys] for _ in range(2)]
    refused = [[code == 409 for code in attempt] for attempt in answers]
    assert refused[0] == refused[1], "a retry of the same key must get the same answer"
    expected = [409 if is_sold_out(SEED, "flights", k, 0.5) else 201 for k in keys]
    assert answers[0] == expected, "the service must agree with the seeded hash"
    assert 409 in answers[0] and 201 in answers[0]
    sold_out = {k for k, code in zip(keys, answers[0], strict=True) if code == 409}
    booked_keys = {row["key"] for row in fetch_ledger(flights.url)["bookings"]}
    assert not sold_out & booked_keys, "a sold-out answer must write nothing"
    probe = client.get(f"{flights.url}/bookings/{next(iter(sold_out))}")
    assert probe.status_code == 404
    other_seed = [is_sold_out(SEED + 1, "flights", k, 0.5) for k in keys]
    assert other_seed != [code == 409 for code in expected]


def test_lost_confirmation_drops_the_answer_after_committing(
    flights: RunningService, client: httpx.Client
) -> None:
    set_faults(flights.url, "custom", p_lost_confirmation=1.0)
    key = new_key()
    with pytest.raises(httpx.RemoteProtocolError):
        book(client, flights.url, key)
    set_faults(flights.url, "none")
    probe = client.get(f"{flights.url}/bookings/{key}")
    assert probe.json()["status"] == "booked"
    retry = book(client, flights.url, key)
    assert retry.status_code == 200
    assert retry.json()["booking_id"] == probe.json()["booking_id"]
    assert len(rows_for(flights.url, key)) == 1


def test_hostile_profile_loses_confirmations_on_the_wire(
    flights: RunningService, client: httpx.Client
) -> None:
    """The named hostile profile, with only its lost-confirmation dice forced to 1."""
    quiet: dict[str, Any] = {"p_transient": 0, "p_hang": 0, "p_sold_out": 0, "outage_gap_s": None}
    set_faults(flights.url, "hostile", p_lost_confirmation=1.0, **quiet)
    key = new_key()
    with pytest.raises(httpx.TransportError):
        book(client, flights.url, key)
    assert [r["status"] for r in rows_for(flights.url, key)] == ["booked"]


def test_hang_outlasts_the_client_and_ends_when_it_leaves(
    flights: RunningService, client: httpx.Client
) -> None:
    set_faults(flights.url, "custom", p_hang=1.0)
    key = new_key()
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post(f"{flights.url}/bookings", json={"key": key, "trip": "t"}, timeout=0.5)
    assert time.monotonic() - started < 2.0
    eventually(
        lambda: client.get(f"{flights.url}/stats").json()["faults"].get("hang_ended_by_client"),
        timeout=3.0,
        interval=0.05,
        what="the server ending the hang after the client left",
    )
    assert rows_for(flights.url, key) == []


def test_transient_faults_are_503_with_retry_after(
    flights: RunningService, client: httpx.Client
) -> None:
    set_faults(flights.url, "custom", p_transient=1.0)
    key = new_key()
    answers = [
        book(client, flights.url, key),
        client.delete(f"{flights.url}/bookings/{key}"),
        client.get(f"{flights.url}/bookings/{key}"),
    ]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] in {"0", "1"}
        assert answer.json()["reason"] == "transient"
    assert client.get(f"{flights.url}/health").status_code == 200
    assert rows_for(flights.url, key) == []


def test_outages_are_seeded_windows_and_spare_health(
    flights: RunningService, client: httpx.Client
) -> None:
    windows = outage_windows(SEED, "flights", (10.0, 15.0), (1.0, 2.0))
    assert windows == outage_windows(SEED, "flights", (10.0, 15.0), (1.0, 2.0))
    assert windows != outage_windows(SEED + 1, "flights", (10.0, 15.0), (1.0, 2.0))
    assert all(1.0 <= end - start <= 2.0 for start, end in windows)
    assert PROFILES["hostile"].outage_gap_s is not None
    set_faults(flights.url, "custom", outage_gap_s=[0.2, 0.2], outage_duration_s=[0.2, 0.2])
    seen: Counter[int] = Counter()

    def both_seen() -> bool:
        seen[client.get(f"{flights.url}/bookings/{new_key()}").status_code] += 1
        assert client.get(f"{flights.url}/health").status_code == 200
        return seen[503] > 0 and seen[404] > 0

    eventually(both_seen, timeout=5.0, what="an outage and a normal answer")


def test_admin_rejects_nonsense(flights: RunningService, client: httpx.Client) -> None:
    for body in (
        {"profile": "chaos"},
        {"profile": "custom", "p_hang": 2},
        {"profile": "custom", "p_typo": 0.5},
        {"profile": "custom", "outage_gap_s": [3, 1]},
    ):
        answer = client.post(f"{flights.url}/admin/faults", json=body)
        assert answer.status_code == 400, body
    assert client.get(f"{flights.url}/admin/faults").json()["profile"]["name"] == "none"


def test_concurrent_bookings_never_double_book(
    flights: RunningService, client: httpx.Client
) -> None:
    keys = [new_key() for _ in range(50)]
    attempts = [key for key in keys for _ in range(4)]  # a key's 4 attempts arrive together
    with (
        httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=64)) as shared,
        ThreadPoolExecutor(max_workers=32) as pool,
    ):
        answers = list(pool.map(lambda k: (k, book(shared, flights.url, k)), attempts))
    assert Counter(a.status_code for _, a in answers) == {201: 50, 200: 150}
    ids: dict[str, set[str]] = {}
    for key, answer in answers:
        ids.setdefault(key, set()).add(answer.json()["booking_id"])
    assert all(len(found) == 1 for found in ids.values())
    ledger = fetch_ledger(flights.url)
    assert ledger["double_booked"] == []
    assert sum(row["key"] in ids for row in ledger["bookings"]) == 50


def test_ledger_survives_a_restart_and_stop_ends_hangs(tmp_path: Path) -> None:
    key = new_key()
    with start_service("hotels", tmp_path, "none", SEED) as first, httpx.Client() as client:
        booked = book(client, first.url, key).json()
        assert booked["booking_id"].startswith("HO-")
        port = int(first.url.rsplit(":", 1)[1])
    with (
        start_service("hotels", tmp_path, "none", SEED, port=port) as second,
        httpx.Client(timeout=5.0) as client,
    ):
        assert second.url == first.url
        again = book(client, second.url, key)
        assert (again.status_code, again.json()["booking_id"]) == (200, booked["booking_id"])
        set_faults(second.url, "custom", p_hang=1.0)
        outcome: list[object] = []

        def hanging_request() -> None:
            try:
                outcome.append(book(client, second.url, new_key()).status_code)
            except httpx.TransportError as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=hanging_request)
        waiter.start()
        eventually(
            lambda: httpx.get(f"{second.url}/stats").json()["faults"].get("hang"),
            what="the request hanging",
        )
        started = time.monotonic()
        second.stop()
        assert time.monotonic() - started < 3.0, "a hanging request held up the shutdown"
        waiter.join(5.0)
        assert outcome, "the hanging request never ended"


def test_each_kind_serves_its_own_ledger(tmp_path: Path) -> None:
    services = [start_service(kind, tmp_path, "flaky", SEED) for kind in ("flights", "cars")]
    try:
        with httpx.Client(timeout=5.0) as client:
            for service in services:
                health = client.get(f"{service.url}/health").json()
                assert health == {"status": "ok", "kind": service.kind}
                assert fetch_ledger(service.url)["kind"] == service.kind
                assert service.ledger_path.exists()
    finally:
        for service in services:
            service.stop()
    assert PROFILES["flaky"].sold_out_rate("hotels") > PROFILES["flaky"].sold_out_rate("cars")
