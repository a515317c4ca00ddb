"""The embedded SQLite store: one file, WAL, and `BEGIN IMMEDIATE` to serialise writers.

Every thread gets its own connection. SQLite allows one writer at a time, so taking the
write lock at BEGIN is the workflow lock; readers never block in WAL mode. Workers poll
(there is no NOTIFY), cheaply: they read the earliest due time before taking the lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from steadyhand.core.errors import InputError, StoreError
from steadyhand.core.records import Task
from steadyhand.store import hostclock
from steadyhand.store.base import Cursor, Store, Tx, encode_json_params, task_from_row
from steadyhand.store.migrations import latest_version, migrations
from steadyhand.store.priorities import AGE_BOOST
from steadyhand.store.queries import SHARED
from steadyhand.store.sqlite_endings import SqliteEndings, forget_ends, note_ends
from steadyhand.store.sqlite_errors import store_error
from steadyhand.store.starts import NewWorkflow, insert_workflows_locked
from steadyhand.store.wakeup import WakeChannel

_HAS_SCHEMA_TABLE = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'steadyhand_schema'"
)


# "Insert unless present" without ON CONFLICT: the BEFORE INSERT triggers of migration 006
# (which close REPLACE) refuse a taken key before any conflict clause could skip it.
QUERIES = {
    **SHARED,
    "append_fact": """
        INSERT INTO facts (workflow_id, seq, kind, step, attempt, slot, data, at, service)
        SELECT :id, :seq, :kind, :step, :attempt, :slot, :data, :at, :service
        WHERE :slot IS NULL
           OR NOT EXISTS (SELECT 1 FROM facts WHERE workflow_id = :id AND slot = :slot)
    """,
    "insert_workflow": """
        INSERT INTO workflows (id, name, idempotency_key, input, plan, parent_id, created_at)
        SELECT :id, :name, :key, :input, :plan, :parent_id, :now
        WHERE NOT EXISTS (SELECT 1 FROM workflows WHERE id = :id)
          AND (:key IS NULL OR NOT EXISTS (SELECT 1 FROM workflows WHERE idempotency_key = :key))
    """,
}
NEW_FILE_MODE = 0o600  # a new store (and its -wal and -shm, which SQLite creates alike)


class SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.wants_broadcast = False

    def execute(self, name: str, params: Mapping[str, Any] | None = None) -> Cursor:
        return self._conn.execute(QUERIES[name], params or {})

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Cursor:
        return self._conn.execute(sql, params or {})

    def notify(self) -> None:
        """SQLite has no NOTIFY: other processes are woken through the store's wake-up
        channel once this transaction commits (`steadyhand.store.wakeup`)."""
        self.wants_broadcast = True

    def execute_many(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self._conn.executemany(QUERIES[name], [encode_json_params(row) for row in rows])

    def insert_workflows(self, batch: Sequence[NewWorkflow]) -> set[str]:
        inserted = insert_workflows_locked(self._conn, QUERIES, batch)  # locked at BEGIN
        self.wants_broadcast |= bool(inserted)  # wake idle workers (see store.starts)
        return inserted


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or a bare path -> a file path."""
    if not url.startswith("sqlite:"):
        return Path(url)
    if not url.startswith("sqlite:///"):
        raise InputError(f"{url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path:
        raise InputError(f"{url!r} names no file; use sqlite:///path/to/steadyhand.db")
    return Path(path)


class SqliteStore(Store):
    """A steadyhand store in one SQLite file (see the module docstring)."""

    dialect = "sqlite"

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float | None = None,
        migrate: bool = True,
        must_exist: bool = False,
    ) -> None:
        """`busy_timeout` (or `?lock_timeout=` in the URL, seconds) bounds how long a
        statement waits for another process's write lock: default 15 s. With `must_exist`
        (read-only commands) a missing file is "no store at …", never created."""
        self.url = url
        self.path = sqlite_path(url)
        query = parse_qs(urlsplit(url).query) if url.startswith("sqlite:") else {}
        self._synchronous = query.get("synchronous", ["NORMAL"])[0].upper()
        if self._synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InputError(f"synchronous={self._synchronous} is not a SQLite sync level")
        if busy_timeout is None:
            try:
                busy_timeout = float(query.get("lock_timeout", ["15"])[0])
            except ValueError:
                raise InputError("lock_timeout in the SQLite URL must be seconds") from None
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._channel = WakeChannel(self.path)
        self._endings = SqliteEndings(self.path)
        self._anchors: dict[str, float] = {}
        if must_exist and not self.path.is_file():
            raise StoreError(
                f"no store at {self.path}: no such file. Check --db / $STEADYHAND_DB; a worker "
                "or `steadyhand migrate` creates it."
            )
        if not self.path.parent.exists():
            raise InputError(
                f"the directory {self.path.parent} for the SQLite store does not exist; create "
                "it or point --db / STEADYHAND_DB elsewhere"
            )
        if not self.path.parent.is_dir():
            raise StoreError(
                f"cannot keep a SQLite store at {self.path}: {self.path.parent} is a file, not a "
                "directory; point --db / STEADYHAND_DB at a path in a directory"
            )
        try:
            _create_private(self.path)
        except OSError as exc:
            raise StoreError(
                f"cannot create the SQLite store at {self.path}: {exc.strerror or exc}. Point "
                "--db / STEADYHAND_DB at a writable directory."
            ) from None
        if migrate:
            self.migrate()
        boot = hostclock.boot_id()
        if boot is not None:  # now, while no transaction of ours can hold the write lock
            self._anchors[boot] = self._anchor(boot)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA recursive_triggers=ON")  # REPLACE fires DELETE triggers
            # The end-noting TEMP trigger (store.sqlite_endings) fires per fact insert: kept in
            # a file, the temp schema made every write ~50% dearer in CPU.
            conn.execute("PRAGMA temp_store=MEMORY")
            noted: list[str] = []  # the workflows whose end this connection's transaction records
            self._local.noted = noted
            self._local.noting = note_ends(conn, noted.append)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _begin(self, mode: str) -> Iterator[SqliteTx]:
        try:
            conn = self._connection()
            conn.execute(f"BEGIN {mode}")
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc
        try:
            yield SqliteTx(conn)
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except _STORE_ERRORS as exc:
            _rollback(conn)
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return store_error(exc, self.path, self._busy_timeout)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        try:
            conn = self._connection()
            noted: list[str] = self._local.noted
            noted.clear()  # what a rolled-back transaction noted
            if not self._local.noting:  # the store was migrated after we connected
                self._local.noting = note_ends(conn, noted.append)
            with self._begin("IMMEDIATE") as tx:
                yield tx
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc
        if noted:
            ended = list(noted)
            noted.clear()
            self._channel.announce_ended(ended)
        if tx.wants_broadcast:
            self._channel.broadcast()
        else:
            self._channel.wake_self()

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        try:
            with self._begin("DEFERRED") as tx:
                yield tx
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc

    def schema_version(self) -> int:
        """The schema version in place (0 when there is none), read without any DDL."""
        try:
            with self._begin("DEFERRED") as tx:
                if tx.query(_HAS_SCHEMA_TABLE).fetchone() is None:
                    return 0
                return int(tx.execute("schema_version").fetchone()[0] or 0)
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc

    def migrate(self) -> int:
        try:
            return self._migrate()
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc

    def _migrate(self) -> int:
        """Upgrade the schema if it is behind; a current schema is left alone."""
        target = latest_version("sqlite")
        if self.schema_version() == target:
            return target
        conn = self._connection()
        forget_ends(conn)  # a migration may rebuild the facts table under the trigger
        self._local.noting = False
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS steadyhand_schema "
                "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            current = conn.execute(SHARED["schema_version"]).fetchone()[0] or 0
            if current > target:
                raise StoreError(
                    f"the store at {self.path} has schema version {current}, newer than this "
                    f"steadyhand understands ({target}); upgrade steadyhand"
                )
            for version, _, script in migrations("sqlite"):
                if version <= current:
                    continue
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(
                    SHARED["record_schema_version"], {"version": version, "now": time.time()}
                )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return target

    def lease_tasks(self, owner: str, limit: int, now: float, until: float) -> list[Task]:
        due = self.next_due()
        if due is None or due > now:
            return []
        with self.transaction() as tx:
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
        """The host's boot clock in epoch seconds, by the store's anchor for this boot (see
        `store.hostclock`): the same for every process on the host, whatever its wall clock."""
        boot = hostclock.boot_id()
        if boot is None:
            return time.time()
        anchor = self._anchors.get(boot)
        if anchor is None:
            anchor = self._anchor(boot)
            self._anchors[boot] = anchor
        return anchor + hostclock.since_boot()

    def _anchor(self, boot: str) -> float:
        """This boot's anchor, recorded by the first process to ask (on a connection of its
        own). Read when the store opens: later reads may come from inside a transaction."""
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute(SHARED["create_store_clock"])  # also where migration 010 was skipped
            row = conn.execute(SHARED["clock_anchor"], {"boot_id": boot}).fetchone()
            if row is None:
                proposed = hostclock.epoch_at_boot()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(SHARED["anchor_clock"], {"boot_id": boot, "epoch_at_boot": proposed})
                row = conn.execute(SHARED["clock_anchor"], {"boot_id": boot}).fetchone()
                conn.execute("COMMIT")
        except _STORE_ERRORS as exc:
            raise self._error(exc) from exc
        finally:
            conn.close()
        return float(row[0])

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until a commit here or a wake-up from another process, or `timeout`."""
        self._channel.wait(timeout)

    def checkpoint(self) -> None:
        with suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def interrupt_wait(self) -> None:
        self._channel.wake_self()

    def endings(self) -> SqliteEndings:
        """Hear ends on a socket of the wake-up channel, bound on the first wait."""
        return self._endings

    def close(self) -> None:
        self._endings.close()
        with self._lock:
            for conn in self._all:
                with suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
        self._channel.close()


_STORE_ERRORS = (sqlite3.DatabaseError,)
"""What SQLite raises about the store (operational, integrity, corruption; `store_error`
names each)."""


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: after a full disk or an I/O error SQLite
    has already rolled it back, and a second ROLLBACK would hide the real error."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _create_private(path: Path) -> None:
    """Create a new store file readable by its owner only (0600): it holds every input,
    result and event. An existing file keeps the mode its owner gave it."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, NEW_FILE_MODE))


def _statements(script: str) -> list[str]:
    """Split a schema script into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        buffer.append(line)
        text = "\n".join(buffer)
        if sqlite3.complete_statement(text):
            statements.append(text)
            buffer = []
    return statements
