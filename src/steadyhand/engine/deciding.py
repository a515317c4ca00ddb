"""The heart of every engine transaction: run a workflow's supervisor on its view, under
its lock, and queue the decision's writes. The entry points (`engine`, `outcomes`,
`events`) build on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from steadyhand.core.decisions import Decision, Fail, RecordFact
from steadyhand.core.facts import DECISION_REFUSED, SUPERVISOR_RAISED
from steadyhand.core.guard import Supervisor, guarded
from steadyhand.core.plans import Plan
from steadyhand.core.records import Task
from steadyhand.core.view import WorkflowView
from steadyhand.engine.apply import DecisionApplier
from steadyhand.engine.views import view_of
from steadyhand.engine.writes import Claim, Writes
from steadyhand.store.base import Store, Tx
from steadyhand.store.clock import store_clock

log = logging.getLogger("steadyhand.engine")

SLOW_DECISION_SECONDS = 1.0
"""A supervisor run longer than this is logged (with the workflow) and counted: the
workflow's lock is held while it runs, so everything else for that workflow waits."""

Noticed = Callable[[str, str], None]
"""A hook told `(what, workflow_id)` for `supervisor_raised`, `decision_refused` and
`slow_decision` (the worker's metrics count them)."""


class Decider:
    """Holds what deciding needs: the store, the supervisors and plans of this deploy, and
    the clock (one `now` per transaction, read once at its start)."""

    def __init__(
        self,
        store: Store,
        supervisors: Mapping[str, Supervisor],
        clock: Callable[[], float] | None = None,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        """`clock` defaults to the store's clock (`store.clock`), never this machine's."""
        self.store = store
        self.supervisors = supervisors
        clock = clock or store_clock(store)
        self.clock = clock
        self.plans: Mapping[str, Plan] = plans if plans is not None else {}
        self.applier = DecisionApplier(self.plans, clock)
        self.slow_decision = SLOW_DECISION_SECONDS
        self.noticed: Noticed | None = None

    # -- reading ----------------------------------------------------------------------------
    def read(self, workflow_id: str) -> tuple[WorkflowView, list[Task]] | None:
        with self.store.snapshot() as tx:
            row = tx.get_workflow(workflow_id)
            if row is None:
                return None
            return view_of(row, tx.read_facts(workflow_id)), tx.workflow_tasks(workflow_id)

    # -- deciding ---------------------------------------------------------------------------
    def decide_and_apply_txn(
        self,
        tx: Tx,
        view: WorkflowView,
        now: float,
        writes: Writes,
        *,
        claim: Claim | None = None,
    ) -> Decision:
        """Run the workflow's supervisor and queue its decision in `writes`."""
        if view.terminal is not None:
            writes.closed.append(view.workflow_id)  # heal a stale watch entry; never reopen
        supervisor = self.supervisors.get(view.plan.supervisor)
        started = time.perf_counter()
        if supervisor is None:
            reason = (
                f"no supervisor {view.plan.supervisor!r} is registered in this deploy; deploy "
                "code that registers it, then `steadyhand retry` this workflow"
            )
            log.error("%s", reason, extra={"workflow_id": view.workflow_id})
            decision = guarded(lambda v, n: Decision((Fail(reason),), reason), view, now)
        else:
            decision = guarded(supervisor, view, now, view.plan.supervisor)
        elapsed = time.perf_counter() - started
        self._tell(view, decision, elapsed)
        self.applier.apply_txn(tx, view, decision, now, elapsed, writes, claim)
        return decision

    def _tell(self, view: WorkflowView, decision: Decision, elapsed: float) -> None:
        """Log (and count) a supervisor's bug once, when it is recorded, and a slow run."""
        extra = {"workflow_id": view.workflow_id}
        first = decision.commands[0] if decision.commands else None
        if isinstance(first, RecordFact) and first.kind in (SUPERVISOR_RAISED, DECISION_REFUSED):
            log.error("workflow %s failed: %s", view.workflow_id, decision.why, extra=extra)
            self._notice(first.kind, view.workflow_id)
        if elapsed > self.slow_decision:
            log.warning(
                "supervisor %r of workflow %s took %.2fs to decide (the threshold is %.2fs); "
                "the workflow stays locked while it runs",
                view.plan.supervisor,
                view.workflow_id,
                elapsed,
                self.slow_decision,
                extra=extra,
            )
            self._notice("slow_decision", view.workflow_id)

    def _notice(self, what: str, workflow_id: str) -> None:
        if self.noticed is not None:
            try:
                self.noticed(what, workflow_id)
            except Exception:
                log.exception("the decision hook failed")
