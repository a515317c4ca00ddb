"""A test app for long-running workflows: deadlines (a booking that waits for a
confirmation, rolled back when its deadline passes), heartbeats and priorities. Agents
record what they did in `LOG` (same process: the tests run workers on threads)."""

from __future__ import annotations

from typing import Any

from steadyhand import (
    App,
    Context,
    Decision,
    EndCompensated,
    RetryPolicy,
    Step,
    WaitUntil,
    Workflow,
    WorkflowView,
)

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


# -- heartbeats -------------------------------------------------------------------------------
def _resume(ctx: Context) -> dict[str, Any] | None:
    """Attempt 1 reports progress, then falls silent (a hung call); later attempts resume
    from what the earlier one last reported."""
    LOG.append((f"attempt:{ctx.attempt}:last={ctx.last_heartbeat}", ctx.workflow_id))
    if ctx.attempt == 1:
        ctx.heartbeat({"page": 1})
        ctx.heartbeat({"page": 3})
        return None
    return {"resumed_from": ctx.last_heartbeat}


@app.agent()
def copy_pages(ctx: Context) -> Any:
    resumed = _resume(ctx)
    if resumed is None:
        import time

        time.sleep(3)  # silent well past heartbeat_timeout, well within timeout
    return resumed


@app.agent()
async def copy_pages_async(ctx: Context) -> Any:
    import asyncio

    resumed = _resume(ctx)
    if resumed is None:
        await asyncio.sleep(60)  # cancelled when the heartbeat timeout passes
    return resumed


@app.agent()
def beating(ctx: Context) -> Any:
    """Beats steadily past the heartbeat timeout, then finishes."""
    import time

    for page in range(6):
        ctx.heartbeat({"page": page})
        time.sleep(0.1)
    return {"pages": 6}


for _name, _agent in (("copy", copy_pages), ("copy_async", copy_pages_async), ("steady", beating)):
    app.workflow(
        _name,
        [Step("pages", _agent, retry=QUICK, timeout=30, heartbeat_timeout=0.3)],
    )


@app.workflow()
async def copy_code_first(wf: Workflow, order: Any) -> dict[str, Any]:
    """The same silent call, from code: `wf.step(..., heartbeat_timeout=)`."""
    pages = await wf.step(
        copy_pages, order, name="pages", retry=QUICK, timeout=30, heartbeat_timeout=0.3
    )
    return {"pages": pages}


# -- priorities and fairness ------------------------------------------------------------------
app.service("printer", max_in_flight=1)


@app.agent(service="printer")
def print_page(ctx: Context) -> dict[str, Any]:
    import time

    time.sleep(0.02)
    LOG.append(("print", ctx.workflow_id))
    return {"printed": ctx.workflow_id}


app.workflow("print", [Step("print", print_page, retry=QUICK, timeout=5)])
app.workflow("print_twice", [Step("first", child="print"), Step("second", child="print")])


@app.supervisor()
def patient(view: WorkflowView, now: float) -> Decision:
    """Waits for ever unless cancelled; then ends compensated with the cancel's reason."""
    cancel = view.latest("cancel_requested")
    if cancel is not None:
        return Decision((EndCompensated(str(cancel.get("reason"))),), "cancelled")
    return Decision((WaitUntil(now + 3600),), "waiting")


app.process("patient", patient, deadline=0.3)


@app.workflow(deadline=0.4)
async def coded_booking(wf: Workflow, _: Any) -> Any:
    """A code-first booking with a deadline on its definition."""
    await wf.step(book, {}, compensation=unbook)
    return await wf.wait_for("confirmed")
