"""A test app for clocks, pauses and partitions: one long call, and one retry with a backoff
long enough that running it early (or starving it) shows in the facts.

Reuses the scripted agents (their effects go to a real ledger file, see `scripted`).
"""

from __future__ import annotations

from steadyhand import App, RetryPolicy, Step
from tests.apps.scripted import act, lookup, undo

BACKOFF = 8.0

app = App()
app.agent()(act)
app.agent()(undo)
app.agent()(lookup)

app.workflow(
    "long_call",
    [Step("only", act, compensation=undo, probe=lookup, timeout=20.0)],
)
app.workflow(
    "backoff",
    [
        Step(
            "only",
            act,
            compensation=undo,
            retry=RetryPolicy(max_attempts=3, initial_backoff=BACKOFF, jitter=0.0),
            timeout=5.0,
        )
    ],
)
