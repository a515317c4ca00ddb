"""The plain values that describe a workflow: retry policies, steps and the plan.

A plan is written to the store when a workflow starts (as JSON), so a workflow in flight
finishes on the plan it started with even after a deploy changes its definition.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.errors import DefinitionError
from steadyhand.core.limits import MAX_NAME_CHARS

JSON = Any
"""A value that survives `json.dumps` and `json.loads` unchanged in meaning."""

DEFAULT_MAX_EVENTS = 500
"""Events one workflow may hold unless its definition says otherwise (`max_events`); an
event a saga still waits for is accepted beyond it (see `core.budget`)."""


def exception_names(types: Iterable[type[BaseException] | str]) -> tuple[str, ...]:
    """Qualified names for exception types, so a policy can be stored as JSON."""
    names = []
    for item in types:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, type) and issubclass(item, BaseException):
            names.append(f"{item.__module__}.{item.__qualname__}")
        else:
            raise DefinitionError(f"expected an exception type or its name, got {item!r}")
    return tuple(names)


def _matches(exc: BaseException, names: tuple[str, ...]) -> bool:
    lineage = type(exc).__mro__
    qualified = {f"{t.__module__}.{t.__qualname__}" for t in lineage}
    short = {t.__qualname__ for t in lineage}
    return any(name in qualified or name in short for name in names)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a step (or its compensation) is tried.

    Backoff grows exponentially from `initial_backoff` by `multiplier`, capped at
    `max_backoff`, spread by +/- `jitter` (a fraction). The jitter is derived from a hash of
    the workflow, step and attempt rather than a random generator, so a decision stays a pure
    function of the facts and replays identically.

    By default every exception is transient except `PermanentError` and the types named in
    `permanent`; naming `transient` types instead makes every other exception permanent.

    Whether a failed call may have taken effect is a separate question (`core.classify`):
    `not_done` names exceptions this step knows happen before anything is sent, `uncertain`
    names exceptions that leave the outcome open although the built-in table says otherwise.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 60.0
    jitter: float = 0.2
    permanent: tuple[str, ...] = ()
    transient: tuple[str, ...] = ()
    not_done: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DefinitionError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise DefinitionError("backoff must be >= 0 and the multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise DefinitionError("jitter is a fraction between 0 and 1")
        for field_name in ("permanent", "transient", "not_done", "uncertain"):
            names = getattr(self, field_name)
            if isinstance(names, str) or not isinstance(names, tuple | list):
                raise DefinitionError(f"{field_name} is a list of exception types or names")
            object.__setattr__(self, field_name, exception_names(names))

    @classmethod
    def of(
        cls,
        *,
        permanent: Iterable[type[BaseException] | str] = (),
        transient: Iterable[type[BaseException] | str] = (),
        not_done: Iterable[type[BaseException] | str] = (),
        uncertain: Iterable[type[BaseException] | str] = (),
        **options: Any,
    ) -> RetryPolicy:
        """Build a policy from exception types (not just names)."""
        return cls(
            permanent=exception_names(permanent),
            transient=exception_names(transient),
            not_done=exception_names(not_done),
            uncertain=exception_names(uncertain),
            **options,
        )

    def is_permanent(self, exc: BaseException) -> bool:
        """Whether `exc` must stop the retries (the caller checks `PermanentError` first)."""
        if _matches(exc, self.permanent):
            return True
        return bool(self.transient) and not _matches(exc, self.transient)

    def backoff(self, attempt: int, seed: str) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based) before the next."""
        raw = self.initial_backoff * self.multiplier ** max(attempt - 1, 0)
        base = min(self.max_backoff, raw)
        digest = hashlib.blake2b(f"{seed}:{attempt}".encode(), digest_size=8).digest()
        unit = int.from_bytes(digest, "big") / 2**64  # in [0, 1)
        spread = base * (1 - self.jitter + 2 * self.jitter * unit)
        return round(min(self.max_backoff, spread), 6)

    def to_json(self) -> dict[str, JSON]:
        return {
            "max_attempts": self.max_attempts,
            "initial_backoff": self.initial_backoff,
            "multiplier": self.multiplier,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
            "permanent": list(self.permanent),
            "transient": list(self.transient),
            "not_done": list(self.not_done),
            "uncertain": list(self.uncertain),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> RetryPolicy:
        return cls(
            max_attempts=int(data["max_attempts"]),
            initial_backoff=float(data["initial_backoff"]),
            multiplier=float(data["multiplier"]),
            max_backoff=float(data["max_backoff"]),
            jitter=float(data["jitter"]),
            permanent=tuple(data.get("permanent", ())),
            transient=tuple(data.get("transient", ())),
            not_done=tuple(data.get("not_done", ())),
            uncertain=tuple(data.get("uncertain", ())),
        )


DEFAULT_RETRY = RetryPolicy()
DEFAULT_COMPENSATION_RETRY = RetryPolicy(max_attempts=10, max_backoff=30.0)


@dataclass(frozen=True)
class StepSpec:
    """One step of a saga, with its agents named as registered (names survive deploys)."""

    name: str
    action: str | None = None
    compensation: str | None = None
    probe: str | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: float = 30.0
    compensation_retry: RetryPolicy = DEFAULT_COMPENSATION_RETRY
    compensation_timeout: float = 30.0
    wait_for: str | None = None  # an event that completes the step (after its action, if any)
    deadline: float | None = None  # seconds the step waits for `wait_for` before giving up
    child: str | None = None  # a workflow run as a child; its result is the step's result
    on_give_up: str = "compensate"  # or "fail": stop without rolling back, for a person
    heartbeat_timeout: float | None = None  # a call silent this long is lost (see heartbeats)
    sources: tuple[str, ...] | None = None  # accept `wait_for` only from these event sources
    probe_budget: int = 6  # probes asked about one uncertain attempt before it counts as done
    probe_backoff: float = 1.0  # seconds before asking again after "unknown" (doubling)

    def __post_init__(self) -> None:
        check_name(self.name, "step name")
        if self.sources is not None:
            object.__setattr__(self, "sources", tuple(self.sources))
            if self.wait_for is None or not self.sources:
                raise DefinitionError(
                    f"step {self.name!r}: sources names who may send its wait_for event; "
                    "give wait_for and at least one source"
                )
            for source in self.sources:
                check_name(source, "event source")
        if self.timeout <= 0 or self.compensation_timeout <= 0:
            raise DefinitionError(f"step {self.name!r}: timeouts must be positive seconds")
        if self.action is None and self.wait_for is None and self.child is None:
            raise DefinitionError(f"step {self.name!r} needs an action, an event or a child")
        if self.child is not None and self.action is not None:
            raise DefinitionError(f"step {self.name!r}: a child step has no action of its own")
        if self.on_give_up not in ("compensate", "fail"):
            raise DefinitionError(f"step {self.name!r}: on_give_up is 'compensate' or 'fail'")
        if self.deadline is not None and (self.wait_for is None or self.deadline <= 0):
            raise DefinitionError(f"step {self.name!r}: a deadline needs wait_for and seconds > 0")
        if self.heartbeat_timeout is not None and not self.heartbeat_timeout > 0:
            raise DefinitionError(f"step {self.name!r}: heartbeat_timeout must be seconds > 0")
        if self.probe_budget < 1 or self.probe_backoff < 0:
            raise DefinitionError(
                f"step {self.name!r}: probe_budget must be at least 1 and probe_backoff >= 0"
            )

    @functools.cached_property
    def probe_policy(self) -> RetryPolicy:
        """How often and how patiently a probe that cannot tell yet is asked again (made
        once per step: every decision asks for it, for every step of the plan)."""
        return RetryPolicy(
            max_attempts=self.probe_budget,
            initial_backoff=self.probe_backoff,
            max_backoff=max(30.0, self.probe_backoff),
        )

    def to_json(self) -> dict[str, JSON]:
        extra = {} if self.heartbeat_timeout is None else {"heartbeat": self.heartbeat_timeout}
        return {
            **extra,
            "name": self.name,
            "action": self.action,
            "compensation": self.compensation,
            "probe": self.probe,
            "retry": self.retry.to_json(),
            "timeout": self.timeout,
            "compensation_retry": self.compensation_retry.to_json(),
            "compensation_timeout": self.compensation_timeout,
            "wait_for": self.wait_for,
            "deadline": self.deadline,
            "child": self.child,
            "on_give_up": self.on_give_up,
            **({"sources": list(self.sources)} if self.sources is not None else {}),
            "probe_budget": self.probe_budget,
            "probe_backoff": self.probe_backoff,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> StepSpec:
        return cls(
            name=data["name"],
            action=data.get("action"),
            compensation=data.get("compensation"),
            probe=data.get("probe"),
            retry=RetryPolicy.from_json(data["retry"]),
            timeout=float(data["timeout"]),
            compensation_retry=RetryPolicy.from_json(data["compensation_retry"]),
            compensation_timeout=float(data["compensation_timeout"]),
            wait_for=data.get("wait_for"),
            deadline=data.get("deadline"),
            child=data.get("child"),
            on_give_up=data.get("on_give_up", "compensate"),
            heartbeat_timeout=data.get("heartbeat"),
            sources=tuple(data["sources"]) if data.get("sources") is not None else None,
            probe_budget=int(data.get("probe_budget", 6)),
            probe_backoff=float(data.get("probe_backoff", 1.0)),
        )


@dataclass(frozen=True)
class Plan:
    """What a workflow will do, frozen at start: its supervisor, steps and run budget."""

    workflow: str
    steps: tuple[StepSpec, ...] = ()
    supervisor: str = "saga"
    max_supervisor_runs: int = 1000
    options: Mapping[str, JSON] = field(default_factory=dict)
    max_events: int = DEFAULT_MAX_EVENTS

    def __post_init__(self) -> None:
        if not isinstance(self.max_events, int) or self.max_events < 1:
            raise DefinitionError(f"workflow {self.workflow!r}: max_events must be at least 1")

    def step(self, name: str) -> StepSpec:
        for spec in self.steps:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_json(self) -> dict[str, JSON]:
        return {
            "workflow": self.workflow,
            "supervisor": self.supervisor,
            "max_supervisor_runs": self.max_supervisor_runs,
            "max_events": self.max_events,
            "steps": [s.to_json() for s in self.steps],
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> Plan:
        return cls(
            workflow=data["workflow"],
            supervisor=data.get("supervisor", "saga"),
            max_supervisor_runs=int(data.get("max_supervisor_runs", 1000)),
            steps=tuple(StepSpec.from_json(s) for s in data.get("steps", ())),
            options=data.get("options", {}),
            max_events=int(data.get("max_events", DEFAULT_MAX_EVENTS)),
        )


@functools.lru_cache(maxsize=1024)
def plan_from_text(text: str) -> Plan:
    """The plan stored as `text`. Plans are frozen at start and shared by every workflow of
    a deploy, so each distinct text is parsed once per process (Plan is immutable)."""
    return Plan.from_json(jsoncodec.loads(text))


def check_name(name: object, what: str) -> str:
    """Names appear in keys, URLs and logs: keep them short and plain."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise DefinitionError(
            f"{what} must be a non-empty string of at most {MAX_NAME_CHARS} characters"
        )
    if any(ch.isspace() or ch in "/:" for ch in name):
        raise DefinitionError(f"{what} {name!r} must not contain spaces, '/' or ':'")
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        raise DefinitionError(f"{what} must not contain control characters or lone surrogates")
    return name


encode_json = jsoncodec.encode  # its old address; `jsoncodec` owns every JSON policy
json_depth = jsoncodec.json_depth
