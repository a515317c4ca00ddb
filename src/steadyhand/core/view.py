"""`WorkflowView`: the read-only view of one workflow that supervisors decide from (its
identity, plan, facts and children), built from one read under the workflow's lock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from steadyhand.core.facts import (
    COMPENSATION_BEGAN,
    EVENT_RECEIVED,
    RETRY_REQUESTED,
    SUPERVISOR_RAN,
    TERMINAL_STATES,
    Fact,
    terminal_slot,
)
from steadyhand.core.jsoncodec import undecodable
from steadyhand.core.plans import Plan

T = TypeVar("T")


class cached_property(Generic[T]):  # noqa: N801 (named as the functools one it replaces)
    """`functools.cached_property` without its lock (Python 3.11 takes one per first read,
    a measurable share of deciding): a view belongs to one thread, and computing a value
    twice would give the same value."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached_property[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


@dataclass(frozen=True)
class ChildState:
    """What a parent may know of a child: its id and, once it ended, how."""

    workflow_id: str
    state: str  # running, completed, compensated or failed (the child's current round)
    result: Any = None
    reason: str | None = None

    @property
    def done(self) -> bool:
        return self.state in ("completed", "compensated", "failed")


@dataclass(frozen=True)
class WorkflowView:
    """Everything a supervisor may know about one workflow: its identity, plan and facts.

    Built from one read inside the transaction that locked the workflow, so it is a
    consistent snapshot; supervisors receive it with `now` and nothing else.
    """

    workflow_id: str
    name: str
    input: Any
    plan: Plan
    created_at: float
    facts: tuple[Fact, ...]
    parent_id: str | None = None
    children: Mapping[str, ChildState] = field(default_factory=dict)  # by child workflow id
    services: Mapping[str, Any] = field(default_factory=dict)  # services.Gate by service name

    def service_of(self, agent: str) -> str | None:
        """The remote service an agent of this plan belongs to (frozen at start)."""
        mapping = self.plan.options.get("services") or {}
        value = mapping.get(agent)
        return value if isinstance(value, str) else None

    def __iter__(self) -> Iterator[Fact]:
        return iter(self.facts)

    def __len__(self) -> int:
        return len(self.facts)

    @property
    def last_seq(self) -> int:
        return self.facts[-1].seq if self.facts else 0

    def of(self, kind: str, step: str | None = None) -> list[Fact]:
        """All facts of `kind` (optionally of one step), oldest first."""
        return list(self._by_kind.get((kind, step), ()))

    @cached_property
    def _by_kind(self) -> dict[tuple[str, str | None], list[Fact]]:
        """Facts by (kind, step) and by (kind, None): a code-first replay asks about every
        step it passes, so each question must not scan the whole history."""
        index: dict[tuple[str, str | None], list[Fact]] = {}
        for fact in self.facts:
            index.setdefault((fact.kind, None), []).append(fact)
            if fact.step is not None:
                index.setdefault((fact.kind, fact.step), []).append(fact)
        return index

    def has(self, kind: str, step: str | None = None) -> bool:
        return (kind, step) in self._by_kind

    def count(self, kind: str, step: str | None = None) -> int:
        return len(self._by_kind.get((kind, step), ()))

    def latest(self, kind: str, step: str | None = None) -> Fact | None:
        found = self._by_kind.get((kind, step))
        return found[-1] if found else None

    def data_of(self, kind: str, step: str | None = None) -> Mapping[str, Any] | None:
        """The data of the latest fact of `kind`, or None when there is none."""
        fact = self.latest(kind, step)
        return None if fact is None else (fact.data or {})

    def event(self, name: str, sources: tuple[str, ...] | None = None) -> Fact | None:
        """The first arrival of event `name` (later duplicates with other keys are ignored);
        with `sources`, only an arrival from one of those senders counts (others stay on
        record, ignored)."""
        found = self._by_kind.get((EVENT_RECEIVED, name)) or ()
        for fact in found:
            if sources is None or fact.get("source") in sources:
                return fact
        return None

    def events(self, name: str | None = None) -> list[Fact]:
        return self.of(EVENT_RECEIVED, name)

    def slot(self, slot: str) -> Fact | None:
        return self._by_slot.get(slot)

    @cached_property
    def _by_slot(self) -> dict[str, Fact]:
        """Facts by slot (a slot is unique in a workflow). Supervisors ask by slot many
        times per run; the view is immutable, so the index is built once."""
        return {fact.slot: fact for fact in self.facts if fact.slot is not None}

    @cached_property
    def round(self) -> int:
        """How many times an operator resumed this workflow after it failed."""
        return self.count(RETRY_REQUESTED)

    @cached_property
    def round_start(self) -> int:
        """Seq of the fact that opened the current round (0 for the first round)."""
        latest = self.latest(RETRY_REQUESTED)
        return latest.seq if latest else 0

    @property
    def terminal(self) -> Fact | None:
        """The terminal fact of the current round, if the workflow has ended."""
        return self.slot(terminal_slot(self.round))

    @property
    def state(self) -> str:
        """completed, compensated, failed, compensating or running; derived, never stored."""
        end = self.terminal
        if end is not None:
            return TERMINAL_STATES[end.kind]
        if self.has(COMPENSATION_BEGAN):
            return "compensating"
        return "running"

    @cached_property
    def undecodable(self) -> str | None:
        """Why part of this workflow's input or facts could not be decoded (see
        `jsoncodec.loads_stored`), or None. Such a workflow is ended `failed` at once."""
        reason = undecodable(self.input)
        if reason is not None:
            return f"its input: {reason}"
        return _undecodable_fact(self.facts)

    def with_facts(self, facts: Sequence[Fact]) -> WorkflowView:
        """This view with `facts` appended (the ones its transaction is about to write).
        The indexes this view has built already are extended, not built again: a decision
        reads a view, then the same view plus the outcome it records."""
        if not facts:
            return self
        view = dataclasses.replace(self, facts=(*self.facts, *facts))
        known, grown = self.__dict__, view.__dict__
        if "_by_slot" in known:
            by_slot = dict(known["_by_slot"])
            by_slot.update((fact.slot, fact) for fact in facts if fact.slot is not None)
            grown["_by_slot"] = by_slot
        if "_by_kind" in known:
            by_kind = dict(known["_by_kind"])  # the lists are shared: copy each that grows
            for fact in facts:
                keys: list[tuple[str, str | None]] = [(fact.kind, None)]
                if fact.step is not None:
                    keys.append((fact.kind, fact.step))
                for key in keys:
                    by_kind[key] = [*by_kind.get(key, ()), fact]
            grown["_by_kind"] = by_kind
        if "undecodable" in known:
            grown["undecodable"] = known["undecodable"] or _undecodable_fact(facts)
        if all(fact.kind != RETRY_REQUESTED for fact in facts):
            for name in ("round", "round_start"):
                if name in known:
                    grown[name] = known[name]
        return view

    def supervisor_runs_this_round(self) -> int:
        start = self.round_start
        return sum(1 for f in self.facts if f.kind == SUPERVISOR_RAN and f.seq > start)


def _undecodable_fact(facts: Sequence[Fact]) -> str | None:
    for fact in facts:
        reason = undecodable(fact.data)
        if reason is not None:
            return f"fact #{fact.seq} ({fact.kind}): {reason}"
    return None
