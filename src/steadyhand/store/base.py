"""The one seam between steadyhand and a database: the `Store` and its transaction, `Tx`.

The engine composes a decision from `Tx` calls inside one short transaction; each backend
supplies connections, locking and leasing, and nothing else. Helpers on `Tx` run inside the
caller's transaction and never commit on their own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from steadyhand.core import jsoncodec
from steadyhand.core.circuit import spend_tokens
from steadyhand.core.facts import Fact
from steadyhand.core.records import GateRow, NewFact, Task, WorkflowRow
from steadyhand.core.redact import redact_url
from steadyhand.store import rows, starts
from steadyhand.store.endings import Endings
from steadyhand.store.priorities import lease_service_fairly_txn


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


# Row decoders and parameter encoders live in `rows`; these names are their old address.
encode_json_params = rows.encode_json_params
call_task_row = rows.call_task_row
task_from_row = rows.task_from_row
_workflow = rows.workflow_from_row
_fact = rows.fact_from_row
grouped_facts = rows.grouped_facts


@dataclass(frozen=True)
class BatchWrite:
    """The set-based writes of one engine transaction, applied in this order: finished
    tasks and idle wake-ups go, facts and call tasks come (see `writes.Writes.flush`)."""

    finished_tasks: Sequence[int] = ()
    idle_wakeups_of: Sequence[str] = ()  # workflows whose unleased wake-ups go
    closed: Sequence[str] = ()  # workflows that left the watch list
    facts: Sequence[Mapping[str, Any]] = ()
    call_tasks: Sequence[Mapping[str, Any]] = ()
    leased_calls: Sequence[Mapping[str, Any]] = ()  # inserted leased; returned


class Tx(ABC):
    """One open transaction. Every method runs inside it; none commits."""

    @abstractmethod
    def execute(self, name: str, params: Mapping[str, Any] | None = None) -> Cursor:
        """Run the named statement of this backend's dialect."""

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Cursor:
        """Run SQL text built in `store` (the report queries of `reporting`, whose text
        depends on the request) or by tests, with `:name` parameters in the portable
        subset; the backend adapts the parameter style. Nothing outside `store` writes SQL."""

    @abstractmethod
    def notify(self) -> None:
        """Wake idle workers once this transaction commits (a no-op where unsupported)."""

    def execute_many(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the named statement for many rows (one statement where the backend can).

        Values under the keys `data` and `payload` are JSON values, stored as JSON text."""
        for params in rows:
            self.execute(name, encode_json_params(params))

    def returning_many(self, name: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """`execute_many` for a `... RETURNING` statement; every returned row."""
        out: list[Any] = []
        for params in rows:
            out += self.execute(name, encode_json_params(params)).fetchall()
        return out

    def write_batch(self, batch: BatchWrite) -> Callable[[], list[Any]]:
        """Apply `batch`, one statement per part (PostgreSQL sends all parts as one, and
        sends it with the commit); returns how to read, once committed, the task rows of
        the leased calls inserted (a call whose task already existed is not returned)."""
        if batch.finished_tasks:
            self.delete_tasks(batch.finished_tasks)
        if batch.idle_wakeups_of:
            self.drop_idle_supervise_of(batch.idle_wakeups_of)
        if batch.closed:
            self.close_workflows(batch.closed)
        if batch.facts:  # a taken slot or seq is an error here, which rolls everything back
            self.execute_many("insert_fact", batch.facts)
        if batch.call_tasks:
            self.execute_many("insert_call_task", batch.call_tasks)
        rows = self.returning_many("insert_call_task_leased", batch.leased_calls)
        return lambda: rows

    def ids(self, values: Sequence[Any]) -> Any:
        """A list of ids as the `:ids` parameter of this dialect's set statements."""
        return jsoncodec.dumps(list(values))

    # -- workflows --------------------------------------------------------------------------
    def insert_workflow(self, row: WorkflowRow, input_json: str, plan_json: str) -> bool:
        """Insert a root row; False when its id or idempotency key already exists."""
        cur = self.execute(
            "insert_workflow",
            {
                "id": row.id,
                "name": row.name,
                "key": row.idempotency_key,
                "input": input_json,
                "plan": plan_json,
                "parent_id": row.parent_id,
                "now": row.created_at,
            },
        )
        return cur.rowcount == 1

    def lock_workflow(self, workflow_id: str) -> WorkflowRow | None:
        """Lock the root row for the rest of the transaction (serialises its deciders)."""
        row = self.execute("lock_workflow", {"id": workflow_id}).fetchone()
        return None if row is None else _workflow(row)

    def lock_and_read(
        self, workflow_ids: Sequence[str]
    ) -> tuple[dict[str, WorkflowRow], dict[str, tuple[Fact, ...]]]:
        """Lock many root rows, always in id order (two batches never wait on each other in
        a cycle), then read their facts. Returns the rows that exist and their facts, by id."""
        ids = self.ids(sorted(workflow_ids))
        locked = self.execute("lock_workflows", {"ids": ids}).fetchall()
        return grouped_facts(locked, self.execute("read_facts_of", {"ids": ids}).fetchall())

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        row = self.execute("get_workflow", {"id": workflow_id}).fetchone()
        return None if row is None else _workflow(row)

    def workflow_by_key(self, key: str) -> WorkflowRow | None:
        row = self.execute("workflow_by_key", {"key": key}).fetchone()
        return None if row is None else _workflow(row)

    def workflows_by_keys(self, keys: Sequence[str]) -> dict[str, WorkflowRow]:
        """The workflows that hold any of `keys`, by key, in one query."""
        found = self.execute("workflows_by_keys", {"ids": self.ids(sorted(keys))}).fetchall()
        return {row[2]: _workflow(row) for row in found}

    def insert_workflows(self, batch: Sequence[starts.NewWorkflow]) -> set[str]:
        """Insert root rows, each with its watch-list entry and priority, and wake idle
        workers once this commits; returns the ids inserted (a row whose id or key is
        taken is skipped: see `store.starts`)."""
        inserted = starts.insert_workflows_one_by_one(self, batch)
        if inserted:
            self.notify()
        return inserted

    # -- facts ------------------------------------------------------------------------------
    def read_facts(self, workflow_id: str) -> tuple[Fact, ...]:
        rows = self.execute("read_facts", {"id": workflow_id}).fetchall()
        return tuple(_fact(r) for r in rows)

    def append_fact(self, workflow_id: str, seq: int, fact: NewFact, at: float) -> bool:
        """Append one fact; False when its slot is already taken (nothing was written)."""
        cur = self.execute(
            "append_fact",
            {
                "id": workflow_id,
                "seq": seq,
                "kind": fact.kind,
                "step": fact.step,
                "attempt": fact.attempt,
                "slot": fact.slot,
                "data": jsoncodec.dumps(fact.data or {}),
                "at": at,
                "service": fact.service,
            },
        )
        return cur.rowcount == 1

    # -- watch list -------------------------------------------------------------------------
    def open_workflow(self, workflow_id: str, now: float) -> None:
        self.execute("open_workflow", {"id": workflow_id, "now": now})

    def unwatched_workflows(self, before: float, limit: int) -> list[str]:
        rows = self.execute("unwatched_workflows", {"before": before, "limit": limit}).fetchall()
        return [r[0] for r in rows]

    # -- tasks ------------------------------------------------------------------------------
    def wake_supervisor(self, workflow_id: str, due_at: float, now: float) -> None:
        """Ask for a supervisor run at `due_at`; coalesces with a pending one (earliest wins)."""
        self.execute("wake_supervisor", {"id": workflow_id, "due_at": due_at, "now": now})

    def drop_idle_supervise(self, workflow_id: str) -> None:
        """Forget pending wake-ups nobody holds: the caller is deciding right now."""
        self.execute("drop_idle_supervise", {"id": workflow_id})

    def insert_call_task(
        self,
        workflow_id: str,
        phase: str,
        step: str,
        attempt: int,
        payload: Mapping[str, Any],
        due_at: float,
        now: float,
        service: str | None = None,
    ) -> bool:
        """Queue one call; False when the call already has a task."""
        row = call_task_row(workflow_id, phase, step, attempt, payload, due_at, now)
        cur = self.execute("insert_call_task", encode_json_params({**row, "service": service}))
        return cur.rowcount == 1

    def delete_task(self, task_id: int) -> None:
        self.execute("delete_task", {"task_id": task_id})

    def delete_tasks(self, task_ids: Sequence[int]) -> None:
        self.execute("delete_tasks", {"ids": self.ids(sorted(task_ids))})

    def drop_idle_supervise_of(self, workflow_ids: Sequence[str]) -> None:
        """`drop_idle_supervise` for many workflows in one statement."""
        self.execute("drop_idle_supervise_of", {"ids": self.ids(sorted(workflow_ids))})

    def close_workflows(self, workflow_ids: Sequence[str]) -> None:
        self.execute("close_workflows", {"ids": self.ids(sorted(workflow_ids))})

    def lock_task(self, task_id: int) -> Task | None:
        row = self.execute("lock_task", {"task_id": task_id}).fetchone()
        return None if row is None else task_from_row(row)

    def workflow_tasks(self, workflow_id: str) -> list[Task]:
        rows = self.execute("workflow_tasks", {"id": workflow_id}).fetchall()
        return [task_from_row(r) for r in rows]

    def expired_leases(self, now: float, limit: int) -> list[Task]:
        rows = self.execute("expired_leases", {"now": now, "limit": limit}).fetchall()
        return [task_from_row(r) for r in rows]

    def release_lease(self, task_id: int, owner: str) -> None:
        self.execute("release_lease", {"task_id": task_id, "owner": owner})

    # -- remote services --------------------------------------------------------------------
    def gate(self, service: str, *, lock: bool = False) -> GateRow | None:
        row = self.execute("lock_gate" if lock else "get_gate", {"service": service}).fetchone()
        return None if row is None else GateRow.from_row(row)

    def gates(self) -> list[GateRow]:
        return [GateRow.from_row(r) for r in self.execute("all_gates").fetchall()]


class Store(ABC):
    """A database holding steadyhand's facts and queue. Thread-safe; share one per process."""

    url: str
    dialect: str
    overlaps_writes = False
    """Whether a transaction's writes run outside this process (a database server), so
    sending one part of a big batch while Python prepares the next saves time."""

    @property
    def safe_url(self) -> str:
        """The store's URL with any password hidden: the only form messages and logs show."""
        return redact_url(self.url)

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Tx]:
        """A short write transaction; commits on success, rolls back on any exception."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Tx]:
        """A read-only transaction for status pages and reports."""

    @abstractmethod
    def migrate(self) -> int:
        """Create or upgrade the schema; returns the version now in place."""

    @abstractmethod
    def schema_version(self) -> int:
        """The schema version in place (0 for an empty store), read without any DDL."""

    @abstractmethod
    def lease_tasks(self, owner: str, limit: int, now: float, until: float) -> list[Task]:
        """Claim up to `limit` due tasks for `owner` until `until`, in one transaction."""

    @abstractmethod
    def read_clock(self) -> float:
        """The store's clock now (epoch seconds); read it through a `store.clock.StoreClock`."""

    @abstractmethod
    def wait_for_work(self, timeout: float) -> None:
        """Block until new work may be due, or `timeout` seconds pass."""

    def checkpoint(self) -> None:  # noqa: B027 - a no-op except where a log must be folded
        """Fold the write-ahead log into the database now (SQLite), so that a big change
        (an archive run) does not leave the next small commit to pay for it."""

    @abstractmethod
    def interrupt_wait(self) -> None:
        """End this process's `wait_for_work` early (a stopping worker)."""

    @abstractmethod
    def close(self) -> None:
        """Release every connection."""

    def replica_lag(self) -> float | None:
        """Seconds a read replica is behind (None: this store reads the primary itself)."""
        return None

    def endings(self) -> Endings | None:
        """The store's one listener for workflow ends, shared by every waiting client (None
        where the store cannot tell: waits poll)."""
        return None

    def lease_gated(
        self,
        owner: str,
        limit: int,
        now: float,
        until: float,
        allowance: Callable[[GateRow | None, int, int, float], int],
        trial_start: Callable[[GateRow, float], float | None],
    ) -> list[Task]:
        """Claim due calls to remote services, within each service's limits, atomically.

        The gate rows are locked for the transaction (on SQLite the write lock does it), so
        workers on many machines cannot together exceed a concurrency limit or spend the
        same rate tokens. `allowance(gate, in_flight, trials, now)` says how many more may
        start; `trial_start(gate, now)` says since when calls count as circuit trials.
        """
        leased: list[Task] = []
        with self.snapshot() as tx:  # a cheap look first: most polls find nothing due
            if tx.execute("gated_due_services", {"now": now}).fetchone() is None:
                return leased
        with self.transaction() as tx:
            due = [r[0] for r in tx.execute("gated_due_services", {"now": now}).fetchall()]
            for service in sorted(due):
                room = limit - len(leased)
                if room <= 0:
                    break
                gate = tx.gate(service, lock=True)
                in_flight = int(tx.execute("service_in_flight", {"service": service}).fetchone()[0])
                trials = 0
                since = trial_start(gate, now) if gate is not None else None
                if since is not None:
                    params = {"service": service, "since": since, "limit": 1000}
                    trials = len(tx.execute("recent_service_outcomes", params).fetchall())
                take = min(room, allowance(gate, in_flight, trials, now))
                if take <= 0:
                    continue
                rows = lease_service_fairly_txn(tx, owner, service, now, until, take)
                leased += [task_from_row(r) for r in rows]
                if gate is not None and rows:
                    spent = spend_tokens(gate, len(rows), now)
                    tx.execute("save_tokens", {"service": service, "tokens": spent, "now": now})
        return leased

    def renew_leases(self, owner: str, task_ids: Sequence[int], until: float) -> int:
        """How many of `owner`'s leases `renew_leases_of` renewed."""
        return len(self.renew_leases_of(owner, task_ids, until))

    def renew_leases_of(self, owner: str, task_ids: Sequence[int], until: float) -> list[int]:
        """Extend `owner`'s leases (heartbeat) in one statement; returns the ids renewed.

        A task another transaction holds right now is skipped, not waited for: it is being
        finished (its outcome recorded) or expired, and waiting could close a lock cycle
        with a batch that holds its workflow. The next heartbeat renews it if it remains.
        """
        with self.transaction() as tx:
            params = {"ids": tx.ids(sorted(task_ids)), "owner": owner, "until": until}
            return [int(row[0]) for row in tx.execute("renew_leases", params).fetchall()]

    def release_leases(self, owner: str, task_ids: Sequence[int]) -> None:
        """Give tasks back to the queue unstarted (a worker shutting down); like renewing,
        a task being finished right now is skipped."""
        with self.transaction() as tx:
            tx.execute("release_leases", {"ids": tx.ids(sorted(task_ids)), "owner": owner})

    def next_due(self) -> float | None:
        """The due time of the earliest unleased task, for sleeping exactly long enough."""
        with self.snapshot() as tx:
            value = tx.execute("next_due").fetchone()[0]
        return None if value is None else float(value)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
