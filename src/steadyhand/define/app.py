"""The public face: an `App` registers agents and workflows; a `Client` bound to a store
starts, inspects, cancels and resumes workflows.

Definitions are code; what a workflow will do is frozen into its plan when it starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, overload

from steadyhand.core.circuit import CircuitPolicy, ServicePolicy
from steadyhand.core.classify import Classifier
from steadyhand.core.codefirst import SUPERVISOR, CodeFirst, CodeWorkflow
from steadyhand.core.deadlines import check_deadline
from steadyhand.core.errors import DefinitionError, InputError, UnknownWorkflowError
from steadyhand.core.guard import Supervisor
from steadyhand.core.plans import (
    DEFAULT_MAX_EVENTS,
    Plan,
    StepSpec,
    check_name,
)
from steadyhand.core.saga import saga
from steadyhand.core.schedules import ScheduleSpec
from steadyhand.define.agents import AgentFn, AgentRegistry
from steadyhand.define.client import Client
from steadyhand.define.codefirst import code_plan, code_workflow
from steadyhand.define.steps import Step
from steadyhand.define.typed import build, is_input_type, to_json_value, typed_parameter
from steadyhand.store import open_store
from steadyhand.store.priorities import check_priority

if TYPE_CHECKING:
    from steadyhand.define.async_client import AsyncClient

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """A registry of agents, workflows and supervisors (see the module docstring)."""

    def __init__(
        self, *, max_supervisor_runs: int = 1000, max_events: int = DEFAULT_MAX_EVENTS
    ) -> None:
        self.agents = AgentRegistry()
        self.plans: dict[str, Plan] = {}
        self.code_workflows: dict[str, CodeWorkflow] = {}
        self._code_runs: dict[str, int] = {}
        self._code_deadlines: dict[str, float] = {}
        code_first = CodeFirst(self.code_workflows, self._registered_agent)
        self.supervisors: dict[str, Supervisor] = {"saga": saga, SUPERVISOR: code_first}
        self.services: dict[str, ServicePolicy] = {}
        self.schedules: dict[str, ScheduleSpec] = {}
        self.max_supervisor_runs = max_supervisor_runs
        self.input_types: dict[str, list[type]] = {}  # workflow -> types its input must fit
        self.max_events = max_events  # events one workflow may hold (see core.budget)

    def agent(
        self,
        name: str | None = None,
        *,
        service: str | None = None,
        classify: Classifier | None = None,
    ) -> Callable[[F], F]:
        """Register a function as an agent, under `name` (default: the function's name).

        `classify(exc)` may say what an exception of this agent's client means: "not_done",
        "uncertain" or "permanent" (None: the built-in table decides; see docs/OUTCOMES.md).
        """

        def register(fn: F) -> F:
            self.agents.register(fn, name, service, classify)
            if service is not None and service not in self.services:
                self.services[service] = ServicePolicy(check_name(service, "service name"))
            if service is not None:
                for key in self.code_workflows:  # their replays may call this agent too
                    self.plans[key] = self._code_plan(key)
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

    def schedule(
        self,
        name: str,
        *,
        workflow: str,
        cron: str | None = None,
        every: float | None = None,
        input: Any = None,
        timezone: str = "UTC",
        overlap: str = "skip",
        catch_up: str = "latest",
        priority: int = 0,
        fairness_key: str | None = None,
    ) -> ScheduleSpec:
        """Start `workflow` on a schedule: `cron` (five fields, in `timezone`) or `every`
        seconds. Durable and shared by every worker: one workflow per tick, however many
        workers run. `overlap` says what a tick does while the previous run is still going
        ("skip" it, "allow" both, or "cancel_previous"); `catch_up` what happens to ticks
        missed while no worker ran ("latest" one, "all", or "none"). The workflows it starts
        get `priority` and `fairness_key` (see `Client.start`)."""
        if name in self.schedules:
            raise DefinitionError(f"schedule {name!r} is declared twice")
        try:
            priority, fairness_key = check_priority(priority, fairness_key)
        except InputError as exc:
            raise DefinitionError(f"schedule {name}: {exc}") from None
        spec = ScheduleSpec(
            name, workflow, cron, every, input, timezone, overlap, catch_up, priority, fairness_key
        )
        self.schedules[name] = spec
        return spec

    def _service_map(self, agents: Sequence[str | None]) -> dict[str, str]:
        mapping = {}
        for agent_name in agents:
            agent = self.agents.get(agent_name) if agent_name else None
            if agent is not None and agent.service is not None:
                mapping[agent.name] = agent.service
        return mapping

    @overload
    def workflow(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        deadline: float | None = None,
        input: type | None = None,
        max_events: int | None = None,
    ) -> Plan: ...

    @overload
    def workflow(
        self,
        name: str | None = None,
        *,
        max_supervisor_runs: int | None = None,
        deadline: float | None = None,
        input: type | None = None,
    ) -> Callable[[F], F]: ...

    @overload
    def workflow(self, name: F) -> F: ...

    def workflow(
        self,
        name: Any = None,
        steps: Sequence[Step] | None = None,
        *,
        max_supervisor_runs: int | None = None,
        deadline: float | None = None,
        input: type | None = None,
        max_events: int | None = None,
    ) -> Any:
        """Declare a workflow.

        `@app.workflow()` (or `@app.workflow("name")`) on an `async def f(wf, input)`: a
        code-first workflow, replayed over its facts to decide (docs/CODE_FIRST.md).
        `app.workflow(name, [Step, ...])`: a saga; the steps run in order and are
        compensated in reverse on failure. Either kind takes a `deadline` (seconds from
        the start; `Client.start(deadline=)` overrides it): when it passes before the
        workflow ends, the workflow rolls back.

        `input=` (a pydantic model or dataclass) validates the input at `start`; so does the
        annotation of any step agent that takes its input typed (`def f(ctx, order: Order)`)
        and of a code-first workflow's input parameter.
        A saga's `max_events` caps the events one workflow holds (default: the App's,
        500); more are refused with `TooManyEvents` (HTTP 429 at the ingress), except one a
        step still waits for.
        """
        if callable(name) and steps is None:
            return self.workflow(max_supervisor_runs=max_supervisor_runs, input=input)(name)
        if steps is None:

            def register(fn: F) -> F:
                found = code_workflow(fn, name)
                if found.name in self.plans:
                    raise DefinitionError(f"workflow {found.name!r} is declared twice")
                seconds = _definition_deadline(found.name, deadline)
                self.code_workflows[found.name] = found
                self._code_runs[found.name] = max_supervisor_runs or self.max_supervisor_runs
                if seconds is not None:
                    self._code_deadlines[found.name] = seconds
                self.plans[found.name] = self._code_plan(found.name)
                self._declare_input(found.name, input or typed_parameter(fn, 1), ())
                return fn

            return register
        return self._saga(name, steps, deadline, input, max_events)

    def _code_plan(self, name: str) -> Plan:
        plan = code_plan(name, self._code_runs[name], self._service_map(self.agents.names()))
        plan = replace(plan, max_events=self.max_events)
        if name not in self._code_deadlines:
            return plan
        return replace(plan, options={**plan.options, "deadline": self._code_deadlines[name]})

    def _registered_agent(self, ref: Any) -> str:
        """The registered name of an agent a code-first step calls (function or name)."""
        agent_name = self.agents.name_of(ref)
        if agent_name not in self.agents:
            raise DefinitionError(
                f"agent {agent_name!r} is not registered; register it with @app.agent() "
                "before a workflow calls it"
            )
        return agent_name

    def _saga(
        self,
        name: str,
        steps: Sequence[Step],
        deadline: float | None = None,
        input: type | None = None,
        max_events: int | None = None,
    ) -> Plan:
        check_name(name, "workflow name")
        seconds = _definition_deadline(name, deadline)
        if name in self.plans:
            raise DefinitionError(f"workflow {name!r} is declared twice")
        if not steps:
            raise DefinitionError(f"workflow {name!r} needs at least one step")
        specs = [self._spec(step, name) for step in steps]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise DefinitionError(f"workflow {name!r} has two steps with the same name")
        used = [a for spec in specs for a in (spec.action, spec.compensation, spec.probe)]
        services = self._service_map(used)
        options: dict[str, Any] = {"services": services} if services else {}
        if seconds is not None:
            options["deadline"] = seconds
        events = self.max_events if max_events is None else max_events
        plan = Plan(name, tuple(specs), "saga", self.max_supervisor_runs, options, events)
        self._declare_input(name, input, [a for a in used if a])
        self.plans[name] = plan
        return plan

    def _declare_input(self, name: str, declared: type | None, agents: Sequence[str]) -> None:
        if declared is not None and not is_input_type(declared):
            raise DefinitionError(
                f"workflow {name!r}: input= must be a pydantic model or a dataclass, "
                f"not {declared!r}"
            )
        types = [declared] if declared is not None else []
        for agent_name in agents:
            agent = self.agents.get(agent_name)
            if agent is not None and agent.input_type is not None:
                types.append(agent.input_type)
        self.input_types[name] = list(dict.fromkeys(types))

    def checked_input(self, name: str, value: Any) -> Any:
        """The input to store for workflow `name`: a model or dataclass instance as plain
        data, validated against every type the workflow's declaration or agents ask for
        (an `InputError` says which field is wrong). Untyped workflows take any JSON."""
        value = to_json_value(value)
        for tp in self.input_types.get(name, ()):
            value = to_json_value(build(tp, value, f"the input of workflow {name!r}"))
        return value

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
        self,
        name: str,
        supervisor: Supervisor | str,
        *,
        max_supervisor_runs: int | None = None,
        deadline: float | None = None,
        input: type | None = None,
        max_events: int | None = None,
    ) -> Plan:
        """Declare a workflow driven by a custom supervisor instead of a linear saga.

        `deadline` (seconds): when it passes, a `cancel_requested` fact (by `deadline`) is
        recorded and the supervisor runs; it rolls back as it does for any cancel."""
        check_name(name, "workflow name")
        seconds = _definition_deadline(name, deadline)
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
        options: dict[str, Any] = {"services": services} if services else {}
        if seconds is not None:
            options["deadline"] = seconds
        events = self.max_events if max_events is None else max_events
        plan = Plan(name, (), key, runs, options, events)
        self._declare_input(name, input, ())
        self.plans[name] = plan
        return plan

    def _spec(self, step: Step, workflow: str) -> StepSpec:
        """The plan's form of `step`: every field as written, agents by registered name."""
        values = {f.name: getattr(step, f.name) for f in dataclasses.fields(StepSpec)}
        for role in ("action", "compensation", "probe"):
            values[role] = self._agent_name(values[role], workflow, step.name)
        return StepSpec(**values)

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

    def connect_async(self, db: str | None = None, **options: Any) -> AsyncClient:
        """An `AsyncClient` for asyncio services, bound to the store at `db` (opening the
        store connects once, synchronously: do it at start-up, e.g. in a lifespan hook)."""
        from steadyhand.define.async_client import AsyncClient

        return AsyncClient(self, open_store(db, **options))


def _definition_deadline(name: str, deadline: object) -> float | None:
    """A definition's `deadline=` as seconds, or a `DefinitionError` saying what is wrong."""
    try:
        return check_deadline(deadline, f"workflow {name!r}: deadline")
    except InputError as exc:
        raise DefinitionError(str(exc)) from None
