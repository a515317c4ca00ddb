"""One PostgreSQL transaction: the store's statements sent on one pooled connection, with
BEGIN sent along with the first of them (see `PgTx`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from steadyhand.core.facts import Fact
from steadyhand.core.records import WorkflowRow
from steadyhand.store.base import BatchWrite, Cursor, Tx, grouped_facts
from steadyhand.store.pg_statements import (
    QUERIES,
    RECORDS,
    WRITE_BATCH,
    pyformat_cached,
    records,
    rows_param,
)

__all__ = ["PgTx"]


class PgTx(Tx):
    """A transaction on one pooled connection.

    Statements are sent one by one and psycopg prepares the frequent ones, so the server
    plans each once per connection. Measured against sending a batch's statements as one
    string (two round trips per batch, but planned every time): planning cost more than
    the round trips saved on a nearby server, and so did psycopg's pipeline mode in client
    CPU — except for the opening: `BEGIN` is sent with the transaction's first statement
    (and a batch's lock and read go with it), one round trip instead of three. Each
    statement still runs after the one before it, so the read sees every fact committed
    before the lock was granted."""

    def __init__(self, conn: psycopg.Connection[Any], channel: str) -> None:
        self._conn = conn
        self._channel = channel
        self.begun = False  # BEGIN sent (the caller commits or rolls back)
        self.statement = "(none yet)"  # the last one sent: what a timeout interrupted

    def _run(self, query: Any, params: Mapping[str, Any]) -> Cursor:
        if self.begun:
            return self._conn.execute(query, params)
        return self._opening((query, params))[0]

    def _opening(self, *statements: tuple[Any, Mapping[str, Any]]) -> list[Cursor]:
        """Send BEGIN (unless sent) and `statements` in one round trip; their cursors."""
        with self._conn.pipeline():
            if not self.begun:
                self._conn.execute("BEGIN")
                self.begun = True
            return [self._conn.execute(query, params) for query, params in statements]

    def execute(self, name: str, params: Mapping[str, Any] | None = None) -> Cursor:
        self.statement = name
        return self._run(QUERIES[name], params or {})

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Cursor:
        self.statement = " ".join(sql.split())[:80]
        return self._run(pyformat_cached(sql), params or {})

    def lock_and_read(
        self, workflow_ids: Sequence[str]
    ) -> tuple[dict[str, WorkflowRow], dict[str, tuple[Fact, ...]]]:
        """Lock the root rows (in id order), then read their facts: one round trip."""
        ids = sorted(workflow_ids)
        self.statement = "lock_workflows"
        locked, read = self._opening(
            (QUERIES["lock_workflows"], {"ids": ids}), (QUERIES["read_facts_of"], {"ids": ids})
        )
        return grouped_facts(locked.fetchall(), read.fetchall())

    def notify(self) -> None:
        self.execute("notify", {"channel": self._channel})

    def execute_many(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if name in RECORDS:
            self.statement = name
            self._run(RECORDS[name], rows_param(rows))
        else:
            super().execute_many(name, rows)

    def returning_many(self, name: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        if not rows:
            return []
        self.statement = name
        return self._run(RECORDS[name], rows_param(rows)).fetchall()

    def ids(self, values: Sequence[Any]) -> Any:
        return list(values)

    def write_batch(self, batch: BatchWrite) -> list[Any]:
        params = {
            "finished": sorted(batch.finished_tasks),
            "idle": sorted(batch.idle_wakeups_of),
            "closed": sorted(batch.closed),
            "insert_fact": records(batch.facts),
            "insert_call_task": records(batch.call_tasks),
            "insert_call_task_leased": records(batch.leased_calls),
        }
        self.statement = "write_batch"
        return self._run(WRITE_BATCH, params).fetchall()
