"""The ingress under attack, on both backends (issue 15 §2, §3, §8): sources kept apart,
DNS rebinding and cross-origin posts refused, hostile text answered 400/401, never 500."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from steadyhand import App, Client, Step, Workflow
from steadyhand.core.facts import EVENT_RECEIVED, SUPERVISOR_RAN
from steadyhand.store import Store
from steadyhand.web.hosts import allowed_hosts
from steadyhand.web.ingress import create_ingress, sign
from steadyhand.web.sources import Source
from tests.apps.events import app
from tests.conftest import running_worker

SHOP, BANK, OPEN = "whsec_shop_0123456789", "whsec_bank_0123456789", "whsec_open_0123456789"
JOIN = {"workflow": "join", "input": {"needed": ["a", "b"]}}


@pytest.fixture
def http(store: Store) -> Iterator[TestClient]:
    sources: dict[str, str | Source] = {
        "shop": Source(SHOP, events=frozenset({"a", "b"}), starts=frozenset({"join"})),
        "bank": Source(BANK, events=frozenset({"a"}), starts=frozenset()),
        "open": OPEN,  # a plain secret: may send anything, as before
    }
    ingress = create_ingress(Client(app, store), sources, allowed_hosts=allowed_hosts("127.0.0.1"))
    with TestClient(ingress, base_url="http://127.0.0.1:8787") as client:
        yield client


def send(
    http: TestClient,
    message: Any,
    source: str = "shop",
    secret: str = SHOP,
    headers: dict[str, str] | None = None,
) -> Any:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return http.post(
        f"/events/{source}",
        content=body,
        headers={"Steadyhand-Signature": sign(secret, body), **(headers or {})},
    )


def facts(store: Store) -> int:
    with store.snapshot() as tx:
        return int(tx.query("SELECT count(*) FROM facts").fetchone()[0])


# -- §2 sources kept apart ---------------------------------------------------------------------


def test_a_source_sends_only_its_events_and_starts_only_its_workflows(
    http: TestClient, store: Store
) -> None:
    assert send(http, {"event": "a", "key": "k1", "start": JOIN}).status_code == 202
    before = facts(store)
    refused = [
        send(http, {"event": "refund", "key": "k1"}),  # shop may not send this event
        send(http, {"event": "a", "key": "k2", "start": JOIN}, "bank", BANK),  # nor bank start
        send(http, {"event": "b", "key": "k1"}, "bank", BANK),  # bank sends only a
        send(
            http,
            {"event": "a", "key": "k3", "start": {"workflow": "checkout", "input": None}},
        ),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert facts(store) == before  # nothing recorded
    assert send(http, {"event": "a", "key": "k1"}, "bank", BANK).status_code == 202
    plain = send(http, {"event": "zz", "key": "k1"}, "open", OPEN)
    assert plain.status_code == 202


def test_a_waiting_step_accepts_its_event_only_from_named_sources(store: Store) -> None:
    guarded = App()
    guarded.workflow("payout", [Step("settled", wait_for="paid", sources=("bank",))])
    client = Client(guarded, store)
    workflow_id = client.start("payout", {}).workflow_id
    with running_worker(guarded, store):
        forged = client.signal("paid", {"by": "shop"}, workflow_id=workflow_id, source="shop")
        assert forged.recorded
        seen = client.view(workflow_id).events("paid")[0].seq
        deadline = time.monotonic() + 20
        while not any(  # a supervisor run that saw the shop's event
            f.kind == SUPERVISOR_RAN and f.seq > seen for f in client.view(workflow_id).facts
        ):
            assert time.monotonic() < deadline, "no supervisor run after the event"
            time.sleep(0.02)
        assert client.status(workflow_id).state == "waiting"
        client.signal("paid", {"by": "bank"}, workflow_id=workflow_id, source="bank")
        status = client.wait(workflow_id, timeout=20)
    assert status.state == "completed"
    assert status.result == {"settled": {"by": "bank"}}
    kinds = [f for f in client.view(workflow_id).facts if f.kind == EVENT_RECEIVED]
    assert [f.get("source") for f in kinds] == ["shop", "bank"]  # the forgery stays on record


def test_a_code_first_wait_accepts_its_event_only_from_named_sources(store: Store) -> None:
    guarded = App()

    @guarded.workflow()
    async def payout(wf: Workflow, order: Any) -> Any:
        return await wf.wait_for("paid", sources=["bank"])

    client = Client(guarded, store)
    workflow_id = client.start("payout", {}).workflow_id
    with running_worker(guarded, store):
        client.signal("paid", {"by": "shop"}, workflow_id=workflow_id, source="shop")
        seen = client.view(workflow_id).events("paid")[0].seq
        deadline = time.monotonic() + 20
        while not any(  # a supervisor run (a replay) that saw the shop's event
            f.kind == SUPERVISOR_RAN and f.seq > seen for f in client.view(workflow_id).facts
        ):
            assert time.monotonic() < deadline, "no supervisor run after the event"
            time.sleep(0.02)
        assert not client.status(workflow_id).done
        client.signal("paid", {"by": "bank"}, workflow_id=workflow_id, source="bank")
        status = client.wait(workflow_id, timeout=20)
    assert status.state == "completed" and status.result == {"by": "bank"}


# -- §3 DNS rebinding and cross-origin posts ---------------------------------------------------


def test_unknown_hosts_and_cross_origin_posts_are_refused(http: TestClient, store: Store) -> None:
    message = {"event": "a", "key": "k1", "start": JOIN}
    before = facts(store)
    rebound = send(http, message, headers={"Host": "attacker.example:8787"})
    assert rebound.status_code == 421
    cross = send(http, message, headers={"Origin": "http://attacker.example"})
    assert cross.status_code == 403
    assert send(http, message, headers={"Origin": "null"}).status_code == 403
    assert facts(store) == before
    assert http.get("/health", headers={"Host": "attacker.example"}).status_code == 421
    same = send(
        http, message, headers={"Host": "localhost:8787", "Origin": "http://localhost:8787"}
    )
    assert same.status_code == 202


def test_allowed_hosts_follow_the_bound_address() -> None:
    assert allowed_hosts("127.0.0.1") == frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
    assert allowed_hosts("10.0.0.5") == frozenset({"10.0.0.5"})
    assert allowed_hosts("0.0.0.0") is None  # every address: the proxy's job, or a list
    assert allowed_hosts("0.0.0.0", ["Hooks.Example.com"]) == frozenset({"hooks.example.com"})


# -- §8 hostile text: 400 or 401, never 500 ----------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"event": "a\x00b", "key": "k", "start": JOIN},
        {"event": "a", "key": "k\x00", "start": JOIN},
        {"event": "a", "key": "k", "dedupe_key": "d\x00", "start": JOIN},
        {"event": "a", "workflow_id": "w\x00"},
        {"event": "a", "workflow_id": "w" * 201},
        {"event": "\ud800", "key": "k", "start": JOIN},
        {"event": "a", "key": "\udfff", "start": JOIN},
        {"event": "a", "key": "k" * 501, "start": JOIN},
    ],
)
def test_nul_bytes_surrogates_and_long_ids_get_400(
    http: TestClient, store: Store, message: dict[str, Any]
) -> None:
    before = facts(store)
    response = send(http, json.dumps(message).encode(), "open", OPEN)
    assert response.status_code == 400, response.text
    assert facts(store) == before


@pytest.mark.parametrize(
    "header",
    ["t=" + "9" * 400 + ",v1=00", "t=-5,v1=00", "t=1e9,v1=00", "t=12,v1=" + "a" * 600],
)
def test_absurd_signature_headers_get_401(http: TestClient, header: str) -> None:
    response = http.post("/events/shop", content=b"{}", headers={"Steadyhand-Signature": header})
    assert response.status_code == 401


def test_a_non_ascii_signature_header_gets_401(http: TestClient) -> None:
    response = http.post(
        "/events/shop",
        content=b"{}",
        headers=[(b"steadyhand-signature", "t=1,v1=\u00e9\u00e9".encode("latin-1"))],
    )
    assert response.status_code == 401
