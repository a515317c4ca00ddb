"""`Step`: one step of a saga as written in code (`app.workflow(name, [Step(...), ...])`)."""

from __future__ import annotations

from dataclasses import dataclass

from steadyhand.core.plans import DEFAULT_COMPENSATION_RETRY, DEFAULT_RETRY, RetryPolicy
from steadyhand.define.agents import AgentFn


@dataclass(frozen=True)
class Step:
    """One step of a saga as written in code; agents may be functions or registered names.

    The plan keeps it as a `StepSpec` (agents by name): the same fields with the same
    defaults (a test holds them equal), copied field by field by `App.workflow`.
    The saga's result is `{step: result}`: what each step's action returned, the payload of
    the event it waited for, or its child's result. A child workflow gets
    `{"input": <the parent's input>, "results": {<earlier step>: <its result>, ...}}` as its
    input.
    """

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
    # run this workflow as a child: it gets {"input": <parent input>, "results": {step: result}}
    # and its result is the step's result
    child: str | None = None
    on_give_up: str = "compensate"  # "fail": when retries run out, stop for a person instead
    heartbeat_timeout: float | None = None  # a call that does not `ctx.heartbeat()` this long
    # is treated as lost (its outcome unknown) without waiting for its whole timeout
    sources: tuple[str, ...] | None = None  # accept `wait_for` only from these event sources
    # A probe that cannot tell yet ("unknown") is asked again, after `probe_backoff` s
    # doubling up to 30 s, at most `probe_budget` times per uncertain attempt; then the step
    # counts as possibly done (compensated on rollback), never re-sent blindly.
    probe_budget: int = 6
    probe_backoff: float = 1.0
