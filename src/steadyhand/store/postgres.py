"""The PostgreSQL store: a connection pool, `FOR UPDATE` workflow locks, `SKIP LOCKED`
leasing, and `LISTEN/NOTIFY` so idle workers wake the moment work arrives.

All tables live in one schema (default `steadyhand`, or `?schema=name` in the URL), so
several independent deployments, or test runs, can share one database.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from steadyhand.core.errors import StoreError, StoreUnavailable
from steadyhand.core.records import Task
from steadyhand.store.base import Store, Tx, task_from_row
from steadyhand.store.migrations import latest_version, migrations
from steadyhand.store.pg_connect import (
    READER_ATTRS,
    REPLICA_LAG,
    REROUTE,
    ROLE,
    WRITER_ATTRS,
    redact,
    reroute_message,
    role_problem,
    split_url,
    with_session_attrs,
)
from steadyhand.store.pg_endings import PgEndings
from steadyhand.store.pg_errors import connect_error, store_error
from steadyhand.store.pg_statements import QUERIES
from steadyhand.store.pg_tx import PgTx
from steadyhand.store.pgwaits import BLOCKED, blocked_message, timeouts_from_url
from steadyhand.store.priorities import AGE_BOOST

_MIGRATION_LOCK = 0x57EADE  # advisory lock key: one migrator at a time


_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)
_STORE_ERRORS = (psycopg.Error, PoolTimeout)
_RETURNED: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
IDLE_CHECK_SECONDS = 5.0


def _stamp(conn: Any) -> None:
    """Pool `reset` hook: remember when a connection came back."""
    _RETURNED[conn] = time.monotonic()


def _check_if_idle(conn: Any) -> None:
    """Pool `check` hook: ping only connections idle for a while (a round trip saved)."""
    if time.monotonic() - _RETURNED.get(conn, 0.0) > IDLE_CHECK_SECONDS:
        ConnectionPool.check_connection(conn)


__all__ = ["PostgresStore", "split_url"]


class PostgresStore(Store):
    """A steadyhand store in a PostgreSQL schema (see the module docstring).

    With `read_only`, the store only reads (the `--read-db` of the on-call commands): it
    never migrates, its sessions refuse writes, and a multi-host URL prefers a standby.
    """

    dialect = "postgresql"
    overlaps_writes = True

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        migrate: bool = True,
        read_only: bool = False,
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
    ) -> None:
        self.url = url
        conninfo, self.schema = split_url(url)
        self.read_only = read_only
        self.conninfo = with_session_attrs(conninfo, READER_ATTRS if read_only else WRITER_ATTRS)
        given = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
        self.timeouts = timeouts_from_url(url, given)
        options = f"-c search_path={self.schema} {self.timeouts.options()}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        self.channel = f"steadyhand_{self.schema}"[:63]
        self._listener: psycopg.Connection[Any] | None = None
        self._listener_lock = threading.Lock()
        self._endings = PgEndings(self.conninfo, self.schema)
        self._pool = ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "options": options},
            check=_check_if_idle,
            reset=_stamp,
            timeout=connect_timeout,
            open=False,
            name=f"steadyhand-{self.schema}",
        )
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        found = self._diagnose()  # one direct attempt: a wrong URL is said at once, clearly
        if found is not None:
            raise connect_error(found, redact(self.conninfo)) from found
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except _UNAVAILABLE as exc:
            self._pool.close()
            raise self._error(exc) from exc
        try:
            self._check_role()
        except BaseException:
            self._pool.close()
            raise
        if migrate and not read_only:
            self.migrate()

    def _diagnose(self) -> psycopg.Error | None:
        """Try one direct connection; the error it meets, or None when the server answers."""
        try:
            conn = psycopg.connect(
                self.conninfo, connect_timeout=max(2, int(self._connect_timeout))
            )
        except psycopg.Error as exc:
            return exc
        conn.close()
        return None

    def _error(self, exc: BaseException) -> StoreError:
        """What a failure means, in words (see `pg_errors`)."""
        where = redact(self.conninfo)
        return store_error(exc, where, self._diagnose, self._max_connections)

    def _check_role(self) -> None:
        """Refuse, with what to do, a writer on a standby or a reader without our tables."""
        try:
            with self._pool.connection() as conn:
                row = conn.execute(ROLE, (f"{self.schema}.facts",)).fetchone()
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        problem = role_problem(self.conninfo, self.schema, self.read_only, row)
        if problem is not None:
            raise StoreError(problem)

    def replica_lag(self) -> float | None:
        """Seconds since the last commit this standby replayed (None on a primary)."""
        try:
            with self._pool.connection() as conn:
                row = conn.execute(REPLICA_LAG).fetchone()
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        return None if row is None or row[0] is None else float(row[0])

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; one that met the wrong server (`REROUTE`) is closed, so the
        pool replaces it with one made where the URL now points, and the call is retried."""
        try:
            with self._pool.connection() as conn:
                try:
                    yield conn
                except REROUTE:
                    conn.close()
                    raise
        except REROUTE as exc:
            raise StoreUnavailable(reroute_message(exc)) from exc

    @contextmanager
    def transaction(self, *, single: bool = False) -> Iterator[Tx]:
        """One transaction; `single`: one statement, which commits by itself (no BEGIN)."""
        try:
            with self._connection() as conn:
                tx = PgTx(conn, self.channel)
                tx.begun = single  # nothing to open: commit and rollback find nothing open
                try:
                    try:
                        yield tx
                        tx.commit()
                    except BaseException:
                        tx.rollback()
                        raise
                except BLOCKED as exc:  # rolled back; say who blocked us, on this connection
                    message = blocked_message(conn, self.schema, tx.statement, exc, self.timeouts)
                    raise StoreUnavailable(f"PostgreSQL: {message}", cause="locked") from exc
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                tx = PgTx(conn, self.channel)
                tx.begun = True  # psycopg began it (and ends it)
                yield tx
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc

    def schema_version(self) -> int:
        """The schema version in place (0 when there is none), read without any DDL."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                found = conn.execute("SELECT to_regclass('steadyhand_schema')").fetchone()
                if found is None or found[0] is None:
                    return 0
                row = conn.execute(QUERIES["schema_version"]).fetchone()
        except _UNAVAILABLE as exc:
            raise self._error(exc) from exc
        return int((row[0] if row else None) or 0)

    def migrate(self) -> int:
        """Upgrade the schema if it is behind. A current schema is left alone (no DDL is
        even attempted), so a role without CREATE can open a migrated store."""
        target = latest_version("postgres")
        if self.schema_version() == target:
            return target
        try:
            with self._pool.connection() as conn, conn.transaction():
                # A migration may wait for another migrator and take long: not bounded.
                conn.execute("SET LOCAL lock_timeout = 0")
                conn.execute("SET LOCAL statement_timeout = 0")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS steadyhand_schema "
                    "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
                )
                row = conn.execute(QUERIES["schema_version"]).fetchone()
                current = (row[0] if row else None) or 0
                if current > target:
                    raise StoreError(
                        f"the store in schema {self.schema} has version {current}, newer than "
                        f"this steadyhand understands ({target}); upgrade steadyhand"
                    )
                for version, _, script in migrations("postgres"):
                    if version <= current:
                        continue
                    conn.execute(script.encode())
                    conn.execute(
                        QUERIES["record_schema_version"], {"version": version, "now": time.time()}
                    )
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc
        return target

    def lease_tasks(self, owner: str, limit: int, now: float, until: float) -> list[Task]:
        with self.transaction(single=True) as tx:  # one UPDATE: one round trip
            rows = tx.execute(
                "lease_tasks",
                {
                    "owner": owner,
                    "limit": limit,
                    "now": now,
                    "until": until,
                    "aged": now - AGE_BOOST,
                },
            ).fetchall()
        return [task_from_row(r) for r in rows]

    def read_clock(self) -> float:
        """The database server's clock (`clock_timestamp()`), in epoch seconds."""
        try:
            with self._pool.connection() as conn:
                row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
                return float(row.fetchone()[0])
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc

    def wait_for_work(self, timeout: float) -> None:
        """Block on LISTEN until a NOTIFY arrives or `timeout` passes."""
        with self._listener_lock:
            try:
                if self._listener is None or self._listener.closed:
                    self._listener = psycopg.connect(self.conninfo, autocommit=True)
                    self._listener.execute(
                        sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
                    )
                for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                    break
            except psycopg.Error:
                if self._listener is not None:
                    self._listener.close()
                self._listener = None
                time.sleep(min(timeout, 0.5))

    def interrupt_wait(self) -> None:
        """Wake this process's listener with a NOTIFY (other workers take it as a hint)."""
        with suppress(psycopg.Error), self._pool.connection(timeout=2) as conn:
            conn.execute("SELECT pg_notify(%s, '')", (self.channel,))

    def endings(self) -> PgEndings | None:
        """LISTEN for ends on one connection of its own, opened on the first wait (a reader
        on a standby hears nothing: NOTIFY is not replicated, so its waits poll)."""
        return None if self.read_only else self._endings

    def drop_schema(self) -> None:
        """Remove every steadyhand table of this schema (tests and `steadyhand reset`)."""
        with self._pool.connection() as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    def close(self) -> None:
        self._endings.close()
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self._pool.close()
