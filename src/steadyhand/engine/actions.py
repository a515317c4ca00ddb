"""Operator actions (retry, cancel): each checks its precondition and writes under the
workflow's lock, in one transaction, so two operators acting at once open one round
between them and both are told what happened (`core.actions`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from steadyhand.core import actions
from steadyhand.core.actions import ActionStatus
from steadyhand.core.errors import NotFoundError
from steadyhand.core.view import WorkflowView
from steadyhand.engine.deciding import Decider
from steadyhand.engine.views import extended, load_txn
from steadyhand.engine.writes import Writes


class OperatorActions(Decider):
    """The engine's entry points for operator actions (see the module docstring)."""

    def retry(
        self, workflow_id: str, reason: str, by: str, batch: str | None = None
    ) -> ActionStatus:
        """Resume a failed workflow with a new round (see `core.actions.retry`)."""
        return self._act(workflow_id, lambda view: actions.retry(view, reason, by, batch))

    def cancel(
        self, workflow_id: str, reason: str, by: str, batch: str | None = None
    ) -> ActionStatus:
        """Roll a workflow back (see `core.actions.cancel`); `batch` names the bulk action
        it is part of, kept in the fact's data."""
        return self._act(workflow_id, lambda view: actions.cancel(view, reason, by, batch))

    def _act(
        self, workflow_id: str, choose: Callable[[WorkflowView], actions.ActionPlan]
    ) -> ActionStatus:
        now = self.clock()
        with self.store.transaction() as tx:
            view = load_txn(tx, workflow_id, deciding=False)
            if view is None:
                raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.safe_url}")
            plan = choose(view)
            writes = Writes()
            seq = view.last_seq
            for fact in plan.facts:
                if writes.append_fact(workflow_id, seq + 1, fact, now):
                    seq += 1
            if plan.wake:
                writes.open(workflow_id, now)
                writes.wake(workflow_id, now, now)
            writes.flush(tx)
        after = extended(view, writes.as_read(0)).state
        return dataclasses.replace(plan.status, state=after)
