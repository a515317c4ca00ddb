"""One PostgreSQL transaction: the store's statements sent on one pooled connection, with
BEGIN sent along with the first of them (see `PgTx`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from typing import Any

import psycopg

from steadyhand.core.facts import Fact
from steadyhand.core.records import WorkflowRow
from steadyhand.store.base import BatchWrite, Cursor, Tx
from steadyhand.store.pg_statements import (
    QUERIES,
    RECORDS,
    WRITE_BATCH,
    pyformat_cached,
    records,
    rows_param,
)
from steadyhand.store.rows import grouped_facts
from steadyhand.store.starts import PG_INSERT_WORKFLOWS, NewWorkflow, pg_insert_params

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
        self._pipeline: AbstractContextManager[Any] | None = None  # a batch write to commit
        self._notified = False

    def commit(self) -> None:
        """Commit what was begun; a batch write and what followed it are sent with the
        COMMIT, and any error they meet is raised here (nothing is then committed)."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            if self.begun:
                self._conn.commit()
            return
        try:
            self._conn.commit()
        except BaseException as exc:
            pipeline.__exit__(type(exc), exc, exc.__traceback__)
            raise
        pipeline.__exit__(None, None, None)

    def rollback(self) -> None:
        """Undo what was begun (after an error: nothing here raises)."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            with suppress(psycopg.Error):
                pipeline.__exit__(None, None, None)
        if self.begun and not self._conn.closed:
            with suppress(psycopg.Error):
                self._conn.rollback()

    def _run(self, query: Any, params: Mapping[str, Any], *, queued: bool = False) -> Cursor:
        """Send one statement. After a batch write, only a statement whose answer nobody
        reads (`queued`: a wake-up, a NOTIFY) joins it on the way to the COMMIT; any other
        first waits for the batch (its row count or rows are read at once)."""
        if not queued:
            self._settle()
        if self.begun:
            return self._conn.execute(query, params)
        return self._opening((query, params))[0]

    def _settle(self) -> None:
        """Wait for a batch write still on its way (raising what it met)."""
        if self._pipeline is not None:
            pipeline, self._pipeline = self._pipeline, None
            pipeline.__exit__(None, None, None)

    def _opening(self, *statements: tuple[Any, Mapping[str, Any]]) -> list[Cursor]:
        """Send BEGIN (unless sent) and `statements` in one round trip; their cursors."""
        self._settle()
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
        if not self._notified:  # once per transaction is enough (PostgreSQL merges them)
            self._notified = True
            self.statement = "notify"
            self._run(QUERIES["notify"], {"channel": self._channel}, queued=True)

    def execute_many(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if name in RECORDS:
            self.statement = name
            self._run(RECORDS[name], rows_param(rows), queued=True)
        else:
            super().execute_many(name, rows)

    def returning_many(self, name: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        if not rows:
            return []
        self.statement = name
        return self._run(RECORDS[name], rows_param(rows)).fetchall()

    def ids(self, values: Sequence[Any]) -> Any:
        return list(values)

    def insert_workflows(self, batch: Sequence[NewWorkflow]) -> set[str]:
        if not batch:
            return set()
        self.statement = "insert_workflows"
        params = pg_insert_params(batch, self._channel)
        found = self._run(PG_INSERT_WORKFLOWS, params).fetchall()
        self._notified |= bool(found)  # the statement sent it (see store.starts)
        return {row[0] for row in found}

    def write_batch(self, batch: BatchWrite) -> Callable[[], list[Any]]:
        params = {
            "finished": sorted(batch.finished_tasks),
            "idle": sorted(batch.idle_wakeups_of),
            "closed": sorted(batch.closed),
            "insert_fact": records(batch.facts),
            "insert_call_task": records(batch.call_tasks),
            "insert_call_task_leased": records(batch.leased_calls),
        }
        self.statement = "write_batch"
        if not self.begun:
            return self._run(WRITE_BATCH, params).fetchall
        # The batch is the transaction's last write: sent with what follows and the COMMIT,
        # one round trip; its rows are read once committed.
        if self._pipeline is None:
            pipeline = self._conn.pipeline()
            pipeline.__enter__()
            self._pipeline = pipeline
        return self._conn.execute(WRITE_BATCH, params).fetchall
