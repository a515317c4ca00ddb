"""HTTP ingress on both backends: good, bad, replayed and oversized deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from steadyhand import Client
from steadyhand.store import Store
from steadyhand.web.ingress import create_ingress, sign
from tests.apps.events import app

SECRET = "whsec_test_8c1f"


@pytest.fixture
def http(store: Store) -> Iterator[TestClient]:
    with TestClient(create_ingress(Client(app, store), {"shop": SECRET}, max_body=4096)) as c:
        yield c


def post(http: TestClient, message: object, *, secret: str = SECRET, t: float | None = None,
         source: str = "shop", header: str | None = None) -> object:  # fmt: skip
    body = json.dumps(message).encode()
    signature = header if header is not None else sign(secret, body, t)
    return http.post(f"/events/{source}", content=body, headers={"Steadyhand-Signature": signature})


def start_message(event: str, **extra: object) -> dict[str, object]:
    return {
        "event": event,
        "key": "cust-1",
        "payload": {"status": "ok"},
        "start": {"workflow": "join", "input": {"needed": ["a", "b"]}},
        **extra,
    }


def test_signed_event_starts_the_workflow_and_keeps_the_raw_body(
    http: TestClient, store: Store
) -> None:
    answer = post(http, start_message("a", dedupe_key="evt-1"))
    assert answer.status_code == 202, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert body["started"] and body["recorded"]
    view = Client(app, store).view(body["workflow_id"])
    event = view.event("a")
    assert event is not None and event.get("source") == "shop"
    assert json.loads(event.get("raw"))["dedupe_key"] == "evt-1"
    again = post(http, start_message("a", dedupe_key="evt-1")).json()  # type: ignore[attr-defined]
    assert again["duplicate"] and again["workflow_id"] == body["workflow_id"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"secret": "wrong"}, "does not match"),
        ({"header": ""}, "missing"),
        ({"t": time.time() - 3600}, "replay"),
        ({"source": "other"}, "unknown source"),
        ({"header": "t=abc,v1=00"}, "no valid t"),
    ],
)
def test_bad_signatures_get_401_and_record_nothing(
    http: TestClient, store: Store, kwargs: dict[str, object], reason: str
) -> None:
    answer = post(http, start_message("a"), **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 401  # type: ignore[attr-defined]
    assert reason in answer.json()["error"]  # type: ignore[attr-defined]
    with store.snapshot() as tx:
        assert tx.workflow_by_key("cust-1") is None


def test_malformed_bodies_get_400_with_what_to_fix(http: TestClient) -> None:
    body = b"{not json"
    answer = http.post(
        "/events/shop", content=body, headers={"Steadyhand-Signature": sign(SECRET, body)}
    )
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]
    assert post(http, {"payload": 1}).status_code == 400  # type: ignore[attr-defined]
    wrong = post(http, {"event": "a", "key": "k", "surprise": 1}).json()  # type: ignore[attr-defined]
    assert "unknown fields ['surprise']" in wrong["error"]


def test_oversized_bodies_get_413(http: TestClient) -> None:
    answer = post(http, start_message("a", payload={"blob": "x" * 10_000}))
    assert answer.status_code == 413  # type: ignore[attr-defined]


def test_event_for_unknown_workflow_without_start_gets_404(http: TestClient) -> None:
    answer = post(http, {"event": "a", "key": "nobody"})
    assert answer.status_code == 404  # type: ignore[attr-defined]
