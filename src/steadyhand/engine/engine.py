"""The engine's entry points: every change to a workflow is one short transaction that
locks its root row, reads its facts, asks its supervisor, and appends facts and tasks.

Each entry point gathers its changes in one `Writes` and flushes it before commit; that
buffer is the engine's only way to change the store (`apply` turns a decision into
writes, `views` reads, `circuits` keeps the services' books). No remote calls happen
here: agents run in the worker, outside any transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from steadyhand.core.circuit import ServicePolicy, Transition
from steadyhand.core.decisions import Decision
from steadyhand.core.plans import Plan
from steadyhand.core.records import Task
from steadyhand.core.schedules import ScheduleSpec
from steadyhand.engine import circuits, schedules
from steadyhand.engine.actions import OperatorActions
from steadyhand.engine.answers import Started
from steadyhand.engine.apply import dumps
from steadyhand.engine.events import EventIntake
from steadyhand.engine.outcomes import OutcomeRecorder
from steadyhand.engine.starting import StartIntake, StartRequest
from steadyhand.engine.views import load_txn
from steadyhand.engine.writes import Writes

log = logging.getLogger("steadyhand.engine")


class Engine(OutcomeRecorder, EventIntake, OperatorActions, StartIntake):
    """Applies supervisor decisions to one store (see the module docstring)."""

    # -- entry points (each is one transaction) ----------------------------------------------
    def start(
        self,
        workflow_id: str,
        plan: Plan,
        input_value: Any,
        input_json: str,
        key: str | None,
        parent_id: str | None = None,
        deadline: float | None = None,
        priority: int = 0,
        fairness_key: str | None = None,
    ) -> Started:
        """Create a workflow with its plan, or return the one its idempotency key started;
        `deadline` (seconds) overrides the definition's; `priority` and `fairness_key`
        order its tasks when leasing (see `store.priorities`)."""
        request = (workflow_id, plan, input_value, input_json, key, parent_id)
        return self.start_many(
            [request], deadline=deadline, priority=priority, fairness_key=fairness_key
        )[0]

    def start_many(
        self,
        requests: Sequence[tuple[str, Plan, Any, str, str | None, str | None]],
        *,
        deadline: float | None = None,
        priority: int = 0,
        fairness_key: str | None = None,
        trace: Mapping[str, Any] | None = None,
    ) -> list[Started]:
        """`start` for each (id, plan, input, input JSON, key, parent id), all in one
        transaction: every workflow is created (or found by its key), or none is. `trace`
        (the caller's trace context) is kept in each `workflow_started` fact."""
        return self.start_batch(
            [
                StartRequest(*request, deadline, priority, fairness_key, trace)
                for request in requests
            ]
        )

    def supervise(self, task: Task, *, notify: bool = False) -> Decision | None:
        """Run the supervisor for a `supervise` task and consume the task."""
        now = self.clock()
        with self.store.transaction() as tx:
            view = load_txn(tx, task.workflow_id)
            writes = Writes(notify_others=notify)
            writes.consume(task)
            decision = None
            if view is None:
                log.warning(
                    "dropped a task for unknown workflow %s",
                    task.workflow_id,
                    extra={"workflow_id": task.workflow_id},
                )
            else:
                decision = self.decide_and_apply_txn(tx, view, now, writes)
            writes.flush(tx)
            return decision

    def wake_unwatched(self, limit: int = 100, grace: float = 5.0) -> int:
        """Give every open workflow without any task a supervisor run (nothing goes unwatched)."""
        now = self.clock()
        with self.store.transaction() as tx:
            ids = tx.unwatched_workflows(now - grace, limit)
            writes = Writes()
            for workflow_id in ids:
                writes.wake(workflow_id, now, now)
            writes.flush(tx)
        return len(ids)

    def publish_services(self, policies: Mapping[str, ServicePolicy]) -> None:
        """Write each service's limits to the store (its rate bucket starts full)."""
        circuits.publish_services(self.store, policies, self.clock)

    def evaluate_circuits(self) -> list[Transition]:
        """Open, half-open or close each service's circuit (see `circuits`)."""
        return circuits.evaluate_circuits(self.store, self.clock)

    def set_hold(self, service: str, *, held: bool, reason: str, by: str) -> Transition | None:
        """Hold a service by hand, or release it (see `circuits.set_hold`)."""
        return circuits.set_hold(
            self.store, service, held=held, reason=reason, by=by, clock=self.clock
        )

    def publish_schedules(self, specs: Mapping[str, ScheduleSpec]) -> None:
        """Write each schedule to the store (see `schedules.publish_schedules`)."""
        schedules.publish_schedules(self.store, specs, self.plans, self.clock)

    @property
    def schedules(self) -> schedules.ScheduleFiring:
        """Fires due schedules and triggers them by hand (see `schedules`)."""
        return schedules.ScheduleFiring(self.store, self.plans, self, self.clock)

    def publish_plans(self) -> None:
        """Write the current definitions to the store, so SQL callers can start them by name."""
        if not self.plans:
            return
        now = self.clock()
        with self.store.transaction() as tx:
            for name in sorted(self.plans):
                plan_json = dumps(self.plans[name].to_json())
                tx.execute("publish_plan", {"name": name, "plan": plan_json, "now": now})
