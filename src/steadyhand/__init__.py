"""steadyhand: durable sagas across unreliable remote services, with the brain in the database.

Define agents and workflows on an `App`, start workflows through a `Client`, and run
`Worker`s (or `steadyhand worker`) against the same store. See the README for a tour.
"""

from .agents import Context, ProbeAnswer
from .app import App, Client, Step
from .engine import Started
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
from .model import RetryPolicy
from .status import Status
from .store import open_store
from .worker import Worker, WorkerOptions

__all__ = [
    "App",
    "Client",
    "Context",
    "DefinitionError",
    "IdempotencyConflict",
    "InputError",
    "NotFoundError",
    "OutcomeUnknown",
    "PermanentError",
    "ProbeAnswer",
    "RetryPolicy",
    "Started",
    "Status",
    "SteadyhandError",
    "Step",
    "StoreError",
    "StoreUnavailable",
    "TransientError",
    "UnknownWorkflowError",
    "Worker",
    "WorkerOptions",
    "open_store",
]
__version__ = "0.1.0"
