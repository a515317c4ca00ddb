"""The ledger of one of the demo's stand-in remote services: its bookings, in its own
SQLite file (not steadyhand's store), deliberately without a unique key so that a double
booking, if steadyhand ever caused one, stays visible to the audit."""

from __future__ import annotations

import queue
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from steadyhand.core import jsoncodec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,  -- deliberately NOT unique: a double booking must stay visible
    booking_id TEXT NOT NULL,
    trip TEXT NOT NULL,
    details TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    created_at TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE INDEX IF NOT EXISTS bookings_by_key ON bookings (key);
"""
_COLUMNS = "key, booking_id, trip, details, status, created_at, cancelled_at"
Row = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _row(values: tuple[Any, ...]) -> Row:
    key, booking_id, trip, details, status, created_at, cancelled_at = values
    return {
        "key": key,
        "booking_id": booking_id,
        "status": status,
        "trip": trip,
        "details": jsoncodec.loads(details),
        "created_at": created_at,
        "cancelled_at": cancelled_at,
    }


class Ledger:
    """The service's durable memory, so a retried request finds the booking it already made.

    Idempotency is a lookup-then-insert inside one BEGIN IMMEDIATE transaction rather than
    a unique index, so that a bug that did book twice shows up in double_booked().
    Connections are pooled because handlers run the blocking calls in worker threads.
    """

    def __init__(self, path: Path, id_prefix: str) -> None:
        self.path = path
        self._id_prefix = id_prefix
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            yield conn
        finally:
            self._idle.put(conn)

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _first(conn: sqlite3.Connection, key: str) -> Row | None:
        found = conn.execute(
            f"SELECT {_COLUMNS} FROM bookings WHERE key = ? ORDER BY id LIMIT 1", (key,)
        ).fetchone()
        return None if found is None else _row(found)

    def book(
        self, key: str, trip: str, details: dict[str, Any], sold_out: Callable[[str], bool]
    ) -> tuple[str, Row]:
        """Book once per key: outcome is booked, existing, cancelled or sold_out."""
        with self._transaction() as conn:
            row = self._first(conn, key)
            if row is not None:
                return ("existing" if row["status"] == "booked" else "cancelled"), row
            if sold_out(key):
                return "sold_out", {"key": key}
            booking_id = f"{self._id_prefix}-{secrets.token_hex(6)}"
            values = (key, booking_id, trip, jsoncodec.dumps(details), "booked", _now(), None)
            conn.execute(f"INSERT INTO bookings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", values)
            return "booked", _row(values)

    def cancel(self, key: str) -> Row | None:
        """Cancel the booking under key; None when there is none. Safe to repeat."""
        with self._transaction() as conn:
            row = self._first(conn, key)
            if row is not None and row["status"] == "booked":
                row.update(status="cancelled", cancelled_at=_now())
                conn.execute(
                    "UPDATE bookings SET status = 'cancelled', cancelled_at = ? "
                    "WHERE key = ? AND status = 'booked'",
                    (row["cancelled_at"], key),
                )
            return row

    def lookup(self, key: str) -> Row | None:
        with self._connection() as conn:
            return self._first(conn, key)

    def dump(self) -> dict[str, Any]:
        with self._transaction("BEGIN") as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM bookings ORDER BY id").fetchall()
            dupes = conn.execute(
                "SELECT key FROM bookings GROUP BY key HAVING COUNT(*) > 1 ORDER BY key"
            ).fetchall()
        return {"bookings": [_row(r) for r in rows], "double_booked": [d[0] for d in dupes]}

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
