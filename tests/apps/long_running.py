"""A test app for long-running workflows: deadlines (a booking that waits for a
confirmation, rolled back when its deadline passes), heartbeats and priorities. Agents
record what they did in `LOG` (same process: the tests run workers on threads)."""

from __future__ import annotations

from typing import Any

from steadyhand import App, Context, RetryPolicy, Step

app = App()
QUICK = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
LOG: list[tuple[str, str]] = []  # (agent, workflow id)


@app.agent()
def book(ctx: Context) -> dict[str, Any]:
    LOG.append(("book", ctx.workflow_id))
    return {"booked": ctx.idempotency_key}


@app.agent()
def unbook(ctx: Context) -> None:
    LOG.append(("unbook", ctx.workflow_id))


def _booking() -> list[Step]:
    return [
        Step("seat", book, compensation=unbook, retry=QUICK, timeout=5),
        Step("confirm", wait_for="confirmed"),  # no deadline of its own
    ]


app.workflow("booking", _booking())
app.workflow("booking_by_definition", _booking(), deadline=0.5)
