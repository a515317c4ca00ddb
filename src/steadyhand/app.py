"""The public face: an `App` registers agents and workflows; a `Client` bound to a store
starts, inspects, cancels and resumes workflows.

Definitions are code; what a workflow will do is frozen into its plan when it starts.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .agents import AgentFn, AgentRegistry
from .engine import Engine, Signalled, Started
from .errors import DefinitionError, InputError, NotFoundError, UnknownWorkflowError
from .facts import CANCEL_REQUESTED, RETRY_REQUESTED, WorkflowFacts
from .model import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_RETRY,
    Plan,
    RetryPolicy,
    StepSpec,
    check_name,
    encode_json,
)
from .services import CircuitPolicy, ServicePolicy
from .status import Status, derive_status
from .store import Store, open_store
from .store.base import NewFact
from .supervise import Supervisor, saga

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Step:
    """One step of a saga as written in code; agents may be functions or registered names."""

    name: str
    action: str | AgentFn | None = None
    compensation: str | AgentFn | None = None
    probe: str | AgentFn | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: float = 30.0
    compensation_retry: RetryPolicy = DEFAULT_COMPENSATION_RETRY
    compensation_timeout: float = 30.0
    wait_for: str | None = None  # an event that completes the step (after its action, if any)
    deadline: float | None = None  # seconds to wait for `wait_for` before rolling back
    child: str | None = None  # run this workflow as a child; its result is the step's result
    on_give_up: str = "compensate"  # "fail": when retries run out, stop for a person instead


class App:
    """A registry of agents, workflows and supervisors (see the module docstring)."""

    def __init__(self, *, max_supervisor_runs: int = 1000) -> None:
        self.agents = AgentRegistry()
        self.plans: dict[str, Plan] = {}
        self.supervisors: dict[str, Supervisor] = {"saga": saga}
        self.services: dict[str, ServicePolicy] = {}
        self.max_supervisor_runs = max_supervisor_runs

    def agent(self, name: str | None = None, *, service: str | None = None) -> Callable[[F], F]:
        """Register a function as an agent, under `name` (default: the function's name)."""

        def register(fn: F) -> F:
            self.agents.register(fn, name, service)
            if service is not None and service not in self.services:
                self.services[service] = ServicePolicy(check_name(service, "service name"))
            return fn

        return register

    def service(
        self,
        name: str,
        *,
        max_in_flight: int | None = None,
        rate: float | None = None,
        burst: float | None = None,
        circuit: CircuitPolicy | None = None,
    ) -> ServicePolicy:
        """Declare a remote service's limits; agents join it with `@app.agent(service=…)`.

        Every worker on the store enforces them together: at most `max_in_flight` calls at
        once, at most `rate` call starts per second, and a circuit breaker (on by default)
        that holds new calls back while the service's recent attempts mostly fail.
        """
        policy = ServicePolicy(
            check_name(name, "service name"),
            max_in_flight,
            rate,
            burst,
            circuit or CircuitPolicy(),
        )
        self.services[name] = policy
        return policy

    def _service_map(self, agents: Sequence[str | None]) -> dict[str, str]:
        mapping = {}
        for agent_name in agents:
            agent = self.agents.get(agent_name) if agent_name else None
            if agent is not None and agent.service is not None:
                mapping[agent.name] = agent.service
        return mapping

    def workflow(self, name: str, steps: Sequence[Step]) -> Plan:
        """Declare a saga: `steps` run in order and are compensated in reverse on failure."""
        check_name(name, "workflow name")
        if name in self.plans:
            raise DefinitionError(f"workflow {name!r} is declared twice")
        if not steps:
            raise DefinitionError(f"workflow {name!r} needs at least one step")
        specs = []
        for step in steps:
            specs.append(
                StepSpec(
                    name=step.name,
                    action=self._agent_name(step.action, name, step.name),
                    compensation=self._agent_name(step.compensation, name, step.name),
                    probe=self._agent_name(step.probe, name, step.name),
                    retry=step.retry,
                    timeout=step.timeout,
                    compensation_retry=step.compensation_retry,
                    compensation_timeout=step.compensation_timeout,
                    wait_for=step.wait_for,
                    deadline=step.deadline,
                    child=step.child,
                    on_give_up=step.on_give_up,
                )
            )
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise DefinitionError(f"workflow {name!r} has two steps with the same name")
        used = [a for spec in specs for a in (spec.action, spec.compensation, spec.probe)]
        services = self._service_map(used)
        options = {"services": services} if services else {}
        plan = Plan(name, tuple(specs), "saga", self.max_supervisor_runs, options)
        self.plans[name] = plan
        return plan

    def supervisor(self, name: str | None = None) -> Callable[[Supervisor], Supervisor]:
        """Register a custom supervisor: a pure function (facts, now) -> Decision."""

        def register(fn: Supervisor) -> Supervisor:
            key = check_name(name or getattr(fn, "__name__", ""), "supervisor name")
            if key in self.supervisors and self.supervisors[key] is not fn:
                raise DefinitionError(f"two different supervisors are registered as {key!r}")
            self.supervisors[key] = fn
            return fn

        return register

    def process(
        self, name: str, supervisor: Supervisor | str, *, max_supervisor_runs: int | None = None
    ) -> Plan:
        """Declare a workflow driven by a custom supervisor instead of a linear saga."""
        check_name(name, "workflow name")
        if name in self.plans:
            raise DefinitionError(f"workflow {name!r} is declared twice")
        if isinstance(supervisor, str):
            key = supervisor
        else:
            found = [k for k, fn in self.supervisors.items() if fn is supervisor]
            key = found[0] if found else self.supervisor()(supervisor).__name__
        if key not in self.supervisors:
            raise DefinitionError(f"no supervisor {key!r} is registered")
        runs = max_supervisor_runs or self.max_supervisor_runs
        services = self._service_map(self.agents.names())
        plan = Plan(name, (), key, runs, {"services": services} if services else {})
        self.plans[name] = plan
        return plan

    def _agent_name(self, ref: str | AgentFn | None, workflow: str, step: str) -> Any:
        if ref is None:
            return None
        agent_name = self.agents.name_of(ref)
        if agent_name not in self.agents:
            raise DefinitionError(
                f"workflow {workflow!r} step {step!r} names agent {agent_name!r}, which is not "
                "registered; register it with @app.agent() before declaring the workflow"
            )
        return agent_name

    def plan(self, name: str) -> Plan:
        try:
            return self.plans[name]
        except KeyError:
            known = ", ".join(sorted(self.plans)) or "none"
            raise UnknownWorkflowError(
                f"no workflow named {name!r} is registered (known: {known})"
            ) from None

    def connect(self, db: str | None = None, **options: Any) -> Client:
        """A client bound to the store at `db` (default: $STEADYHAND_DB or ./steadyhand.db)."""
        return Client(self, open_store(db, **options))


def new_workflow_id() -> str:
    """Time-ordered ids (ms timestamp + randomness) keep the primary-key index append-mostly."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


class Client:
    """Starts and inspects workflows in one store. Thread-safe."""

    def __init__(self, app: App, store: Store) -> None:
        self.app = app
        self.store = store
        self.engine = Engine(store, app.supervisors, plans=app.plans)

    def start(self, name: str, input: Any = None, *, key: str | None = None) -> Started:
        """Start workflow `name` with `input`; with `key`, starting twice returns the first."""
        plan = self.app.plan(name)
        text = encode_json(input, "workflow input")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 500):
            raise InputError("idempotency key must be a non-empty string of at most 500 characters")
        return self.engine.start(new_workflow_id(), plan, json.loads(text), text, key)

    def signal(
        self,
        event: str,
        payload: Any = None,
        *,
        workflow_id: str | None = None,
        key: str | None = None,
        dedupe_key: str | None = None,
        start: str | None = None,
        start_input: Any = None,
        source: str | None = None,
        raw: str | None = None,
    ) -> Signalled:
        """Record event `event` on a workflow (by id or idempotency key) and wake it.

        `dedupe_key` makes redelivery harmless; `start` names the workflow to start (with
        `start_input`, under `key`) when none exists yet, so events may arrive in any order.
        """
        try:
            check_name(event, "event name")
        except DefinitionError as exc:
            raise InputError(str(exc)) from None
        if (workflow_id is None) == (key is None):
            raise InputError("name the workflow by exactly one of workflow_id or key")
        if dedupe_key is not None and (not isinstance(dedupe_key, str) or len(dedupe_key) > 500):
            raise InputError("dedupe_key must be a string of at most 500 characters")
        data: dict[str, Any] = {"payload": json.loads(encode_json(payload, "event payload"))}
        if source:
            data["source"] = source
        if dedupe_key:
            data["dedupe_key"] = dedupe_key
        if raw is not None:
            data["raw"] = raw
        begin = None
        if start is not None:
            plan = self.app.plan(start)
            text = encode_json(start_input, "workflow input")
            begin = (new_workflow_id(), plan, json.loads(text), text)
        return self.engine.signal(
            event, data, workflow_id=workflow_id, key=key, dedupe_key=dedupe_key, start=begin
        )

    def view(self, workflow_id: str) -> WorkflowFacts:
        found = self.engine.read(workflow_id)
        if found is None:
            raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.url}")
        return found[0]

    def status(self, workflow_id: str) -> Status:
        found = self.engine.read(workflow_id)
        if found is None:
            raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.url}")
        return derive_status(*found)

    def wait(self, workflow_id: str, timeout: float = 60.0, poll: float = 0.05) -> Status:
        """Block until the workflow ends (or `timeout`), returning its last status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(workflow_id)
            if status.done or time.monotonic() >= deadline:
                return status
            time.sleep(poll)

    def cancel(self, workflow_id: str, reason: str = "", by: str | None = None) -> Status:
        """Ask a running workflow to stop and roll back what it did."""
        status = self.status(workflow_id)
        if status.done:
            return status
        data = {"reason": reason or "cancel requested", "by": by or _who()}
        self.engine.append_event(workflow_id, NewFact(CANCEL_REQUESTED, data=data))
        return self.status(workflow_id)

    def retry(self, workflow_id: str, reason: str = "", by: str | None = None) -> Status:
        """Resume a `failed` workflow: a new round of attempts where it stopped."""
        status = self.status(workflow_id)
        if status.state != "failed":
            raise InputError(
                f"workflow {workflow_id} is {status.state}; only a failed workflow can be retried"
            )
        view = self.view(workflow_id)
        data = {"reason": reason or "operator retry", "by": by or _who()}
        fact = NewFact(RETRY_REQUESTED, slot=f"retry:{view.round + 1}", data=data)
        self.engine.append_event(workflow_id, fact)
        return self.status(workflow_id)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _who() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
