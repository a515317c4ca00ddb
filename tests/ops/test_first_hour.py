"""What a new user meets in the first hour, on both backends: a missing --app is a usage
error, `list` keeps a row on one line at 80 columns, `wait` says when it timed out, `--db`
must be a URL, read-only commands never create a store, and a store that cannot be opened
says why at once."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from steadyhand import App, Client, Step, StoreError, WorkflowStillRunning, open_store
from steadyhand.cli.main import main
from tests.conftest import fresh_store_url, pg_base
from tests.ops.conftest import Scenario

READ_ONLY = [
    ["list"],
    ["status", "0123abcd"],
    ["explain", "0123abcd"],
    ["stats"],
    ["dashboard", "--no-auth"],
]


def run(*args: str, columns: int = 220) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": str(columns)})


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("command", [["worker"], ["serve"], ["start", "trip"]])
def test_a_missing_app_is_a_usage_error(store_url: str, command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--db", store_url], env={"STEADYHAND_APP": ""})
    assert result.exit_code == 2, result.output
    assert "Missing option '--app'" in result.output and "Usage:" in result.output
    no_traceback(result)


def test_list_keeps_each_row_on_one_line_at_80_columns(scenario: Scenario) -> None:
    narrow = run("list", "--db", scenario.url, columns=80)
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.output.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    for workflow_id in (scenario.completed, scenario.compensated, scenario.failed):
        assert sum(workflow_id in line for line in lines) == 1
    row = next(line for line in lines if scenario.failed in line)
    assert "could not" in row and row.endswith("…")
    wide = run("list", "--wide", "--db", scenario.url, columns=80)
    row = next(line for line in wide.output.splitlines() if scenario.failed in line)
    assert "Still in effect: flight, hotel. Fix the cause" in row  # whole, on one line


def test_wait_raises_timeout_error_when_the_workflow_goes_on(store_url: str) -> None:
    app = App()
    app.workflow("pending", [Step("confirm", wait_for="confirmed")])
    store = open_store(store_url)
    try:
        client = Client(app, store)
        started = client.start("pending", {})
        began = time.monotonic()
        with pytest.raises(TimeoutError, match=r"still (running|waiting)") as caught:
            client.wait(started.workflow_id, timeout=0.2)
        assert isinstance(caught.value, WorkflowStillRunning)
        assert caught.value.status.state in ("running", "waiting")
        assert time.monotonic() - began < 10
    finally:
        store.close()


@pytest.mark.parametrize("db", ["trips.db", "mysql://x/y", "sqlite:trips.db"])
def test_db_must_be_a_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("list", "--db", db)
    assert result.exit_code == 2, result.output
    assert "sqlite:///" in result.output and "postgresql://" in result.output
    assert list(tmp_path.iterdir()) == []
    no_traceback(result)


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_read_only_commands_never_create_a_store(
    tmp_path: Path, backend: str, command: list[str]
) -> None:
    with fresh_store_url(backend, tmp_path) as url:
        result = run(*command, "--db", url)
        assert result.exit_code == 1, result.output
        assert "no store at" in result.output
        no_traceback(result)
        if backend == "sqlite":
            assert list(tmp_path.iterdir()) == []
        else:
            schema = url.rsplit("schema=", 1)[1]
            with psycopg.connect(pg_base() or "") as conn:
                found = conn.execute(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
                ).fetchone()
            assert found is None, "a read-only command created the schema"


def test_sqlite_under_a_plain_file_or_in_a_read_only_directory(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("not a directory")
    for url in (f"sqlite:///{plain}/steadyhand.db", "sqlite:////proc/steadyhand.db"):
        with pytest.raises(StoreError, match="SQLite store"):
            open_store(url)
        result = run("migrate", "--db", url)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: ") and len(result.output.splitlines()) == 1
        no_traceback(result)


def test_a_postgres_database_that_does_not_exist_is_reported_at_once() -> None:
    base = pg_base()
    if base is None:
        pytest.skip("PostgreSQL not reachable")
    url = base.rsplit("/", 1)[0] + "/steadyhand_no_such_database"
    began = time.monotonic()
    result = run("list", "--db", url)
    assert result.exit_code == 1, result.output
    assert 'database "steadyhand_no_such_database" does not exist' in result.output
    assert "createdb" in result.output
    assert time.monotonic() - began < 5, "reported after retries instead of at once"
    no_traceback(result)
