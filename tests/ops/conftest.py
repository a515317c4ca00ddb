"""Fixtures for the operator tests: one populated store per backend per module (a completed,
a compensated and a failed trip), and a real uvicorn server for the dashboard.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from steadyhand import Client, open_store
from tests.apps.scripted import app
from tests.conftest import fresh_store_url, running_worker
from tests.waiting import eventually

FAIL_SCRIPT: dict[str, object] = {"car": ["permanent"], "undo:hotel": ["transient"] * 10}


@dataclass(frozen=True)
class Scenario:
    """A store holding one workflow of each ending, and where its agents keep their ledger."""

    url: str
    ledger: str
    completed: str
    compensated: str
    failed: str


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ops_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty store shared by one test module, once per backend."""
    with fresh_store_url(request.param, tmp_path_factory.mktemp("ops"), "ops") as url:
        yield url


def run_trips(url: str, ledger: str, scripts: list[dict[str, object]]) -> list[str]:
    """Start one trip per script and run a worker until all of them have ended."""
    store = open_store(url)
    try:
        client = Client(app, store)
        ids = [client.start("trip", {"ledger": ledger, "script": s}).workflow_id for s in scripts]
        with running_worker(app, store):
            for workflow_id in ids:
                assert client.wait(workflow_id, timeout=30).done
    finally:
        store.close()
    return ids


@pytest.fixture(scope="module")
def scenario(ops_url: str, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    ledger = str(tmp_path_factory.mktemp("ledger") / "ledger.db")
    ids = run_trips(ops_url, ledger, [{}, {"car": ["permanent"]}, FAIL_SCRIPT])
    return Scenario(ops_url, ledger, *ids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(asgi: Starlette) -> Iterator[str]:
    """Run `asgi` under a real uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, timeout=10, what="uvicorn starting")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def fresh_ledger(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.db")
