"""`Workflow`: the handle a code-first workflow function receives, and the awaitables it makes.

Every `wf.step`, `wf.gather`, `wf.map`, `wf.sleep`, `wf.wait_for` and `wf.child` returns a
plain request object whose `__await__` hands the request itself to the replay driver
(`core/replay.py`), which answers it from the workflow's facts or stops there: that is the
whole trick that lets ordinary `async def` code be replayed deterministically without an
event loop. Steps are named when they are created, in program order, so the same code over
the same facts always gives every step the same name (and so the same idempotency key).
"""

from __future__ import annotations

import inspect
import random as _random
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from steadyhand.core.errors import DefinitionError
from steadyhand.core.plans import DEFAULT_COMPENSATION_RETRY, DEFAULT_RETRY, RetryPolicy, check_name

DEFAULT_TIMEOUT = 30.0


class Await:
    """Base of everything workflow code may await: the request is yielded to the driver,
    which sends back the answer (or throws `StepFailed` / `WaitTimedOut`)."""

    name: str

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)


@dataclass(eq=False)
class StepCall(Await):
    """One call of an agent (`wf.step`): its action, compensation and probe by name."""

    name: str
    agent: str
    input: Any = None
    compensation: str | None = None
    probe: str | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: float = DEFAULT_TIMEOUT
    compensation_retry: RetryPolicy = DEFAULT_COMPENSATION_RETRY
    heartbeat_timeout: float | None = None


@dataclass(eq=False)
class ChildCall(Await):
    """A child workflow (`wf.child`): its result, or `StepFailed` if it did not complete."""

    name: str
    workflow: str
    input: Any = None
    key: str | None = None


@dataclass(eq=False)
class Sleep(Await):
    """A durable sleep: `seconds` from when it is first reached, or `until` a fixed time."""

    name: str
    seconds: float | None = None
    until: float | None = None


@dataclass(eq=False)
class WaitFor(Await):
    """Wait for an outside event (`wf.wait_for`): its payload, or `WaitTimedOut`."""

    name: str
    event: str
    timeout: float | None = None
    sources: tuple[str, ...] | None = None  # only an arrival from these senders counts


@dataclass(eq=False)
class Gather(Await):
    """Several requests run side by side (`wf.gather`): their results in argument order."""

    parts: tuple[Await, ...] = ()
    name: str = "gather"


@dataclass(eq=False)
class MapCall(Await):
    """One step per item (`wf.map`), at most `max_parallel` in flight, results in item order."""

    parts: tuple[StepCall, ...] = ()
    max_parallel: int | None = None
    name: str = "map"


class ContinuedAsNew(BaseException):
    """Raised by `wf.continue_as_new`: ends this run and starts the next with `input`.

    A BaseException, so that workflow code catching `Exception` cannot swallow it."""

    def __init__(self, input: Any) -> None:
        super().__init__("continue as new")
        self.input = input


class Host(Protocol):
    """What the handle asks of the replay that drives it (answers that need the facts)."""

    def agent_name(self, ref: Any) -> str: ...

    def now(self) -> float: ...

    def patched(self, change_id: str) -> bool: ...


@dataclass
class _Names:
    """Step names in program order: the agent's name, numbered on repeats (`a`, `a#2`)."""

    used: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)

    def take(self, base: str, explicit: str | None) -> str:
        if explicit is not None:
            name = check_name(explicit, "step name")
            if name in self.used:
                raise DefinitionError(
                    f"two steps of this workflow are named {name!r}; step names must be "
                    "unique (leave name= out to number repeats automatically)"
                )
        else:
            count = self.counts.get(base, 0)
            while True:
                count += 1
                name = base if count == 1 else f"{base}#{count}"
                if name not in self.used:
                    break
            self.counts[base] = count
        self.used.add(name)
        return name


class Workflow:
    """The handle a code-first workflow function receives (see the module docstring).

    Workflow code must be deterministic: it may branch and loop on its input and on what
    its awaits return, but every effect (HTTP, files, clocks, randomness) belongs in an
    agent called with `wf.step`; use `wf.now()` and `wf.random()` for time and chance.
    """

    def __init__(self, workflow_id: str, input: Any, host: Host) -> None:
        self.workflow_id = workflow_id
        self.input = input
        self._host = host
        self._names = _Names()
        self._random: _random.Random | None = None  # seeded on first use: seeding costs

    def step(
        self,
        agent: Callable[..., Any] | str,
        input: Any = None,
        *,
        name: str | None = None,
        compensation: Callable[..., Any] | str | None = None,
        probe: Callable[..., Any] | str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        compensation_retry: RetryPolicy | None = None,
        heartbeat_timeout: float | None = None,
    ) -> StepCall:
        """Call `agent` with `input` (its `ctx.input`); awaiting gives its result, or raises
        `StepFailed` once it is refused or runs out of retries. With `heartbeat_timeout`, a
        call (or its compensation) that has not `ctx.heartbeat()`-ed for that many seconds
        is given up as lost, long before `timeout`."""
        agent_name = self._host.agent_name(agent)
        return self._step(
            self._names.take(agent_name, name),
            agent_name,
            input,
            compensation,
            probe,
            retry,
            timeout,
            compensation_retry,
            heartbeat_timeout,
        )

    def _step(
        self,
        name: str,
        agent_name: str,
        input: Any,
        compensation: Callable[..., Any] | str | None = None,
        probe: Callable[..., Any] | str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        compensation_retry: RetryPolicy | None = None,
        heartbeat_timeout: float | None = None,
    ) -> StepCall:
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise DefinitionError(f"step {name}: timeout must be positive seconds")
        beat = heartbeat_timeout
        if beat is not None and (
            isinstance(beat, bool) or not isinstance(beat, int | float) or not beat > 0
        ):
            raise DefinitionError(f"step {name}: heartbeat_timeout must be positive seconds")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise DefinitionError(f"step {name}: retry must be a RetryPolicy")
        return StepCall(
            name,
            agent_name,
            input,
            None if compensation is None else self._host.agent_name(compensation),
            None if probe is None else self._host.agent_name(probe),
            retry or DEFAULT_RETRY,
            float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
            compensation_retry or DEFAULT_COMPENSATION_RETRY,
            None if beat is None else float(beat),
        )

    def gather(self, *awaitables: Await) -> Gather:
        """Run `awaitables` side by side; their results in order. If any fails, its
        `StepFailed` is raised once every sibling has ended."""
        for part in awaitables:
            if not isinstance(part, Await):
                if inspect.iscoroutine(part):
                    part.close()
                raise DefinitionError(
                    f"wf.gather takes wf.step(...), wf.child(...), wf.sleep(...), "
                    f"wf.wait_for(...), wf.map(...) or wf.gather(...), not {type(part).__name__};"
                    " to run a sequence of steps as one branch, make it a child workflow"
                )
        return Gather(tuple(awaitables))

    def map(
        self,
        agent: Callable[..., Any] | str,
        items: Iterable[Any],
        *,
        max_parallel: int | None = None,
        name: str | None = None,
        **step_options: Any,
    ) -> MapCall:
        """One step of `agent` per item (the item is its input); results in item order,
        never more than `max_parallel` calls in flight."""
        if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
            raise DefinitionError("wf.map: max_parallel must be a whole number >= 1 (or None)")
        agent_name = self._host.agent_name(agent)
        base = agent_name if name is None else check_name(name, "step name")
        unknown = set(step_options) - {"compensation", "probe", "retry", "timeout"}
        if unknown:
            raise DefinitionError(f"wf.map: unknown option(s) {', '.join(sorted(unknown))}")
        parts = [
            self._step(self._names.take(base, None), agent_name, item, **step_options)
            for item in items
        ]
        return MapCall(tuple(parts), max_parallel)

    def sleep(self, seconds: float) -> Sleep:
        """Sleep durably: nothing waits in memory; the workflow is checked again later."""
        if not isinstance(seconds, int | float) or seconds < 0:
            raise DefinitionError("wf.sleep takes a number of seconds >= 0")
        return Sleep(self._names.take("sleep", None), seconds=float(seconds))

    def sleep_until(self, epoch_seconds: float) -> Sleep:
        """Sleep durably until `epoch_seconds` (a Unix time)."""
        if not isinstance(epoch_seconds, int | float):
            raise DefinitionError("wf.sleep_until takes a Unix time in seconds")
        return Sleep(self._names.take("sleep", None), until=float(epoch_seconds))

    def wait_for(
        self,
        event: str,
        *,
        timeout: float | None = None,
        sources: tuple[str, ...] | list[str] | None = None,
    ) -> WaitFor:
        """Wait for outside event `event`: its payload, or `WaitTimedOut` after `timeout`.
        With `sources`, only an arrival from one of those senders (the ingress source, or
        `source=` of `Client.signal`) counts; others stay on record, ignored."""
        check_name(event, "event name")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise DefinitionError("wf.wait_for: timeout must be positive seconds (or None)")
        if sources is not None:
            if isinstance(sources, str) or not sources:
                raise DefinitionError("wf.wait_for: sources is a non-empty list of source names")
            for source in sources:
                check_name(source, "event source")
        allowed = None if sources is None else tuple(sources)
        return WaitFor(self._names.take(event, None), event, timeout, allowed)

    def child(self, workflow: str, input: Any = None, *, key: str | None = None) -> ChildCall:
        """Run workflow `workflow` as a child: its result, or `StepFailed` if it ended
        compensated or failed. Cancelling this workflow rolls the child back."""
        check_name(workflow, "child workflow name")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 500):
            raise DefinitionError("wf.child: key must be a non-empty string of at most 500 chars")
        return ChildCall(self._names.take(workflow, None), workflow, input, key)

    def now(self) -> float:
        """The time of the facts this replay has reached (stable across replays)."""
        return self._host.now()

    def random(self) -> float:
        """A number in [0, 1) from a generator seeded with the workflow id."""
        if self._random is None:
            self._random = _random.Random(self.workflow_id)
        return self._random.random()

    def continue_as_new(self, input: Any = None) -> Any:
        """End this run and start a fresh one of the same workflow with `input`, in one
        transaction: a history that would grow without bound (a subscription renewed
        monthly for years) stays short, and the run budget counts per run. The run that
        continues ends `completed` with `{"continued_as": <next run's id>}`; an event or a
        start addressed by the workflow's key reaches the newest run. Use `return
        wf.continue_as_new(...)` or call it as a statement: it does not return."""
        raise ContinuedAsNew(input)

    def patched(self, change_id: str) -> bool:
        """Whether to take the new path of a change named `change_id`: False for workflows
        that already went past this point on the old code, True otherwise (recorded, so
        every later replay answers the same)."""
        return self._host.patched(check_name(change_id, "patch id"))
