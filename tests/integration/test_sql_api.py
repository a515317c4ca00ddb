"""The PostgreSQL SQL functions, driven by plain SQL as a service in another language would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from steadyhand import Client
from steadyhand.store import Store
from steadyhand.store.postgres import split_url
from tests.apps.events import app
from tests.conftest import running_worker


class Sql:
    """A plain connection with no steadyhand search_path, as an outside service has."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str) -> None:
        self.conn, self.schema = conn, schema

    def execute(self, query: str, params: tuple[object, ...] = ()) -> Any:
        return self.conn.execute(query.replace("{schema}", self.schema), params)  # type: ignore[arg-type]


@pytest.fixture
def sql(store: Store, store_url: str) -> Iterator[Sql]:
    if store.dialect != "postgresql":
        pytest.skip("the SQL functions are a PostgreSQL feature")
    Client(app, store).engine.publish_plans()
    base, schema = split_url(store_url)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("SET search_path = public")
        yield Sql(conn, schema)


def test_start_workflow_from_sql_is_idempotent_and_runs(store: Store, sql: Sql) -> None:
    schema = sql.schema
    query = f"SELECT {schema}.start_workflow('order', %s::jsonb, 'ext-1')"
    first = sql.execute(query, (json.dumps({"from": "go"}),)).fetchone()[0]  # type: ignore[index]
    again = sql.execute(query, (json.dumps({"from": "go"}),)).fetchone()[0]  # type: ignore[index]
    assert first == again
    client = Client(app, store)
    with running_worker(app, store):
        assert client.wait(first, timeout=15).state == "completed"
    assert client.view(first).input == {"from": "go"}


def test_record_event_from_sql_with_start_and_dedupe(store: Store, sql: Sql) -> None:
    schema = sql.schema
    call = (
        f"SELECT * FROM {schema}.record_event(%s, %s::jsonb, p_key => 'cust-9', "
        "p_dedupe_key => %s, p_start => 'join', p_start_input => %s::jsonb)"
    )
    needed = json.dumps({"needed": ["a", "b"]})
    one = sql.execute(call, ("a", '{"status": "ok"}', "d-1", needed)).fetchone()
    dup = sql.execute(call, ("a", '{"status": "ok"}', "d-1", needed)).fetchone()
    two = sql.execute(call, ("b", '{"status": "ok"}', "d-2", needed)).fetchone()
    assert one is not None and dup is not None and two is not None
    assert one[1:] == (True, True) and dup[1:] == (False, False) and two[1:] == (True, False)
    assert one[0] == dup[0] == two[0]
    client = Client(app, store)
    with running_worker(app, store):
        status = client.wait(str(one[0]), timeout=10)
    assert status.state == "completed"
    assert client.view(str(one[0])).count("event_received") == 2


def test_sql_errors_are_clear(sql: Sql) -> None:
    schema = sql.schema
    with pytest.raises(psycopg.Error, match="no workflow named nope is published"):
        sql.execute(f"SELECT {schema}.start_workflow('nope')")
    with pytest.raises(psycopg.Error, match="pass p_start"):
        sql.execute(f"SELECT * FROM {schema}.record_event('a', p_key => 'unknown')")


def test_racing_sql_starts_share_one_workflow(store_url: str, sql: Sql) -> None:
    schema = sql.schema
    base = store_url.split("?", maxsplit=1)[0]
    barrier = threading.Barrier(4)
    ids: list[str] = []

    def start() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            barrier.wait()
            row = conn.execute(
                f"SELECT {schema}.start_workflow('order', 'null', 'same')"
            ).fetchone()
            ids.append(str(row[0]))  # type: ignore[index]

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(ids) == 4 and len(set(ids)) == 1
