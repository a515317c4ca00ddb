"""A test app for events and supervision trees: a custom 'join' supervisor, a saga step that
waits for a confirmation, and a parent saga that runs a child workflow."""

from __future__ import annotations

from typing import Any

from steadyhand import (
    App,
    Complete,
    Context,
    Decision,
    Fail,
    PermanentError,
    RetryPolicy,
    Step,
    WaitUntil,
    WorkflowView,
)

app = App()
QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.01)
LOG: list[tuple[str, str]] = []  # (agent, workflow id): what ran, for assertions


@app.supervisor()
def join(facts: WorkflowView, now: float) -> Decision:
    """Complete when every needed event arrived, in any order; fail on a failure or deadline."""
    needed: list[str] = facts.input["needed"]
    for name in needed:
        event = facts.event(name)
        if event is not None and (event.get("payload") or {}).get("status") == "failed":
            reason = f"{name} reported a failure"
            return Decision((Fail(reason),), reason)
    missing = [n for n in needed if facts.event(n) is None]
    if not missing:
        payloads = {n: facts.event(n).get("payload") for n in needed}  # type: ignore[union-attr]
        return Decision((Complete(payloads),), "every event arrived")
    deadline = facts.created_at + float(facts.input.get("deadline", 60))
    if now >= deadline:
        reason = f"still missing {', '.join(missing)} at the deadline"
        return Decision((Fail(reason),), reason)
    return Decision((WaitUntil(deadline),), f"waiting for {', '.join(missing)}")


app.process("join", join)


@app.agent()
def request_payment(ctx: Context) -> dict[str, Any]:
    LOG.append(("request_payment", ctx.workflow_id))
    return {"payment": ctx.idempotency_key}


@app.agent()
def void_payment(ctx: Context) -> None:
    LOG.append(("void_payment", ctx.workflow_id))


@app.agent()
def reserve(ctx: Context) -> str:
    LOG.append(("reserve", ctx.workflow_id))
    if (ctx.input or {}).get("input", {}).get("refuse"):
        raise PermanentError("nothing left")
    return "reserved"


@app.agent()
def release(ctx: Context) -> None:
    LOG.append(("release", ctx.workflow_id))


@app.agent()
def slow(ctx: Context) -> str:
    import time

    LOG.append(("slow", ctx.workflow_id))
    time.sleep(1.0)  # long enough for a cancel to find the child still running
    return "slow done"


app.workflow(
    "checkout",
    [
        Step(
            "payment",
            request_payment,
            compensation=void_payment,
            wait_for="payment.confirmed",
            deadline=1.0,
            retry=QUICK,
        ),
    ],
)
app.workflow(
    "warehouse",
    [
        Step("reserve", reserve, compensation=release, retry=QUICK),
        Step("pack", slow, retry=QUICK),
    ],
)
app.workflow(
    "order",
    [
        Step("payment", request_payment, compensation=void_payment, retry=QUICK),
        Step("fulfil", child="warehouse"),
    ],
)
