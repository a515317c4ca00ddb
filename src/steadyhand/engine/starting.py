"""Starting workflows: a client's batch in one transaction, written set-wise, and the
coalescing of concurrent single starts into such batches.

A batch looks its idempotency keys up in one query, inserts its root rows (with their
watch-list entries and priorities) in one statement (`store.starts`), reads the circuits
once, takes each new workflow's first decision into one `Writes`, and flushes that once
(one NOTIFY). Its answers are those of starting each request in turn: a key held in the
store, or claimed earlier in the same batch, returns that workflow (`created=False`) when
name and input match, and raises `IdempotencyConflict` when they differ, which rolls the
whole batch back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from steadyhand.core.errors import IdempotencyConflict, StoreError
from steadyhand.core.plans import Plan
from steadyhand.core.records import WorkflowRow
from steadyhand.engine.answers import Started
from steadyhand.engine.apply import dumps, started_fact
from steadyhand.engine.deciding import Decider
from steadyhand.engine.views import newest_run, view_of, with_services_txn
from steadyhand.engine.writes import Writes
from steadyhand.store.base import Tx
from steadyhand.store.starts import NewWorkflow


@dataclass(frozen=True)
class StartRequest:
    """One workflow to start: its new id, plan and input (as a value and as JSON text),
    its idempotency key, and its options (`deadline` None: the definition's)."""

    workflow_id: str
    plan: Plan
    input_value: Any
    input_json: str
    key: str | None = None
    parent_id: str | None = None
    deadline: float | None = None
    priority: int = 0
    fairness_key: str | None = None
    trace: Mapping[str, Any] | None = None  # the caller's trace context, kept in the fact


class StartIntake(Decider):
    """The entry point that starts workflows (see the module docstring)."""

    def start_batch(self, requests: Sequence[StartRequest]) -> list[Started]:
        """Start every request in one transaction: all are created (or found by their
        keys), or, on any error, none is."""
        now = self.clock()
        with self.store.transaction() as tx:
            return self.start_batch_txn(tx, now, requests)

    def start_batch_txn(
        self, tx: Tx, now: float, requests: Sequence[StartRequest]
    ) -> list[Started]:
        keys = sorted({r.key for r in requests if r.key is not None})
        found = tx.workflows_by_keys(keys) if keys else {}
        answers: list[Started | None] = [None] * len(requests)
        claimed: set[tuple[str, str]] = set()  # the keys and ids requests claim
        repeats: list[int] = []  # requests whose key (or id) an earlier one claimed
        batch: list[tuple[int, NewWorkflow]] = []
        for i, r in enumerate(requests):
            if r.key is not None and r.key in found:
                existing = found[r.key]
                _check_same(existing, r.plan.workflow, r.input_value, r.key)
                answers[i] = Started(newest_run(tx, existing).id, created=False)
                continue
            if _claim(r) in claimed:
                repeats.append(i)
                continue
            if ("id", r.workflow_id) in claimed:  # a new key under an id already used
                raise IdempotencyConflict(f"workflow id {r.workflow_id} is already taken")
            claimed |= {_claim(r), ("id", r.workflow_id)}
            plan_json = plan_text(r.plan)
            row = WorkflowRow(
                r.workflow_id, r.plan.workflow, r.key, r.input_value, r.plan, r.parent_id, now
            )
            new = NewWorkflow(row, r.input_json, plan_json, r.priority, r.fairness_key)
            batch.append((i, new))
        # Keys in one order (two batches sharing keys never wait on each other in a cycle),
        # then in chunks: while one chunk is decided, the next one's rows are inserted and
        # the last one's writes flushed (see `_Behind`).
        batch.sort(key=lambda item: (item[1].row.idempotency_key or "", item[1].row.id))
        inserted: set[str] = set()
        holders: dict[tuple[str, str], WorkflowRow] = {}  # what holds each claim now
        gates: dict[str, Any] = {}  # the circuits, read once for the batch

        def decide(tx: Tx, chunk: list[tuple[int, NewWorkflow]], taken: set[str]) -> Writes:
            writes = Writes()
            for i, new in chunk:
                r = requests[i]
                answers[i], holder = self._start_txn(tx, now, r, new, taken, writes, gates)
                holders[_claim(r)] = holders[("id", holder.id)] = holder
            return writes

        if not (self.store.overlaps_writes and len(batch) > CHUNK):
            inserted = tx.insert_workflows([new for _, new in batch])
            decide(tx, batch, inserted).flush(tx)
        else:
            chunks = [batch[at : at + CHUNK] for at in range(0, len(batch), CHUNK)]
            rows = [[new for _, new in chunk] for chunk in chunks]
            with _Behind(tx) as behind:
                inserting = behind.submit(tx.insert_workflows, rows[0])
                for k, chunk in enumerate(chunks):
                    taken = inserting.result()
                    inserted |= taken
                    if k + 1 < len(chunks):
                        inserting = behind.submit(tx.insert_workflows, rows[k + 1])
                    behind.submit(decide(behind.tx, chunk, taken).flush, tx)
        for i in repeats:  # as a second start of the same key in this transaction finds it
            r = requests[i]
            holder = holders.get(_claim(r)) or _taken(r)
            _check_same(holder, r.plan.workflow, r.input_value, r.key or holder.id)
            fresh = holder.id in inserted
            answers[i] = Started(holder.id if fresh else newest_run(tx, holder).id, False)
        done = [answer for answer in answers if answer is not None]
        assert len(done) == len(requests), "every request is answered"
        return done

    def _start_txn(
        self,
        tx: Tx,
        now: float,
        r: StartRequest,
        new: NewWorkflow,
        inserted: set[str],
        writes: Writes,
        gates: dict[str, Any],
    ) -> tuple[Started, WorkflowRow]:
        """Give a workflow just inserted its first fact and decision, or find what took its
        id or key meanwhile (a concurrent start that won the key); and the row holding it."""
        row = new.row
        if row.id not in inserted:
            taker = tx.workflow_by_key(r.key) if r.key else tx.get_workflow(row.id)
            if taker is None:
                raise IdempotencyConflict(f"workflow id {row.id} is already taken")
            _check_same(taker, r.plan.workflow, r.input_value, r.key or taker.id)
            return Started(taker.id, created=False), taker
        start = len(writes.facts)
        started = {"trace": dict(r.trace)} if r.trace else None
        writes.append_fact(row.id, 1, started_fact(row, r.deadline, started), now)
        view = with_services_txn(tx, view_of(row, tuple(writes.as_read(start))), gates)
        self.decide_and_apply_txn(tx, view, now, writes)
        return Started(row.id, created=True), row


T = TypeVar("T")

CHUNK = 250
"""Workflows decided per write in a big batch: on a store whose writes run in a server
(`Store.overlaps_writes`), each chunk's rows are inserted and its writes flushed on a
helper thread while Python decides the next, so the database works meanwhile (on SQLite
the writes hold the GIL while they bind their rows: measured slower)."""


class _Behind:
    """Runs a batch's statements in order on one helper thread, behind the caller. `tx`
    stands in for the transaction: any use of it waits for everything submitted, so the
    connection is never used by two threads at once and statements keep their order."""

    def __init__(self, tx: Tx) -> None:
        self._pool = ThreadPoolExecutor(1, "steadyhand-start-writes")
        self._pending: list[Future[Any]] = []
        self.tx = cast(Tx, _Settled(self, tx))

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future = self._pool.submit(fn, *args)
        self._pending.append(future)
        return future

    def settle(self) -> None:
        """Wait for everything submitted; raise the first error met."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            if kind is None:
                self.settle()
            elif self._pending:
                wait(self._pending)  # failing anyway: only let the statements finish first
        finally:
            self._pool.shutdown()


class _Settled:
    """The transaction, reached only once everything submitted to `_Behind` has run."""

    def __init__(self, behind: _Behind, tx: Tx) -> None:
        self._behind = behind
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        self._behind.settle()
        return getattr(self._tx, name)


_PLAN_TEXTS: dict[int, tuple[Plan, str]] = {}
"""Each plan's JSON by the plan's id (the plan kept alive beside it, so the id stays its
own): a deploy's plans are few and frozen, and encoding one costs more than the rest of
a lone start's Python."""


def plan_text(plan: Plan) -> str:
    """`plan` as the root row keeps it, encoded once per plan object."""
    found = _PLAN_TEXTS.get(id(plan))
    if found is not None and found[0] is plan:
        return found[1]
    if len(_PLAN_TEXTS) >= 1024:  # plans made on the fly (tests, tools): stay bounded
        _PLAN_TEXTS.clear()
    text = dumps(plan.to_json())
    _PLAN_TEXTS[id(plan)] = (plan, text)
    return text


def _taken(request: StartRequest) -> WorkflowRow:
    """A keyless request repeating the id of a keyed one that found its key taken."""
    raise IdempotencyConflict(f"workflow id {request.workflow_id} is already taken")


def _claim(request: StartRequest) -> tuple[str, str]:
    """What a request claims: its key, else its id (what a second start would look up)."""
    if request.key is not None:
        return ("key", request.key)
    return ("id", request.workflow_id)


def _check_same(existing: WorkflowRow, name: str, input_value: Any, key: str) -> None:
    if existing.name != name or existing.input != input_value:
        raise IdempotencyConflict(
            f"idempotency key {key!r} already started workflow {existing.id} "
            f"({existing.name}) with a different "
            f"{'workflow name' if existing.name != name else 'input'}; use a new key for a "
            "new workflow, or the same name and input to get the existing one back"
        )


class _Ticket:
    """One caller's start, waiting for its answer (or to be made the next batch's leader)."""

    __slots__ = ("answer", "done", "error", "lead", "request")

    def __init__(self, request: StartRequest) -> None:
        self.request = request
        self.done: threading.Event | None = None  # made when it queues (a leader never waits)
        self.answer: Started | None = None
        self.error: BaseException | None = None
        self.lead = False


class StartCoalescer:
    """Concurrent single starts share a transaction, so that threads starting one workflow
    each pay one commit between them instead of one each.

    One batch commits at a time. A caller that finds none committing leads the next one; a
    caller that finds one committing queues, and when that commit ends the first queued
    caller leads the next batch: itself and everything queued. Before it commits, a leader
    waits (at most `linger` seconds) until as many callers are queued as the last rounds
    served, since callers just answered tend to come straight back; a lone caller, whose
    last rounds served only itself, never waits. Every caller gets its own answer or its
    own exception: when a batch fails, each of its starts is tried again alone, so one
    bad request fails only itself.
    """

    def __init__(
        self,
        start_batch: Callable[[Sequence[StartRequest]], list[Started]],
        linger: float = 0.001,
    ) -> None:
        self._start_batch = start_batch
        self._linger = linger
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Ticket] = []
        self._leading = False
        self._callers = 1  # how many callers the last round served (answered or queued)

    def start(self, request: StartRequest) -> Started:
        ticket = _Ticket(request)
        with self._cond:
            if self._leading:
                ticket.done = threading.Event()
                self._queue.append(ticket)
                self._cond.notify()  # a lingering leader counts who has come
            else:
                self._leading = ticket.lead = True
        if ticket.done is not None:
            ticket.done.wait()  # for the answer, or to lead the next batch
        if ticket.lead:
            self._lead(ticket)
        if ticket.error is not None:
            raise ticket.error
        assert ticket.answer is not None
        return ticket.answer

    def _lead(self, leader: _Ticket) -> None:
        batch = self._gather(leader)
        try:
            self._answer(batch)
        finally:
            with self._cond:
                self._callers = len(batch) + len(self._queue)
                following = self._queue.pop(0) if self._queue else None
                if following is None:
                    self._leading = False
                else:
                    following.lead = True
            if following is not None and following.done is not None:
                following.done.set()

    def _gather(self, leader: _Ticket) -> list[_Ticket]:
        """The batch `leader` commits: itself and every start queued, once as many callers
        as the last round served are there, or `linger` has passed."""
        with self._cond:
            if self._callers > 1:
                deadline = time.monotonic() + self._linger
                while len(self._queue) + 1 < self._callers:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch, self._queue = [leader, *self._queue], []
        return batch

    def _answer(self, batch: list[_Ticket]) -> None:
        try:
            answers = self._start_batch([ticket.request for ticket in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for ticket in batch:  # alone, each meets only its own error
                    try:
                        ticket.answer = self._start_batch([ticket.request])[0]
                    except Exception as alone:
                        ticket.error = alone
        except BaseException as exc:  # the leader was interrupted: say so to the others
            for ticket in batch:
                ticket.error = StoreError(
                    f"the start was interrupted ({type(exc).__name__}) in the thread that "
                    "committed it with others; whether it committed is unknown: start it "
                    "again with the same key to find out"
                )
            raise
        else:
            for ticket, answer in zip(batch, answers, strict=True):
                ticket.answer = answer
        finally:
            for ticket in batch:
                if ticket.done is not None:
                    ticket.done.set()
