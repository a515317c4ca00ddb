"""The store's own defences (issue 15 §4, §6, §13): least privilege that works from the
command line, no REPLACE past the append-only triggers, private SQLite files, and an event
appended without reading the workflow's history."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.core.errors import StoreError
from steadyhand.store import Store
from steadyhand.store.base import Tx
from steadyhand.store.postgres import _MIGRATION_LOCK
from steadyhand.store.sqlite import sqlite_path
from steadyhand.web.ingress import sign
from tests.apps.scripted import app
from tests.conftest import fresh_store_url
from tests.integration.test_least_privilege import worker_url  # noqa: F401 (a fixture)
from tests.ops.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
STEADYHAND = str(Path(sys.executable).with_name("steadyhand"))


# -- §4 least privilege from the command line ------------------------------------------------


@contextmanager
def process(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A `steadyhand` process, stopped with SIGTERM (then killed) on exit."""
    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        [STEADYHAND, *args],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    proc.output = output  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        output.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            proc.output.seek(0)  # type: ignore[attr-defined]
            told = proc.output.read().decode()  # type: ignore[attr-defined]
            raise AssertionError(f"the process ended: {told}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


def test_the_worker_role_runs_every_everyday_command(
    worker_url: str,  # noqa: F811
    store: Store,
    tmp_path: Path,
) -> None:
    client = Client(app, store)
    ledger = str(tmp_path / "ledger.db")
    started = client.start("trip", {"ledger": ledger, "script": {}}).workflow_id
    with process(
        "worker", "--app", "tests.apps.scripted:app", "--db", worker_url, "--poll", "0.05"
    ):
        assert client.wait(started, timeout=30).state == "completed"
    for command in (["list"], ["status", started], ["explain", started], ["stats"]):
        result = CliRunner().invoke(main, [*command, "--db", worker_url])
        assert result.exit_code == 0, (command, result.output)
        assert "permission denied" not in result.output
    port = free_port()
    with process("dashboard", "--no-auth", "--port", str(port), "--db", worker_url) as proc:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        page = httpx.get(f"http://127.0.0.1:{port}/workflows/{started}", timeout=10)
        assert page.status_code == 200 and started in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    port = free_port()
    secret = "whsec_role_test_0123456789"
    env = {"STEADYHAND_INGRESS_SECRETS": f"shop={secret}"}
    serve_args = ["serve", "--app", "tests.apps.events:app", "--port", str(port)]
    with process(*serve_args, "--db", worker_url, env=env) as proc:
        wait_for(f"http://127.0.0.1:{port}/health", proc)
        body = json.dumps(
            {"event": "a", "key": "k", "start": {"workflow": "join", "input": {"needed": ["a"]}}}
        ).encode()
        sent = httpx.post(
            f"http://127.0.0.1:{port}/events/shop",
            content=body,
            headers={"Steadyhand-Signature": sign(secret, body)},
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["started"] is True


def test_the_worker_role_cannot_migrate(worker_url: str) -> None:  # noqa: F811
    with psycopg.connect(worker_url.split("?", maxsplit=1)[0]) as conn:
        schema = worker_url.rsplit("schema=", 1)[1]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CREATE TABLE {schema}.intruder (x int)")  # type: ignore[arg-type]


def test_no_migrate_refuses_an_outdated_store_and_creates_nothing(
    store_url: str, tmp_path: Path
) -> None:
    backend = "sqlite" if store_url.startswith("sqlite") else "postgres"
    with fresh_store_url(backend, tmp_path / "empty", "nm") as empty:
        (tmp_path / "empty").mkdir()
        for command in (["list"], ["stats"], ["status", "x"]):
            result = CliRunner().invoke(main, [*command, "--no-migrate", "--db", empty])
            assert result.exit_code == 1, result.output
            assert "steadyhand migrate" in result.output
        env = {"STEADYHAND_NO_MIGRATE": "1"}
        assert CliRunner().invoke(main, ["list", "--db", empty], env=env).exit_code == 1
        probe = open_store(empty, migrate=False)
        try:
            assert probe.schema_version() == 0  # nothing was created
        finally:
            probe.close()
        migrated = CliRunner().invoke(main, ["migrate", "--db", empty])
        assert migrated.exit_code == 0
        result = CliRunner().invoke(main, ["list", "--no-migrate", "--db", empty])
        assert result.exit_code == 0, result.output


def test_opening_a_current_store_takes_no_migration_lock(store: Store, store_url: str) -> None:
    """A current store is opened without DDL or the migrator's lock, so `list` works while
    a writer (SQLite) or a migrator (PostgreSQL) holds them."""
    if store.dialect == "sqlite":
        holder = sqlite3.connect(sqlite_path(store_url), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        options: dict[str, object] = {"busy_timeout": 0.5}
    else:
        holder = psycopg.connect(store_url.split("?", maxsplit=1)[0], autocommit=True)  # type: ignore[assignment]
        holder.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        options = {}
    try:
        opened = open_store(store_url, **options)  # type: ignore[arg-type]
        try:
            assert opened.schema_version() > 0
        finally:
            opened.close()
    finally:
        holder.close()


# -- §6 REPLACE past the append-only triggers; private files ----------------------------------


def test_replace_cannot_rewrite_a_fact(store: Store, store_url: str) -> None:
    client = Client(app, store)
    workflow_id = client.start("trip", {"ledger": "unused"}).workflow_id
    first = client.view(workflow_id).facts[0]
    forged = [
        "INSERT OR REPLACE INTO facts (workflow_id, seq, kind, data, at) "
        "VALUES (:id, 1, 'workflow_completed', '{\"result\": \"forged\"}', 0)",
        "REPLACE INTO facts (workflow_id, seq, kind, slot, data, at) "
        "VALUES (:id, 999, 'workflow_completed', 'started', '{}', 0)",
        "REPLACE INTO workflows (id, name, input, plan, created_at) "
        "VALUES (:id, 'trip', '\"forged\"', '{}', 0)",
    ]
    if store.dialect == "postgresql":
        forged = [
            "INSERT INTO facts (workflow_id, seq, kind, data, at) "
            "VALUES (:id, 1, 'workflow_completed', '{}', 0) "
            "ON CONFLICT (workflow_id, seq) DO UPDATE SET kind = excluded.kind",
            "INSERT INTO workflows (id, name, input, plan, created_at) "
            "VALUES (:id, 'trip', '\"forged\"', '{}', 0) "
            "ON CONFLICT (id) DO UPDATE SET input = excluded.input",
        ]
    for statement in forged:
        with (
            pytest.raises((StoreError, psycopg.Error, sqlite3.Error)),
            store.transaction() as tx,
        ):
            tx.query(statement, {"id": workflow_id})
    if store.dialect == "sqlite":  # as an intruder with the sqlite3 shell would, no pragmas
        raw = sqlite3.connect(sqlite_path(store_url))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(forged[0].replace(":id", "?"), (workflow_id,))
        raw.close()
    view = client.view(workflow_id)
    assert view.facts[0] == first and view.input == {"ledger": "unused"}
    assert view.terminal is None


def test_a_new_sqlite_store_is_private(tmp_path: Path) -> None:
    os.umask(0o022)
    store = open_store(f"sqlite:///{tmp_path / 'private.db'}")
    try:
        Client(app, store).start("trip", {"ledger": "unused"})
        for name in ("private.db", "private.db-wal", "private.db-shm"):
            mode = (tmp_path / name).stat().st_mode & 0o777
            assert mode == 0o600, (name, oct(mode))
    finally:
        store.close()


# -- §13 an event costs the same whatever the history ------------------------------------------


def test_an_event_on_an_existing_workflow_reads_no_history(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(app, store)
    workflow_id = client.start("trip", {"ledger": "unused"}).workflow_id
    client.signal("first", 1, workflow_id=workflow_id, dedupe_key="d1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("signal read the workflow's whole history")

    monkeypatch.setattr(Tx, "read_facts", refuse)
    monkeypatch.setattr(Tx, "lock_and_read", refuse)
    again = client.signal("first", 1, workflow_id=workflow_id, dedupe_key="d1")
    later = client.signal("second", 2, workflow_id=workflow_id)
    monkeypatch.undo()
    assert not again.recorded and later.recorded
    events = [f.step for f in client.view(workflow_id).events()]
    assert events == ["first", "second"]
