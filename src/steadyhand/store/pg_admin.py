"""Administering a PostgreSQL server around a store, for the chaos run and the tests: drop
a schema, cut sessions off by `application_name`, ask the server's version.

These connect on their own (not through a store's pool) because their whole point is to
act on the store's connections from outside. None of them touches facts.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from steadyhand.store.postgres import split_url

TERMINATE_SESSIONS = """
    SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND backend_type = 'client backend' AND application_name LIKE %s
"""


def terminate_sessions(url: str, app_prefix: str | None) -> int:
    """`pg_terminate_backend` the database's client sessions whose `application_name` starts
    with `app_prefix` (so other users of a shared database are left alone), or with None
    every client session but this one (only for a database the caller owns); how many."""
    conninfo, _ = split_url(url)
    prefix = app_prefix or ""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(TERMINATE_SESSIONS, (f"{escaped}%",)).fetchone()
    return int(row[0]) if row else 0


def drop_schema(url: str) -> None:
    """Remove the store in the schema `url` names (`?schema=`), if it exists."""
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def server_version(url: str) -> str | None:
    """The server's version text, or None when it cannot be reached."""
    conninfo, _ = split_url(url)
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else "?"


def replication_state(conninfo: str, standby: str) -> str | None:
    """How the primary at `conninfo` streams to the standby named `standby`
    (`pg_stat_replication.sync_state`: sync, async, …), or None when it does not."""
    query = "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s"
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        row = conn.execute(query, (standby,)).fetchone()
    return None if row is None else str(row[0])


def first_fact_after(conninfo: str, schema: str, kind: str, after: float) -> float | None:
    """The time of the first fact of `kind` recorded after `after` in the store in `schema`
    on the server at `conninfo` (a chaos run watching a new primary), or None."""
    query = sql.SQL("SELECT min(at) FROM {}.facts WHERE kind = %s AND at > %s").format(
        sql.Identifier(schema)
    )
    with psycopg.connect(conninfo, connect_timeout=2) as conn:
        row = conn.execute(query, (kind, after)).fetchone()
    return None if row is None or row[0] is None else float(row[0])
