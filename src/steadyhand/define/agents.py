"""What an agent receives and may return: its context, and the probe's answer.

Agents are plain functions (sync or async) registered by name. They get a `Context` with
everything they need to make one call to one remote service idempotently.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from steadyhand.core.classify import Classifier
from steadyhand.core.errors import DefinitionError
from steadyhand.core.plans import check_name
from steadyhand.define.typed import input_type_of


class Fence:
    """The flag behind `Context.lease_lost`, and what to cancel when it is raised."""

    def __init__(self) -> None:
        self.lost = threading.Event()
        self._on_lost: list[Callable[[], object]] = []

    def on_lost(self, callback: Callable[[], object]) -> None:
        """Run `callback` when the lease is lost (at once if it already is)."""
        self._on_lost.append(callback)
        if self.lost.is_set():
            callback()

    def raise_(self) -> None:
        """Mark the call abandoned and run the callbacks (from the worker's event loop)."""
        if self.lost.is_set():
            return
        self.lost.set()
        for callback in self._on_lost:
            callback()


@dataclass(frozen=True)
class Context:
    """Everything one agent call knows: who it works for and what came before.

    `idempotency_key` is stable across attempts and workers: pass it to the remote service so
    a retried call never acts twice. For a compensation it is the compensation's own key, and
    `action_key` is the key the action used (what the remote service knows the booking by).
    """

    workflow_id: str
    workflow: str
    step: str
    phase: str  # "action", "compensation" or "probe"
    attempt: int
    idempotency_key: str
    action_key: str
    input: Any
    results: Mapping[str, Any] = field(default_factory=dict)
    result: Any = None  # for a compensation: what the action returned (None if unknown)
    timeout: float = 30.0
    # Larger for every later attempt of this step (action, probe or compensation): send it
    # to a remote service that supports conditional writes, which then refuses a request
    # whose token is smaller than one it has already seen (a stale worker's late request).
    fencing_token: int = 0
    _fence: Fence = field(default_factory=Fence, repr=False, compare=False)
    last_heartbeat: Any = None  # the details an earlier attempt last sent with `heartbeat`
    beat: Callable[[Any], None] | None = field(default=None, repr=False, compare=False)

    def heartbeat(self, details: Any = None) -> None:
        """Say this call is alive, with `details` (JSON) of how far it got; safe from sync
        and async agents. A step with `heartbeat_timeout` treats a call that stops beating
        for that long as lost (its outcome unknown), and the next attempt reads the last
        details as `ctx.last_heartbeat`. Beats are kept in memory and written with the
        worker's lease renewal, so beating often costs no extra writes."""
        if self.beat is not None:
            self.beat(details)

    @property
    def lease_lost(self) -> bool:
        """True once this worker could not renew the call's lease for the lease period: the
        call is no longer its own (another worker may run it). A long sync agent checks it
        between its requests and stops; an async agent is cancelled instead."""
        return self._fence.lost.is_set()


@dataclass(frozen=True)
class ProbeAnswer:
    """What a probe learned about an action's idempotency key at the remote service."""

    answer: str  # "done", "not_done" or "unknown"
    result: Any = None

    @classmethod
    def done(cls, result: Any = None) -> ProbeAnswer:
        """The action took effect; `result` stands in for the answer that was lost."""
        return cls("done", result)

    @classmethod
    def not_done(cls) -> ProbeAnswer:
        """The remote service has no trace of the key: retrying is safe and needed."""
        return cls("not_done")

    @classmethod
    def unknown(cls) -> ProbeAnswer:
        """The service could not say; the supervisor treats the outcome as still uncertain."""
        return cls("unknown")


AgentFn = Callable[..., Any] | Callable[..., Awaitable[Any]]
"""`fn(ctx)`, or `fn(ctx, typed_input)` with a pydantic model or dataclass annotation."""


@dataclass(frozen=True)
class Agent:
    """A registered agent: its stable name, the function, and the remote service it calls."""

    name: str
    fn: AgentFn
    service: str | None = None
    input_type: type | None = None  # a pydantic model or dataclass: handed in as 2nd argument
    classify: Classifier | None = None  # the agent's own "was it done?" rule (core.classify)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


class AgentRegistry:
    """Agents by registered name: the allowlist of what a plan may call."""

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._names: dict[int, str] = {}

    def register(
        self,
        fn: AgentFn,
        name: str | None = None,
        service: str | None = None,
        classify: Classifier | None = None,
    ) -> Agent:
        if not callable(fn):
            raise DefinitionError(f"an agent must be a function, got {fn!r}")
        if classify is not None and not callable(classify):
            raise DefinitionError(f"classify must be a function of an exception, got {classify!r}")
        agent_name = check_name(name or getattr(fn, "__name__", ""), "agent name")
        if agent_name in self._agents and self._agents[agent_name].fn is not fn:
            raise DefinitionError(f"two different functions are registered as agent {agent_name!r}")
        agent = Agent(agent_name, fn, service, input_type_of(fn), classify)
        self._agents[agent_name] = agent
        self._names[id(fn)] = agent_name
        return agent

    def name_of(self, ref: str | AgentFn) -> str:
        """The registered name for a function or a name (functions must be registered)."""
        if isinstance(ref, str):
            return ref
        name = self._names.get(id(ref))
        if name is None:
            raise DefinitionError(
                f"{getattr(ref, '__qualname__', ref)!r} is not a registered agent; decorate it "
                "with @app.agent() or pass its registered name"
            )
        return name

    def get(self, name: str) -> Agent | None:
        return self._agents.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def names(self) -> list[str]:
        return sorted(self._agents)
