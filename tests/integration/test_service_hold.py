"""Holding a remote service by hand (issue 17): calls wait as with an open circuit, no
attempt is spent, every worker obeys, and a release wakes the workflows that waited."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner

from steadyhand import Client
from steadyhand.cli.main import main
from steadyhand.store import Store
from tests.apps.services_app import app, calls
from tests.conftest import running_worker


def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _service_facts(store: Store, service: str) -> list[str]:
    with store.snapshot() as tx:
        rows = tx.query(
            "SELECT kind FROM service_facts WHERE service = :s ORDER BY seq", {"s": service}
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_a_held_service_gets_no_calls_until_released(store: Store, tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    queued = client.start("limited", {"ledger": ledger}).workflow_id  # runs before the hold
    with running_worker(app, store):  # publishes the services
        client.wait(queued, timeout=30)
        assert client.hold_service("limited", "maintenance until 03:00")
        assert not client.hold_service("limited"), "holding twice changes nothing"
        waiting = client.start("limited", {"ledger": ledger}).workflow_id
        _until(lambda: client.view(waiting).count("attempt_deferred") == 1)
        deferred = next(f for f in client.view(waiting) if f.kind == "attempt_deferred")
        assert "held by an operator" in deferred.get("reason")
        assert "maintenance until 03:00" in deferred.get("reason")
        assert len(calls(ledger, "limited")) == 1, "no call went out during the hold"
        assert client.view(waiting).count("attempt_scheduled") == 0, "no attempt was spent"

        assert client.release_service("limited", "done")
        assert client.wait(waiting, timeout=30).state == "completed"
    assert len(calls(ledger, "limited")) == 2
    assert _service_facts(store, "limited")[-2:] == ["service_held", "service_released"]


def test_the_cli_holds_and_releases_with_clear_answers(store: Store, store_url: str) -> None:
    with running_worker(app, store):
        pass  # publish the services
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, [*args, "--db", store_url])
        return result.exit_code, result.output

    code, out = cli("service", "hold", "limited", "--reason", "vendor incident")
    assert code == 0 and "limited held" in out
    assert cli("service", "hold", "limited")[0] == 5
    stats = runner.invoke(main, ["stats", "--json", "--db", store_url]).output
    assert '"held"' in stats and "vendor incident" in stats
    code, out = cli("service", "release", "limited")
    assert code == 0 and "released" in out
    assert cli("service", "release", "limited")[0] == 5
    code, out = cli("service", "hold", "nosuch")
    assert code == 4 and "no service 'nosuch'" in out and "limited" in out
