"""Recording what agent calls did: a worker's finished calls in one batch transaction,
and a lease that expired while its call was in flight (the outcome becomes `lost`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from steadyhand.core.decisions import Decision
from steadyhand.core.errors import StoreError, StoreUnavailable
from steadyhand.core.facts import LOST, call_kind, call_slot
from steadyhand.core.records import SUPERVISE, NewFact, Task
from steadyhand.engine.answers import Outcome, outcome_fact
from steadyhand.engine.deciding import Decider
from steadyhand.engine.views import (
    extended,
    load_many_txn,
    load_txn,
)
from steadyhand.engine.writes import Claim, Writes
from steadyhand.store.heartbeating import heartbeat_txn

log = logging.getLogger("steadyhand.engine")


class OutcomeRecorder(Decider):
    """The entry points a worker calls when calls end (see the module docstring)."""

    def record_outcome(
        self,
        task: Task,
        outcome: Outcome,
        worker: str,
        *,
        notify: bool = False,
        claim: Claim | None = None,
    ) -> Decision | None:
        """Record what one agent call did and decide what comes next (see `record_outcomes`)."""
        return self.record_outcomes([(task, outcome)], worker, notify=notify, claim=claim)[0]

    def record_outcomes(
        self,
        reports: Sequence[tuple[Task, Outcome]],
        worker: str,
        *,
        notify: bool = False,
        claim: Claim | None = None,
    ) -> list[Decision | None]:
        """Record what agent calls did, and decide what comes next for each workflow, in one
        transaction: their workflows are locked in id order, their facts read in one
        statement, and the writes of all the decisions sent together (`writes.Writes`).

        With `claim`, a call a decision schedules may be inserted already leased to the
        claim's owner (a hand-off: no lease commit); `claim.tasks` gets it once committed.
        If the batch as a whole is refused (a constraint, or a bug in one workflow's
        decision that escaped `guard.guarded`), each report is recorded on its own, so one
        bad report costs only itself. A store that is unavailable (a full disk, a lost
        connection) is raised: the whole batch is worth retrying, and reports already
        recorded are recognised as such (`outcome_fact`).
        """
        if len(reports) > 1:
            try:
                return self._record_batch(reports, worker, notify=notify, claim=claim)
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.warning(
                    "a batch of %d outcomes was refused (%s); recording them one by one",
                    len(reports),
                    exc,
                )
        decisions: list[Decision | None] = []
        for task, outcome in reports:
            try:
                decisions += self._record_batch(
                    [(task, outcome)], worker, notify=notify, claim=claim
                )
            except StoreUnavailable:
                raise
            except Exception as exc:
                if len(reports) == 1:
                    raise
                log.error(  # the others of the batch are recorded; this one is retried
                    "could not record the outcome of task %s (%s); its lease will expire "
                    "and the call be retried",
                    task.id,
                    exc,
                    exc_info=not isinstance(exc, StoreError),
                    extra={"workflow_id": task.workflow_id, "step": task.step},
                )
                decisions.append(None)
        return decisions

    def _record_batch(
        self,
        reports: Sequence[tuple[Task, Outcome]],
        worker: str,
        *,
        notify: bool,
        claim: Claim | None,
    ) -> list[Decision | None]:
        now = self.clock()
        writes = Writes(notify_others=notify)
        decisions: list[Decision | None] = []
        remaining = Counter(task.workflow_id for task, _ in reports)
        with self.store.transaction() as tx:
            views = load_many_txn(tx, list(remaining))
            for task, _ in reports:  # all first: no decision may re-queue a reported call
                writes.consume(task)
            for task, outcome in reports:
                remaining[task.workflow_id] -= 1
                view = views.get(task.workflow_id)
                fact = None if view is None else outcome_fact(view, task, outcome, worker)
                if view is None or fact is None:
                    decisions.append(None)  # unknown workflow, or our own earlier commit
                    continue
                mark = len(writes.facts)
                writes.append_fact(view.workflow_id, view.last_seq + 1, fact, now)
                writes.dropped_wakeups.append(view.workflow_id)
                view = extended(view, writes.as_read(mark))
                mark = len(writes.facts)
                decisions.append(self.decide_and_apply_txn(tx, view, now, writes, claim=claim))
                if remaining[view.workflow_id]:  # decided on again later in this batch
                    views[view.workflow_id] = extended(view, writes.as_read(mark))
            writes.flush(tx)
        writes.committed()
        return decisions

    def expire_lease(self, task: Task) -> bool:
        """Turn an expired lease into a fact (a call's outcome becomes unknown: `lost`)."""
        now = self.clock()
        with self.store.transaction() as tx:
            view = load_txn(tx, task.workflow_id, deciding=False)
            current = tx.lock_task(task.id)
            if current is None or current.lease_owner != task.lease_owner:
                return False
            if current.lease_expires_at is None or current.lease_expires_at >= now:
                return False
            writes = Writes()
            if current.kind == SUPERVISE or view is None:
                writes.release_lease(current.id, str(current.lease_owner))
                writes.flush(tx)
                return True
            assert current.step is not None and current.attempt is not None
            slot = call_slot(current.kind, current.step, current.attempt, "outcome")
            if view.slot(slot) is None:
                data = {
                    "error": f"worker {current.lease_owner} stopped renewing its lease",
                    "worker": current.lease_owner,
                }
                beat = heartbeat_txn(tx, current.id)  # what the agent last said it did
                if beat is not None:
                    data["heartbeat"] = beat
                # No service tag: a dead worker says nothing about the remote service's health.
                fact = NewFact(
                    call_kind(current.kind, LOST), current.step, current.attempt, slot, data
                )
                writes.append_fact(view.workflow_id, view.last_seq + 1, fact, now)
            writes.consume(current)
            writes.dropped_wakeups.append(view.workflow_id)
            self.decide_and_apply_txn(tx, extended(view, writes.as_read(0)), now, writes)
            writes.flush(tx)
            return True
