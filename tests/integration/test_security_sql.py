"""The PostgreSQL SQL functions hold the Python API's limits and run as SECURITY DEFINER with
a pinned search_path, so an events-only role works (issue 15 §5). SQLite has no SQL
functions; its callers go through the Python API, whose limits the hostile-input tests
cover on both backends."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from steadyhand import Client
from steadyhand.core import limits
from steadyhand.store import Store
from tests.apps.events import app
from tests.conftest import pg_base

MIGRATION = Path(__file__).parents[2] / "src/steadyhand/store/migrations/postgres/006_security.sql"
DOC = Path(__file__).parents[2] / "docs" / "SECURITY.md"


@pytest.fixture
def schema(store: Store, store_url: str) -> str:
    if store.dialect != "postgresql":
        pytest.skip("the SQL functions are a PostgreSQL feature")
    Client(app, store).engine.publish_plans()
    return store_url.rsplit("schema=", 1)[1]


@pytest.fixture
def owner(schema: str) -> Iterator[psycopg.Connection[Any]]:
    base = pg_base()
    assert base is not None
    with psycopg.connect(base, autocommit=True) as conn:
        yield conn


def call(conn: psycopg.Connection[Any], schema: str, query: str, *params: object) -> Any:
    return conn.execute(query.replace("{s}", schema), params).fetchone()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "params", "error"),
    [
        ("SELECT * FROM {s}.record_event(%s, p_key => 'k')", ("e" * 5_000_000,), "event name"),
        ("SELECT * FROM {s}.record_event(%s, p_key => 'k')", ("has space",), "event name"),
        ("SELECT * FROM {s}.record_event('e', p_key => %s)", ("k" * 100_000,), "key"),
        (
            "SELECT * FROM {s}.record_event('e', p_key => 'k', p_dedupe_key => %s)",
            ("d" * 501,),
            "dedupe key",
        ),
        ("SELECT * FROM {s}.record_event('e', p_workflow_id => %s)", ("w" * 201,), "workflow id"),
        (
            "SELECT * FROM {s}.record_event('e', %s::jsonb, p_key => 'k')",
            (json.dumps({"blob": "x" * 20_000_000}),),
            "payload",
        ),
        ("SELECT {s}.start_workflow(%s)", ("n" * 201,), "workflow name"),
        ("SELECT {s}.start_workflow('join', 'null', %s)", ("k" * 100_000,), "idempotency key"),
        (
            "SELECT {s}.start_workflow('join', %s::jsonb)",
            (json.dumps(["x" * 1_000_001]),),
            "workflow input",
        ),
    ],
)
def test_sql_functions_refuse_what_the_python_api_refuses(
    owner: psycopg.Connection[Any], schema: str, query: str, params: tuple[object, ...], error: str
) -> None:
    before = call(owner, schema, "SELECT count(*) FROM {s}.facts")[0]
    with pytest.raises(psycopg.Error, match=re.escape(error)):
        call(owner, schema, query, *params)
    assert call(owner, schema, "SELECT count(*) FROM {s}.facts")[0] == before


def test_the_sql_limits_are_the_python_limits() -> None:
    text = MIGRATION.read_text()
    assert f"length(p_value) > {limits.MAX_NAME_CHARS}" in text
    assert f"'idempotency key', {limits.MAX_KEY_CHARS}" in text
    assert f"'dedupe key', {limits.MAX_KEY_CHARS}" in text
    assert f"'workflow id', {limits.MAX_WORKFLOW_ID_CHARS}" in text
    assert f"> {limits.MAX_PAYLOAD_BYTES}" in text


def test_the_functions_pin_their_search_path(owner: psycopg.Connection[Any], schema: str) -> None:
    rows = owner.execute(
        "SELECT proname, prosecdef, proconfig FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = %s AND proname IN "
        "('start_workflow', 'record_event')",
        (schema,),
    ).fetchall()
    assert len(rows) == 2
    for name, definer, config in rows:
        assert definer, name
        assert config == [f"search_path={schema}, pg_temp"], (name, config)


def events_role_sql(role: str, schema: str) -> list[str]:
    """The events-only role as docs/SECURITY.md writes it (its second sql block)."""
    block = DOC.read_text().split("```sql")[2].split("```", 1)[0]
    block = block.replace("steadyhand_events", role).replace("steadyhand.", f"{schema}.")
    block = block.replace("SCHEMA steadyhand ", f"SCHEMA {schema} ")
    block = re.sub(r"--[^\n]*", "", block)
    return [s.strip() for s in block.split(";") if s.strip()]


def test_an_events_only_role_records_events_and_nothing_else(
    owner: psycopg.Connection[Any], schema: str, store: Store
) -> None:
    role = f"sh_events_{secrets.token_hex(4)}"
    for statement in events_role_sql(role, schema):
        owner.execute(statement)  # type: ignore[arg-type]
    base = pg_base()
    assert base is not None
    try:
        with psycopg.connect(base.replace("postgres@", f"{role}@", 1), autocommit=True) as conn:
            conn.execute("SET search_path = public")
            row = call(
                conn,
                schema,
                "SELECT * FROM {s}.record_event('a', '{}', p_key => 'k1', p_start => 'join', "
                "p_start_input => %s::jsonb)",
                json.dumps({"needed": ["a", "b"]}),
            )
            assert row[1] is True and row[2] is True  # recorded, and started the workflow
            for forbidden in (
                "SELECT count(*) FROM {s}.facts",
                "SELECT {s}.start_workflow('join')",
                "INSERT INTO {s}.facts (workflow_id, seq, kind, at) VALUES ('x', 1, 'k', 0)",
                "DELETE FROM {s}.tasks",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    call(conn, schema, forbidden)
        assert Client(app, store).view(row[0]).events("a")
    finally:
        owner.execute(f"DROP OWNED BY {role}")  # type: ignore[arg-type]
        owner.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]
