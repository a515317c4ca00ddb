"""steadyhand: durable sagas across unreliable remote services, with the brain in the database.

Define agents and workflows on an `App`, start workflows through a `Client`, and run
`Worker`s (or `steadyhand worker`) against the same store. See the README for a tour.
"""

from .agents import Context, ProbeAnswer
from .app import App, Client, Step
from .decisions import (
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
from .engine import Signalled, Started
from .errors import (
    DefinitionError,
    IdempotencyConflict,
    InputError,
    NotFoundError,
    OutcomeUnknown,
    PermanentError,
    SteadyhandError,
    StoreError,
    StoreUnavailable,
    TransientError,
    UnknownWorkflowError,
)
from .facts import ChildState, Fact, WorkflowFacts
from .model import RetryPolicy
from .progress import Progress, call_progress
from .services import CircuitPolicy, ServicePolicy
from .status import Status
from .store import open_store
from .worker import Worker, WorkerOptions

__all__ = [
    "App",
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
    "StoreError",
    "StoreUnavailable",
    "TransientError",
    "UnknownWorkflowError",
    "WaitUntil",
    "Worker",
    "WorkerOptions",
    "WorkflowFacts",
    "call_progress",
    "open_store",
]
__version__ = "0.1.0"
