"""Secrets never reach facts or logs: an ingress secret, a signature header and a secret-
bearing header stay out of every fact and every log line, even when an agent fails."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient

from steadyhand import App, Client, Context, PermanentError, Step
from steadyhand.runtime.logs import JsonFormatter
from steadyhand.store import Store
from steadyhand.web.ingress import create_ingress, sign
from tests.apps.events import app as events_app
from tests.conftest import running_worker

SECRET = "whsec_TOPSECRET_9f8e7d"
API_TOKEN = "Bearer tok_ALSO_SECRET_1234"


def all_fact_text(store: Store) -> str:
    with store.snapshot() as tx:
        rows = tx.query("SELECT kind, step, slot, data FROM facts").fetchall()
    return "\n".join(json.dumps([str(c) for c in row]) for row in rows)


def test_ingress_secret_and_signature_stay_out_of_facts_and_logs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps(
        {
            "event": "a",
            "key": "cust-secret",
            "payload": {"status": "ok"},
            "start": {"workflow": "join", "input": {"needed": ["a", "b"]}},
        }
    ).encode()
    signature = sign(SECRET, body)
    ingress = create_ingress(Client(events_app, store), {"shop": SECRET})
    with TestClient(ingress) as http:
        answer = http.post(
            "/events/shop",
            content=body,
            headers={"Steadyhand-Signature": signature, "Authorization": API_TOKEN},
        )
        assert answer.status_code == 202, answer.text
        bad = http.post(
            "/events/shop", content=body, headers={"Steadyhand-Signature": signature + "0"}
        )
        assert bad.status_code == 401
        assert SECRET not in bad.text and signature not in bad.text

    digest = signature.split("v1=")[1]
    facts = all_fact_text(store)
    assert "cust-secret" in facts  # the event itself is recorded
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    for secret in (SECRET, digest, API_TOKEN, "tok_ALSO_SECRET"):
        assert secret not in facts
        assert all(secret not in line for line in lines)


def test_a_failing_agent_leaks_no_secret_into_facts_or_logs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    deploy = App()
    credentials = {"api_key": SECRET}  # the agent's own configuration, not workflow input

    @deploy.agent()
    def charge(ctx: Context) -> str:
        headers = {"Authorization": f"Bearer {credentials['api_key']}"}
        assert headers
        raise PermanentError("payment provider refused the card (HTTP 402)")

    deploy.workflow("pay", [Step("charge", charge)])
    client = Client(deploy, store)
    started = client.start("pay", {"order": 7})
    with running_worker(deploy, store):
        status = client.wait(started.workflow_id, timeout=10)
    assert status.state in ("compensated", "failed")
    facts = all_fact_text(store)
    assert "402" in facts  # the failure is explained
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines, "the worker logged something"
    assert SECRET not in facts
    assert all(SECRET not in line for line in lines)
