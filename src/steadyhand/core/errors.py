"""Every exception steadyhand raises, in one tree, so callers can catch at the level they mean.

SteadyhandError
├── DefinitionError          a workflow or agent definition is invalid (at import time)
├── InputError               a caller passed something steadyhand cannot accept
│   ├── UnknownWorkflowError     no workflow is registered under that name
│   └── IdempotencyConflict      the key already started a workflow with other input
├── NotFoundError            no workflow with that id or key exists in the store
├── StepFailed               raised at a code-first workflow's `await` of a step that gave up
├── WaitTimedOut             raised at a code-first `wf.wait_for` whose event did not come
├── WorkflowStillRunning     Client.wait gave up before the workflow ended (a TimeoutError)
├── TooManyEvents            a workflow already holds as many events as its plan allows
├── StoreError               the store refused or could not be reached (`cause` names why)
│   └── StoreUnavailable         connection lost, database busy or disk full: safe to retry
└── AgentError               raised by agents to classify their own failures
    ├── TransientError           worth retrying (optionally after `retry_after` seconds)
    └── PermanentError           never retry this step: compensate instead
"""

from __future__ import annotations

from typing import Any


class SteadyhandError(Exception):
    """Base of every error steadyhand raises on purpose."""


class DefinitionError(SteadyhandError):
    """A workflow, step or agent definition is invalid; raised when it is declared."""


class InputError(SteadyhandError, ValueError):
    """A caller passed a value steadyhand cannot accept; the message says what to change."""


class UnknownWorkflowError(InputError):
    """No workflow is registered under the requested name."""


class IdempotencyConflict(InputError):
    """An idempotency key was reused for a different workflow name or input."""


class NotFoundError(SteadyhandError, LookupError):
    """No workflow with the given id or idempotency key exists in the store."""


class StepFailed(SteadyhandError):
    """A code-first step was refused or ran out of retries (or a child ended without
    completing). Raised at its `await`; left uncaught, the workflow rolls back."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"step {step} {reason}")
        self.step = step
        self.reason = reason


class WaitTimedOut(SteadyhandError):
    """A code-first `wf.wait_for(event, timeout=...)` saw no event before its deadline.
    Left uncaught, the workflow rolls back."""

    def __init__(self, event: str, timeout: float) -> None:
        super().__init__(f"no {event} event within {timeout:g}s")
        self.event = event
        self.timeout = timeout


class WorkflowStillRunning(SteadyhandError, TimeoutError):
    """`Client.wait` reached its timeout before the workflow ended; `status` is the last
    status read (the workflow itself goes on)."""

    def __init__(self, message: str, status: Any = None) -> None:
        super().__init__(message)
        self.status = status


class TooManyEvents(SteadyhandError):
    """The workflow already holds as many events as its plan allows (`max_events`): more
    are refused so that a flood cannot crowd out its work. HTTP 429 at the ingress."""


class StoreError(SteadyhandError):
    """The store refused an operation (a constraint, a trigger) or could not run it.

    `cause` is a short name for what went wrong, for metrics and scripts: `disk_full`,
    `read_only`, `permission_denied`, `locked`, `connection_refused`, `too_many_clients`,
    `authentication_failed`, `database_missing`, `io_error`, `refused` (a constraint) or
    `other`; the message says it in words, with what to do.
    """

    def __init__(self, message: str = "", *, cause: str = "other") -> None:
        super().__init__(message)
        self.cause = cause


class StoreUnavailable(StoreError):
    """The store could not be reached or was busy; the operation may be retried."""


class AgentError(SteadyhandError):
    """Base for the exceptions an agent raises to tell the supervisor how it failed."""


class TransientError(AgentError):
    """A passing failure (503, timeout, busy): the step is retried under its retry policy.

    `retry_after` (seconds) is honoured as a lower bound on the backoff, for services that
    say when to come back (an HTTP Retry-After header).
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AgentError):
    """A failure that retrying cannot fix (sold out, card declined): compensate instead."""


class OutcomeUnknown(AgentError):
    """The agent cannot tell whether its call took effect (the connection dropped mid-answer,
    its own client timed out after sending). The supervisor probes the step, if it has a
    probe, before retrying, and treats the step as possibly done when rolling back.
    """
