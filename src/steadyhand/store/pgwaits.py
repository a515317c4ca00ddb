"""Bounded waits on PostgreSQL: every pooled connection has a lock timeout and a statement
timeout, and when one fires the error says what was blocked and by whom.

Defaults suit short engine transactions: no statement of steadyhand's should wait 5 s for
a lock or run 30 s. Set them per store URL (`?lock_timeout=2&statement_timeout=60`, in
seconds; 0 turns one off). When a timeout fires the store raises `StoreUnavailable`, which
workers log, back off from and retry, and whose message names the sessions holding locks
on steadyhand's tables (pid, user, application, state, how long, and their query).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg

from steadyhand.core.errors import InputError

LOCK_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 30.0
URL_KEYS = ("lock_timeout", "statement_timeout")
BLOCKED = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)

# Sessions holding locks on this schema's tables in a transaction older than the lock
# timeout: after our wait was cancelled nobody waits on them any more, so their age is the
# evidence (a row lock taken by FOR UPDATE shows as a RowShareLock on the table).
_HOLDERS = """
    SELECT a.pid, a.usename, a.application_name, a.state,
           extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS held_for,
           string_agg(DISTINCT c.relname || ' ' || l.mode, ', ') AS locks,
           left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200) AS query
    FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE c.relnamespace = to_regnamespace(%(schema)s) AND l.granted
      AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
      AND clock_timestamp() - a.xact_start >= make_interval(secs => %(older)s)
    GROUP BY a.pid, a.usename, a.application_name, a.state, a.xact_start, a.query
    ORDER BY a.xact_start LIMIT 5
"""


@dataclass(frozen=True)
class Timeouts:
    """The waits every pooled connection is bounded by (seconds; 0: unbounded)."""

    lock: float = LOCK_TIMEOUT
    statement: float = STATEMENT_TIMEOUT

    def options(self) -> str:
        """The libpq `options` that set them for every session."""
        return (
            f"-c lock_timeout={int(self.lock * 1000)} "
            f"-c statement_timeout={int(self.statement * 1000)}"
        )


def timeouts_from_url(url: str, given: Mapping[str, float | None] | None = None) -> Timeouts:
    """The timeouts named in the URL's query (or passed as store options), else defaults."""
    found: dict[str, float] = {}
    for key, value in parse_qsl(urlsplit(url).query):
        if key in URL_KEYS:
            try:
                found[key] = float(value)
            except ValueError:
                message = f"{key}={value!r} in the store URL is not a number of seconds"
                raise InputError(message) from None
    for key, option in (given or {}).items():
        if option is not None:
            found[key] = float(option)
    for key, seconds in found.items():
        if seconds < 0:
            raise InputError(f"{key} must be 0 (no limit) or a positive number of seconds")
    return Timeouts(
        lock=found.get("lock_timeout", LOCK_TIMEOUT),
        statement=found.get("statement_timeout", STATEMENT_TIMEOUT),
    )


def blocked_message(
    conn: psycopg.Connection[Any], schema: str, statement: str, exc: Exception, limits: Timeouts
) -> str:
    """What was blocked (our statement, which limit fired) and by whom, for the log."""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        what = f"statement {statement} waited {limits.lock:g}s for a lock (lock_timeout)"
    else:
        what = f"statement {statement} was cancelled after {limits.statement:g}s"
        if "lock timeout" not in str(exc):
            what += " (statement_timeout)"
    return f"{what}; {describe_holders(conn, schema, min(limits.lock, limits.statement) or 1.0)}"


def describe_holders(conn: psycopg.Connection[Any], schema: str, older: float) -> str:
    """Who holds locks on the schema's tables in long transactions, in one line."""
    try:
        rows = conn.execute(_HOLDERS, {"schema": schema, "older": older}).fetchall()
    except psycopg.Error as exc:
        return f"could not look up who holds the locks ({exc})"
    if not rows:
        return "no session holds a lock on steadyhand's tables any more"
    held = [
        f"pid {pid} ({user}, application {app or '?'}, {state}, transaction open "
        f"{age:.1f}s, holds {locks}): {query}"
        for pid, user, app, state, age, locks, query in rows
    ]
    return "blocked by " + "; ".join(held)
