"""steadyhand: durable sagas across unreliable remote services, with the brain in the database.

Define agents and workflows on an `App`, start workflows through a `Client`, and run
`Worker`s (or `steadyhand worker`) against the same store. See the README for a tour.
"""

from steadyhand.core.circuit import CircuitPolicy, ServicePolicy
from steadyhand.core.decisions import (
    CallAgent,
    CancelChild,
    Complete,
    Decision,
    EndCompensated,
    Fail,
    RecordFact,
    StartChild,
    WaitUntil,
)
from steadyhand.core.errors import (
    DefinitionError,
    IdempotencyConflict,
    InputError,
    NotFoundError,
    OutcomeUnknown,
    PermanentError,
    SteadyhandError,
    StepFailed,
    StoreError,
    StoreUnavailable,
    TooManyEvents,
    TransientError,
    UnknownWorkflowError,
    WaitTimedOut,
    WorkflowStillRunning,
)
from steadyhand.core.facts import Fact
from steadyhand.core.plans import RetryPolicy
from steadyhand.core.progress import Progress, call_progress
from steadyhand.core.status import Status
from steadyhand.core.view import ChildState, WorkflowView
from steadyhand.core.workflow import Workflow
from steadyhand.define.agents import Context, ProbeAnswer
from steadyhand.define.app import App
from steadyhand.define.async_client import AsyncClient
from steadyhand.define.client import Client
from steadyhand.define.steps import Step
from steadyhand.engine.answers import Signalled, Started
from steadyhand.runtime.worker import Worker, WorkerOptions
from steadyhand.store import open_store

__all__ = [
    "App",
    "AsyncClient",
    "CallAgent",
    "CancelChild",
    "ChildState",
    "CircuitPolicy",
    "Client",
    "Complete",
    "Context",
    "Decision",
    "DefinitionError",
    "EndCompensated",
    "Fact",
    "Fail",
    "IdempotencyConflict",
    "InputError",
    "NotFoundError",
    "OutcomeUnknown",
    "PermanentError",
    "ProbeAnswer",
    "Progress",
    "RecordFact",
    "RetryPolicy",
    "ServicePolicy",
    "Signalled",
    "StartChild",
    "Started",
    "Status",
    "SteadyhandError",
    "Step",
    "StepFailed",
    "StoreError",
    "StoreUnavailable",
    "TooManyEvents",
    "TransientError",
    "UnknownWorkflowError",
    "WaitTimedOut",
    "WaitUntil",
    "Worker",
    "WorkerOptions",
    "Workflow",
    "WorkflowStillRunning",
    "WorkflowView",
    "call_progress",
    "open_store",
]
__version__ = "0.1.0"
