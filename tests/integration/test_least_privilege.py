"""A worker runs as the least-privilege PostgreSQL role of docs/SECURITY.md: it completes
workflows, yet cannot rewrite history or change the schema."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from steadyhand import Client, open_store
from steadyhand.core.errors import StoreError
from steadyhand.store import Store
from steadyhand.store.postgres import split_url
from tests.apps.scripted import app, effects
from tests.conftest import pg_base, running_worker

GRANTS = Path(__file__).parents[2] / "docs" / "SECURITY.md"


def role_sql(role: str, schema: str) -> list[str]:
    """The role's SQL, taken from docs/SECURITY.md so the document stays true."""
    text = GRANTS.read_text()
    block = text.split("```sql", 1)[1].split("```", 1)[0]
    block = block.replace("steadyhand_worker", role).replace("steadyhand.", f"{schema}.")
    block = block.replace("SCHEMA steadyhand ", f"SCHEMA {schema} ")
    block = re.sub(r"--[^\n]*", "", block)
    return [s.strip() for s in block.split(";") if s.strip()]


@pytest.fixture
def worker_url(store_url: str, store: Store) -> Iterator[str]:
    if store_url.startswith("sqlite"):
        pytest.skip("roles and grants are a PostgreSQL feature; SQLite relies on file permissions")
    base = pg_base()
    assert base is not None
    schema = split_url(store_url)[1]
    role = f"sh_worker_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        for statement in role_sql(role, schema):
            conn.execute(statement)  # type: ignore[arg-type]
    try:
        yield store_url.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO postgres")  # type: ignore[arg-type]
            conn.execute(f"DROP OWNED BY {role}")  # type: ignore[arg-type]
            conn.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]


def test_a_worker_completes_workflows_as_the_least_privilege_role(
    worker_url: str, tmp_path: Path
) -> None:
    limited = open_store(worker_url, migrate=False)
    try:
        client = Client(app, limited)
        started = client.start("trip", {"ledger": str(tmp_path / "l.db"), "script": {}})
        with running_worker(app, limited):
            status = client.wait(started.workflow_id, timeout=20)
        assert status.state == "completed", status
        assert effects(str(tmp_path / "l.db"))
        for sql in (
            "UPDATE facts SET kind = 'forged'",
            "DELETE FROM facts",
            "DELETE FROM workflows",
            "UPDATE workflows SET id = id",
            "TRUNCATE facts",
            "DROP TABLE facts",
            "DROP TABLE tasks",
            "ALTER TABLE facts DISABLE TRIGGER ALL",
            "CREATE TABLE intruder (x int)",
        ):
            refused = r"permission denied|must be owner|append-only"
            with (
                pytest.raises((psycopg.Error, StoreError), match=refused),
                limited.transaction() as tx,
            ):
                tx.query(sql)
        assert client.status(started.workflow_id).state == "completed"
    finally:
        limited.close()
