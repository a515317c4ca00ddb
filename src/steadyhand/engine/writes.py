"""What one engine transaction will write, gathered first and written at the end in a few
statements (one per kind of change), whether it decided for one workflow or for a batch.
It is the engine's only way to change the store.

Why buffer: a worker that records 16 outcomes at once would otherwise send ~12 statements
per workflow; gathered, the whole batch takes about five on PostgreSQL (lock, read, one
statement for the writes, commit; wake-ups and NOTIFY when there are any). Why it is safe:
every workflow written here is locked by the transaction and its facts were read under
that lock, so whether a fact's slot is free is known before the insert; facts are
inserted without `ON CONFLICT`, so if the database disagrees the transaction fails
instead of skipping one.

The order of `flush` is fixed: consumed tasks and idle wake-ups are removed before new
facts, tasks and wake-ups are added, so a wake-up asked for in this transaction is never
dropped by it (an extra supervisor run is harmless; a lost one is not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.facts import Fact
from steadyhand.core.records import NewFact, Task, WorkflowRow
from steadyhand.store.base import BatchWrite, Tx, call_task_row, task_from_row


@dataclass
class Claim:
    """Hand-off: calls the decisions schedule may be inserted already leased to `owner`,
    who runs them at once; `tasks` is filled only once the transaction has committed."""

    owner: str
    lease_seconds: float
    tasks: list[Task] = field(default_factory=list)


@dataclass
class Writes:
    """The changes of one transaction, in the order `flush` applies them (module doc)."""

    deleted_tasks: list[int] = field(default_factory=list)
    dropped_wakeups: list[str] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    call_tasks: list[dict[str, Any]] = field(default_factory=list)
    leased_calls: list[tuple[dict[str, Any], Claim]] = field(default_factory=list)
    wakeups: list[dict[str, Any]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    opened: list[dict[str, Any]] = field(default_factory=list)
    released: list[dict[str, Any]] = field(default_factory=list)
    notify_others: bool = True  # False: the deciding worker picks the new work up itself
    wants_notify: bool = False  # something was queued that an idle worker could start
    _slots: set[tuple[str, str]] = field(default_factory=set)
    _consumed: set[tuple[str, str, str, int]] = field(default_factory=set)
    _leased: Callable[[], list[Any]] = list  # the leased calls' rows, once committed

    def insert_workflow(self, tx: Tx, row: WorkflowRow, input_json: str, plan_json: str) -> bool:
        """Insert a workflow's root row now, the one write whose answer the rest depends on:
        it claims the id and the idempotency key (False: taken, nothing was written)."""
        return tx.insert_workflow(row, input_json, plan_json)

    def open(self, workflow_id: str, now: float) -> None:
        """Put the workflow among those the watchdog watches (see `wake_unwatched`)."""
        self.opened.append({"id": workflow_id, "now": now})

    def release_lease(self, task_id: int, owner: str) -> None:
        """Give a task whose holder is gone back to the queue."""
        self.released.append({"task_id": task_id, "owner": owner})

    def consume(self, task: Task) -> None:
        """The task is done with: delete it, and never queue its call again in this
        transaction (recorded one by one, a re-request would meet the still-existing task
        and be ignored; here it is deleted first, so it must be ignored explicitly)."""
        self.deleted_tasks.append(task.id)
        if task.step is not None and task.attempt is not None:
            self._consumed.add((task.workflow_id, task.kind, task.step, task.attempt))

    def append_fact(self, workflow_id: str, seq: int, fact: NewFact, at: float) -> bool:
        """Queue a fact at `seq`; False when this transaction already took its slot."""
        if fact.slot is not None:
            if (workflow_id, fact.slot) in self._slots:
                return False
            self._slots.add((workflow_id, fact.slot))
        self.facts.append(
            {
                "id": workflow_id,
                "seq": seq,
                "kind": fact.kind,
                "step": fact.step,
                "attempt": fact.attempt,
                "slot": fact.slot,
                "data": fact.data or {},  # encoded by the store, with the whole batch
                "at": at,
                "service": fact.service,
            }
        )
        return True

    def as_read(self, start: int) -> list[Fact]:
        """The facts queued from index `start` on, as a supervisor will read them back (data
        through JSON), so a view can be extended without reading the facts again."""
        return [
            Fact(r["seq"], r["kind"], r["at"], r["step"], r["attempt"], r["slot"],
                 jsoncodec.loads(jsoncodec.dumps(r["data"])))
            for r in self.facts[start:]
        ]  # fmt: skip

    def call_task(
        self,
        workflow_id: str,
        phase: str,
        step: str,
        attempt: int,
        payload: Mapping[str, Any],
        due_at: float,
        now: float,
        service: str | None,
    ) -> None:
        if (workflow_id, phase, step, attempt) in self._consumed:
            return
        row = call_task_row(workflow_id, phase, step, attempt, payload, due_at, now)
        self.call_tasks.append({**row, "service": service})
        self.wants_notify = True

    def leased_call(
        self,
        workflow_id: str,
        phase: str,
        step: str,
        attempt: int,
        payload: Mapping[str, Any],
        now: float,
        claim: Claim,
        until: float,
    ) -> bool:
        """Queue a call leased to `claim`'s owner; False when this transaction consumed it."""
        if (workflow_id, phase, step, attempt) in self._consumed:
            return False
        row = call_task_row(workflow_id, phase, step, attempt, payload, now, now)
        self.leased_calls.append(({**row, "owner": claim.owner, "until": until}, claim))
        return True

    def withdraw_calls(self, workflow_id: str) -> list[tuple[str, str, int]]:
        """Drop the calls this transaction queued for a workflow that is ending; returns
        each one's (phase, step, attempt). (The store's: the `withdraw_calls` statement.)"""
        dropped = [r for r in self.call_tasks if r["id"] == workflow_id]
        dropped += [r for r, _ in self.leased_calls if r["id"] == workflow_id]
        self.call_tasks = [r for r in self.call_tasks if r["id"] != workflow_id]
        self.leased_calls = [(r, c) for r, c in self.leased_calls if r["id"] != workflow_id]
        return [(r["kind"], r["step"], int(r["attempt"])) for r in dropped]

    def wake(self, workflow_id: str, due_at: float, now: float, *, notify: bool = True) -> None:
        """Ask for a supervisor run at `due_at` (`notify`: worth waking idle workers for)."""
        self.wakeups.append({"id": workflow_id, "due_at": due_at, "now": now})
        self.wants_notify |= notify

    def flush(self, tx: Tx) -> None:
        """Write everything in the fixed order; hand leased calls to their claims only after
        the caller's transaction commits (see `committed`)."""
        if self.opened:  # before the batch, which closes what ended in this transaction
            tx.execute_many("open_workflow", self.opened)
        if self.released:
            tx.execute_many("release_lease", self.released)
        batch = BatchWrite(
            finished_tasks=self.deleted_tasks,
            idle_wakeups_of=self.dropped_wakeups,
            closed=self.closed,
            facts=self.facts,
            call_tasks=self.call_tasks,
            leased_calls=[row for row, _ in self.leased_calls],
        )
        if any((batch.finished_tasks, batch.idle_wakeups_of, batch.closed, batch.facts,
                batch.call_tasks, batch.leased_calls)):  # fmt: skip
            self._leased = tx.write_batch(batch)
        if self.wakeups:
            earliest: dict[str, dict[str, Any]] = {}
            for row in self.wakeups:  # one per workflow, the earliest (as the upsert would)
                kept = earliest.get(row["id"])
                if kept is None or row["due_at"] < kept["due_at"]:
                    earliest[row["id"]] = row
            tx.execute_many("wake_supervisor", list(earliest.values()))
        if self.wants_notify and self.notify_others:
            tx.notify()

    def committed(self) -> None:
        """The transaction committed: give each claim the calls leased to it (a call that
        already had a task is not returned, and so not handed off)."""
        claims = {_call_key(row): claim for row, claim in self.leased_calls}
        for row in self._leased():
            claims[_call_key_of(row)].tasks.append(task_from_row(row))


def _call_key(row: Mapping[str, Any]) -> tuple[str, str, str, int]:
    return (row["id"], row["kind"], row["step"], int(row["attempt"]))


def _call_key_of(row: Any) -> tuple[str, str, str, int]:
    return (row[1], row[2], row[3], int(row[4]))
