"""Uncertain outcomes end to end, on both backends, against a real HTTP service: an agent's
own client timing out is uncertain (compensated on rollback, probed when there is a probe),
a refused connection is definitely not done (nothing to undo), and a step can override."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.bookings_service import live_bookings, serve

from steadyhand import App, Client, Context, PermanentError, RetryPolicy, Step
from steadyhand.store import Store
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(90)

app = App()
SERVICE: dict[str, str] = {}
FAST = RetryPolicy(max_attempts=2, initial_backoff=0.05)


@app.agent()
def book(ctx: Context) -> Any:  # a sync agent with its own short client timeout
    with httpx.Client(timeout=0.3) as http:
        r = http.post(f"{SERVICE['url']}/bookings", json={"key": ctx.idempotency_key})
    r.raise_for_status()
    return r.json()


@app.agent()
def unbook(ctx: Context) -> None:
    with httpx.Client(timeout=5) as http:
        r = http.delete(f"{SERVICE['url']}/bookings/{ctx.action_key}")
    if r.status_code != 404:
        r.raise_for_status()


@app.agent()
def refuse(ctx: Context) -> None:
    raise PermanentError("sold out")


@app.agent()
def validate(ctx: Context) -> None:
    raise LookupError("checked locally, nothing was sent")


@app.agent(classify=lambda exc: "not_done" if isinstance(exc, KeyError) else None)
def lookup(ctx: Context) -> None:
    raise KeyError("checked locally, nothing was sent")


@app.agent()
def crash(ctx: Context) -> None:
    raise ValueError("a bug after the request may have been sent")


def trip(first: Step) -> list[Step]:
    return [first, Step("car", refuse)]


app.workflow("plain", trip(Step("seat", book, compensation=unbook, retry=FAST, timeout=10)))
app.workflow(
    "declared",
    trip(
        Step(
            "seat",
            validate,
            compensation=unbook,
            timeout=10,
            retry=RetryPolicy.of(not_done=[LookupError], max_attempts=2, initial_backoff=0.05),
        )
    ),
)
app.workflow("buggy", trip(Step("seat", crash, compensation=unbook, retry=FAST, timeout=10)))
app.workflow("classified", trip(Step("seat", lookup, compensation=unbook, retry=FAST, timeout=10)))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str]]:
    ledger = str(tmp_path / "seats.db")
    server = serve(0, ledger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    SERVICE["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield SERVICE["url"], ledger
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def run(store: Store, name: str) -> tuple[Any, Any]:
    client = Client(app, store)
    with running_worker(app, store):
        started = client.start(name, {})
        status = client.wait(started.workflow_id, timeout=60)
    return status, client.view(started.workflow_id)


def test_own_client_timeout_is_uncertain_and_compensated(
    store: Store, service: tuple[str, str]
) -> None:
    url, ledger = service
    httpx.post(f"{url}/admin", json={"delay": 1.0}).raise_for_status()
    status, view = run(store, "plain")
    assert status.state == "compensated", status.reason
    assert view.count("attempt_uncertain") == 2  # both attempts: ReadTimeout after sending
    assert view.count("attempt_failed") == 0
    assert view.count("compensation_succeeded") == 1  # possibly done, so undone
    assert live_bookings(ledger) == []


def test_refused_connection_is_not_done_and_not_compensated(
    store: Store, service: tuple[str, str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        SERVICE["url"] = f"http://127.0.0.1:{probe.getsockname()[1]}"
    status, view = run(store, "plain")
    assert status.state == "compensated", status.reason
    failed = [f for f in view.facts if f.kind == "attempt_failed"]
    assert len(failed) == 2 and "ConnectError" in str(failed[0].get("error"))
    assert view.count("attempt_uncertain") == 0
    assert view.count("compensation_scheduled") == 0  # definitely not done: nothing to undo


@pytest.mark.parametrize("name", ["declared", "classified"])
def test_a_step_declares_what_is_not_done(
    store: Store, service: tuple[str, str], name: str
) -> None:
    status, view = run(store, name)
    assert status.state == "compensated", status.reason
    assert view.count("attempt_failed") == 2
    assert view.count("attempt_uncertain") == 0
    assert view.count("compensation_scheduled") == 0


def test_an_unexpected_exception_is_uncertain(store: Store, service: tuple[str, str]) -> None:
    status, view = run(store, "buggy")
    assert status.state == "compensated", status.reason
    assert view.count("attempt_uncertain") == 2
    assert view.count("compensation_succeeded") == 1  # possibly done: undone (404 is fine)
