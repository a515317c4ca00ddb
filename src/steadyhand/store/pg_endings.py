"""Hearing workflows end, on PostgreSQL: migration 007's trigger NOTIFYs
`steadyhand_ended_<schema>` with the workflow id whenever a terminal fact is appended;
`PgEndings` LISTENs there on one connection of its own per store (see `store.endings`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import pq, sql

from steadyhand.store.endings import Endings, Source

CONNECT_TIMEOUT = 5  # seconds; the listener retries with backoff, waits poll meanwhile


def endings_channel(schema: str) -> str:
    """The channel the trigger notifies for `schema` (PostgreSQL cuts names at 63 bytes)."""
    return f"steadyhand_ended_{schema}"[:63]


class PgEndings(Endings):
    """LISTENs for the ends of workflows in one schema (NOTIFY is reliable while the
    connection lives, so waiters re-read only every `recheck` seconds)."""

    recheck = 5.0

    def __init__(self, conninfo: str, schema: str) -> None:
        super().__init__(f"steadyhand-{schema}")
        self._conninfo = conninfo
        self._channel = endings_channel(schema)

    def _connect(self) -> Source:
        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        return _Listening(conn)


class _Listening:
    """A LISTENing connection, read at the libpq level: select says when, `consume_input`
    reads, and a lost connection raises."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def fileno(self) -> int:
        return self._conn.pgconn.socket

    def receive(self) -> Iterable[str | None]:
        pgconn = self._conn.pgconn
        pgconn.consume_input()  # raises OperationalError when the server went away
        if pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError("the listening connection is broken")
        ended: list[str | None] = []
        while (note := pgconn.notifies()) is not None:
            ended.append(note.extra.decode() or None)
        return ended

    def close(self) -> None:
        self._conn.close()
