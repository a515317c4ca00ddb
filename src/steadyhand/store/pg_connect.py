"""Where a PostgreSQL store connects, and what a connection's errors mean across a failover.

A URL may list several servers (`postgresql://db1:5432,db2:5432/app`); libpq tries them in
order and keeps the first that has the wanted role (`target_session_attrs`). A store that
writes wants the primary, so a multi-host URL without that setting gets
`target_session_attrs=read-write`: after a failover, new connections find the promoted
standby by themselves. A store that only reads (`--read-db`) gets `prefer-standby`, so an
on-call screen loads a replica while there is one.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from steadyhand.core.errors import InputError
from steadyhand.core.redact import redact as redact_text
from steadyhand.store.pgwaits import URL_KEYS

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
WRITER_ATTRS = "read-write"
READER_ATTRS = "prefer-standby"

ROLE = "SELECT pg_is_in_recovery(), to_regclass(%s) IS NOT NULL"
"""Is the server a standby, and does it hold our tables (given `schema.facts`)?"""

# On a standby: 0 when it has applied all the WAL it received, else the age of the last
# commit it applied (so an idle primary does not look like a lagging replica).
REPLICA_LAG = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())) "
    "END"
)

REROUTE = (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.UndefinedTable)
"""Errors a connection gives when it reaches the wrong server during a switch-over (a
standby that refuses writes, a server without our tables): the connection is dropped and
the call reported as `StoreUnavailable` (retried), never taken for a permanent failure."""


def split_url(url: str) -> tuple[str, str]:
    """Separate steadyhand's `schema` option from the libpq connection URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = "steadyhand"
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        elif key in URL_KEYS:
            continue  # steadyhand's own timeouts (see store.pgwaits), not libpq's
        else:
            kept.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise InputError(
            f"schema={schema!r} is not a plain lowercase PostgreSQL identifier "
            "(letters, digits, underscores)"
        )
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


def hosts(conninfo: str) -> list[str]:
    """The `host:port` entries of a URL, in the order libpq tries them."""
    netloc = urlsplit(conninfo).netloc.rpartition("@")[2]
    return [h for h in netloc.split(",") if h]


def with_session_attrs(conninfo: str, attrs: str) -> str:
    """`conninfo` with `target_session_attrs=attrs` when it lists several servers and does
    not say which one it wants (see the module docstring); otherwise unchanged."""
    parts = urlsplit(conninfo)
    query = parse_qsl(parts.query)
    if len(hosts(conninfo)) < 2 or any(k == "target_session_attrs" for k, _ in query):
        return conninfo
    return urlunsplit(parts._replace(query=urlencode([*query, ("target_session_attrs", attrs)])))


def redact(conninfo: str) -> str:
    """The URL with its password replaced by `***`, fit for a message or a log: the one
    redaction of `core.redact` (which also hides `?password=`)."""
    return redact_text(conninfo)


def reroute_message(exc: psycopg.Error) -> str:
    """Why a call met the wrong server, and what to check if it does not pass."""
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return (
            f"PostgreSQL refused a write because the server is read-only ({exc}); during a "
            "failover this passes once the standby is promoted. If it lasts, the URL names a "
            "standby: point it at the primary, or list every server with "
            "?target_session_attrs=read-write"
        )
    return (
        f"PostgreSQL has no steadyhand table here ({exc}); during a failover this passes once "
        "connections reach the promoted primary. If it lasts, the URL names a server or "
        "schema without the store: check it, or run `steadyhand migrate`"
    )


def standby_message(conninfo: str) -> str:
    """The error for a writer pointed at a standby (found when the store opens)."""
    return (
        f"PostgreSQL at {redact(conninfo)} is a read-only standby (in recovery): workers, "
        "clients and migrations need the primary. Point --db at the primary, or list every "
        "server so the primary is found after a failover: "
        "postgresql://HOST1:PORT1,HOST2:PORT2/DB?target_session_attrs=read-write. "
        "(Read-only commands can use a standby with --read-db.)"
    )


def role_problem(conninfo: str, schema: str, read_only: bool, row: Any) -> str | None:
    """What is wrong with this server for this store, from the `ROLE` query's row: a writer
    on a standby, or a reader where there is no store; None when it fits."""
    in_recovery, has_tables = bool(row and row[0]), bool(row and row[1])
    if in_recovery and not read_only:
        return standby_message(conninfo)
    if read_only and not has_tables:
        return (
            f"no steadyhand store in schema {schema} at {redact(conninfo)}: --read-db must "
            "name a replica of the database the workers use (same database and ?schema=)"
        )
    return None
