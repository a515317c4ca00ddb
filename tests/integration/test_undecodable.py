"""Values too deep or too large to load, on both backends: the Python API and the SQL
functions refuse them with the same limits, and a workflow whose stored facts cannot be
decoded anyway (written before the limits held) ends `failed` with that reason, once, while
status, explain, the dashboard and cancel keep working."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from steadyhand import App, Client, Context, InputError, Step
from steadyhand.cli.main import main
from steadyhand.core.limits import MAX_JSON_DEPTH
from steadyhand.store import Store
from steadyhand.store.pg_connect import split_url
from steadyhand.web.app import DashboardOptions, create_app
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(90)

app = App()


@app.agent()
def reserve(ctx: Context) -> str:
    return "seat 4A"


@app.agent()
def release(ctx: Context) -> None:
    return None


app.workflow(
    "checkout",
    [Step("reserve", reserve, compensation=release), Step("pay", wait_for="paid", deadline=600)],
)
app.workflow("capped", [Step("pay", wait_for="paid", deadline=600)], max_events=3)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def deep_text(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_the_python_api_refuses_values_nested_too_deep(store: Store) -> None:
    client = Client(app, store)
    with pytest.raises(InputError, match=f"more than {MAX_JSON_DEPTH} levels"):
        client.start("checkout", nested(MAX_JSON_DEPTH + 1))
    started = client.start("checkout", nested(MAX_JSON_DEPTH))  # the limit itself is fine
    with pytest.raises(InputError, match=f"more than {MAX_JSON_DEPTH} levels"):
        client.signal("paid", nested(MAX_JSON_DEPTH + 1), workflow_id=started.workflow_id)
    client.signal("paid", nested(MAX_JSON_DEPTH), workflow_id=started.workflow_id)


def eventually(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_an_undecodable_workflow_ends_failed_once(store: Store, store_url: str) -> None:
    client = Client(app, store)
    with running_worker(app, store):
        started = client.start("checkout", {})
        wid = started.workflow_id
        eventually(lambda: client.view(wid).has("wait_began", "pay"))
        # A fact written before the limits held (e.g. by the old SQL function): 5,000 deep.
        seq = client.view(wid).last_seq + 1
        with store.transaction() as tx:
            tx.query(
                "INSERT INTO facts (workflow_id, seq, kind, step, slot, data, at) "
                "VALUES (:id, :seq, 'event_received', 'noise', NULL, :data, :at)",
                {"id": wid, "seq": seq, "data": deep_text(5000), "at": time.time()},
            )
        client.signal("paid", {"ref": "p-1"}, workflow_id=wid)  # wakes the supervisor
        status = client.wait(wid, timeout=30)
        view = client.view(wid)
    assert status.state == "failed"
    assert "cannot be loaded" in (status.reason or "")
    assert f"fact #{seq} (event_received)" in (status.reason or "")
    assert view.count("workflow_failed") == 1
    runs_after_seq = [f for f in view.facts if f.kind == "supervisor_ran" and f.seq > seq]
    assert len(runs_after_seq) == 1
    runner = CliRunner()
    for command in (["status", wid], ["explain", wid], ["list", "--json"]):
        result = runner.invoke(main, [*command, "--db", store_url], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    with TestClient(create_app(store, DashboardOptions(token="t0ken"))) as http:
        page = http.get(f"/workflows/{wid}", headers={"Authorization": "Bearer t0ken"})
        assert page.status_code == 200
    # An operator's cancel rolls back what took effect, from the facts that do decode.
    assert client.cancel(wid).result == "done"
    with running_worker(app, store):
        status = client.wait(wid, timeout=30)
    view = client.view(wid)
    assert status.state == "compensated", status.reason
    assert view.count("compensation_succeeded", "reserve") == 1
    assert view.count("workflow_failed") == 1


class Sql:
    def __init__(self, conn: psycopg.Connection[Any], schema: str) -> None:
        self.conn, self.schema = conn, schema

    def one(self, query: str, *params: object) -> Any:
        row = self.conn.execute(query.replace("{s}", self.schema), params).fetchone()  # type: ignore[arg-type]
        return None if row is None else row[0]


@pytest.fixture
def sql(store: Store, store_url: str) -> Iterator[Sql]:
    if store.dialect != "postgresql":
        pytest.skip("the SQL functions are a PostgreSQL feature")
    Client(app, store).engine.publish_plans()
    base, schema = split_url(store_url)
    with psycopg.connect(base, autocommit=True) as conn:
        yield Sql(conn, schema)


def test_the_sql_functions_apply_the_same_limits(store: Store, sql: Sql) -> None:
    wid = sql.one("SELECT {s}.start_workflow('checkout', '{}'::jsonb)")
    record = "SELECT workflow_id FROM {s}.record_event('paid', %s::jsonb, p_workflow_id => %s)"
    for text in (deep_text(5000), json.dumps(nested(MAX_JSON_DEPTH + 1))):
        with pytest.raises(psycopg.Error, match="nested more than 200 levels"):
            sql.one(record, text, wid)
    with pytest.raises(psycopg.Error, match="over 1000000 bytes"):
        sql.one(record, json.dumps("x" * 1_000_001), wid)
    with pytest.raises(psycopg.Error, match="workflow input is nested more than 200"):
        sql.one("SELECT {s}.start_workflow('checkout', %s::jsonb)", deep_text(300))
    assert sql.one(record, json.dumps(nested(MAX_JSON_DEPTH)), wid) == wid
    assert Client(app, store).view(wid).event("paid") is not None


def test_the_sql_function_caps_events_and_wakes_only_for_awaited_ones(
    store: Store, sql: Sql
) -> None:
    wid = sql.one("SELECT {s}.start_workflow('capped', '{}'::jsonb)")
    with store.transaction() as tx:
        tx.query("DELETE FROM tasks WHERE workflow_id = :id", {"id": wid})
    record = "SELECT recorded FROM {s}.record_event(%s, '{}'::jsonb, p_workflow_id => %s)"
    for _ in range(3):
        assert sql.one(record, "noise", wid) is True
    wakeups = "SELECT count(*) FROM {s}.tasks WHERE workflow_id = %s"
    assert sql.one(wakeups, wid) == 0  # nothing waits for "noise": nobody was woken
    with pytest.raises(psycopg.Error, match=r"holds 3 events, its limit \(max_events=3\)"):
        sql.one(record, "noise", wid)
    assert sql.one(record, "paid", wid) is True  # awaited: accepted beyond the cap, and wakes
    assert sql.one(wakeups, wid) == 1
