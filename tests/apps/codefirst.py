"""A code-first test app: agents that follow a script in their step input and log what they
did (in this process: the tests run workers on threads), and one workflow per primitive.

A step input is {"what": "hotel", "script": ["transient", "ok"]}; script words: ok,
transient, permanent (missing entries mean ok).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from steadyhand import (
    App,
    Context,
    OutcomeUnknown,
    PermanentError,
    ProbeAnswer,
    RetryPolicy,
    StepFailed,
    TransientError,
    WaitTimedOut,
    Workflow,
)

app = App()
QUICK = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
LOG: list[tuple[str, str, str]] = []  # (agent, what, workflow id)
_LOCK = threading.Lock()
VERSION = {"changing": 1}  # which version of `changing` is "deployed"
FIXED = {"buggy": False}  # whether the fix of `buggy` is "deployed"


def logged(ctx: Context, agent: str) -> list[tuple[str, str, str]]:
    return [entry for entry in LOG if entry[2] == ctx.workflow_id and entry[0] == agent]


def entries(workflow_id: str) -> list[tuple[str, str]]:
    with _LOCK:
        return [(agent, what) for agent, what, wid in LOG if wid.startswith(workflow_id)]


def _word(ctx: Context) -> str:
    script = (ctx.input or {}).get("script") or []
    return str(script[ctx.attempt - 1]) if ctx.attempt <= len(script) else "ok"


@app.agent()
def book(ctx: Context) -> dict[str, Any]:
    word = _word(ctx)
    if word == "transient":
        raise TransientError(f"{ctx.step}: 503 on attempt {ctx.attempt}")
    if word == "permanent":
        raise PermanentError(f"{ctx.step}: sold out")
    with _LOCK:
        LOG.append(("book", ctx.input["what"], ctx.workflow_id))
    return {"booked": ctx.input["what"], "key": ctx.idempotency_key}


@app.agent()
def cancel(ctx: Context) -> None:
    with _LOCK:
        LOG.append(("cancel", f"{ctx.input['what']}:{(ctx.result or {}).get('booked')}",
                    ctx.workflow_id))  # fmt: skip


@app.agent()
async def send(ctx: Context) -> str:
    await asyncio.sleep(0.05)  # long enough for calls to overlap if more were scheduled
    with _LOCK:
        LOG.append(("send", str(ctx.input), ctx.workflow_id))
    return f"sent:{ctx.input}"


@app.agent()
def slow_leg(ctx: Context) -> str:
    """Sleeps, then records its effect in a SQLite ledger (for tests that kill workers)."""
    import sqlite3

    time.sleep(float(ctx.input.get("sleep", 0)))
    with sqlite3.connect(ctx.input["ledger"], timeout=30, isolation_level=None) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, attempt INTEGER)")
        conn.execute("INSERT INTO effects VALUES (?, ?)", (ctx.idempotency_key, ctx.attempt))
    return ctx.input["what"]


@app.workflow()
async def slow_pair(wf: Workflow, options: dict[str, Any]) -> list[str]:
    first = {**options, "what": "left"}
    sleepy = {**options, "what": "right"}
    return await wf.gather(
        wf.step(slow_leg, first, timeout=5), wf.step(slow_leg, sleepy, timeout=5)
    )


@app.agent()
def book_once_unsure(ctx: Context) -> dict[str, Any]:
    """Books, but its first answer is lost on the way back (the outcome is unknown)."""
    with _LOCK:
        LOG.append(("book", ctx.input["what"], ctx.workflow_id))
    if ctx.attempt == 1:
        raise OutcomeUnknown("connection dropped after the request was sent")
    return {"booked": ctx.input["what"]}


@app.agent()
def booking_status(ctx: Context) -> ProbeAnswer:
    with _LOCK:
        found = ("book", ctx.input["what"], ctx.workflow_id) in LOG
    return (
        ProbeAnswer.done({"booked": ctx.input["what"], "probed": True})
        if found
        else (ProbeAnswer.not_done())
    )


@app.workflow()
async def probed(wf: Workflow, what: str) -> Any:
    return await wf.step(book_once_unsure, {"what": what}, probe=booking_status, timeout=5)


@app.workflow()
async def until_then(wf: Workflow, at: float) -> float:
    await wf.sleep_until(at)
    return wf.now()


def leg(what: str, script: dict[str, list[str]]) -> dict[str, Any]:
    return {"what": what, "script": script.get(what, [])}


@app.workflow()
async def trip(wf: Workflow, order: dict[str, Any]) -> dict[str, Any]:
    script = order.get("script", {})
    flight = await wf.step(book, leg("flight", script), compensation=cancel, retry=QUICK)
    hotel, car = await wf.gather(
        wf.step(book, leg("hotel", script), compensation=cancel, retry=QUICK),
        wf.step(book, leg("car", script), compensation=cancel, retry=QUICK),
    )
    if order.get("vip"):
        await wf.step(book, leg("gift", script), retry=QUICK)
    return {"flight": flight["booked"], "hotel": hotel["booked"], "car": car["booked"]}


@app.workflow()
async def fallback(wf: Workflow, order: dict[str, Any]) -> str:
    try:
        await wf.step(book, {"what": "first", "script": ["permanent"]}, retry=QUICK)
    except StepFailed as failed:
        await wf.step(book, {"what": "second"}, name="plan_b", retry=QUICK)
        return f"plan b after {failed.step}"
    return "plan a"


@app.workflow()
async def sleeper(wf: Workflow, seconds: float) -> float:
    before = wf.now()
    await wf.sleep(seconds)
    return wf.now() - before


@app.workflow()
async def waiter(wf: Workflow, options: dict[str, Any]) -> Any:
    try:
        return await wf.wait_for("paid", timeout=options.get("timeout"))
    except WaitTimedOut:
        if options.get("catch"):
            return "gave up waiting"
        raise


@app.workflow()
async def booked_then_wait(wf: Workflow, options: dict[str, Any]) -> Any:
    await wf.step(book, {"what": "flight"}, compensation=cancel)
    return await wf.wait_for("paid", timeout=options.get("timeout"))


@app.workflow()
async def mapper(wf: Workflow, options: dict[str, Any]) -> list[str]:
    return await wf.map(send, options["items"], max_parallel=options.get("max_parallel"))


@app.workflow()
async def kid(wf: Workflow, leg_input: dict[str, Any]) -> Any:
    booked = await wf.step(book, leg_input, compensation=cancel, retry=QUICK)
    if leg_input.get("wait"):
        await wf.wait_for("never")
    return booked["booked"]


@app.workflow()
async def parent(wf: Workflow, options: dict[str, Any]) -> Any:
    await wf.step(book, {"what": "parent"}, compensation=cancel)
    return await wf.child("kid", options)


@app.workflow()
async def keyed_parent(wf: Workflow, options: dict[str, Any]) -> Any:
    return await wf.child("waiter", {"timeout": 60}, key=options["child_key"])


@app.workflow()
async def checkout(wf: Workflow, customer: dict[str, Any]) -> list[Any]:
    paid = await wf.wait_for("paid")  # may have arrived before the workflow even started
    shipped = await wf.wait_for("shipped", timeout=60)
    return [customer, paid, shipped]


@app.workflow()
async def buggy(wf: Workflow, options: dict[str, Any]) -> None:
    await wf.step(book, {"what": "before-bug"}, compensation=cancel)
    if not FIXED["buggy"]:
        raise ValueError("the workflow code has a bug")


@app.workflow()
async def does_io(wf: Workflow) -> None:
    await asyncio.sleep(0.01)


@app.workflow()
async def changing(wf: Workflow) -> str:
    if VERSION["changing"] == 1:
        await wf.step(book, {"what": "old"})
    elif VERSION["changing"] == 2 or wf.patched("use-send"):
        await wf.step(send, "new")
    else:
        await wf.step(book, {"what": "old"})
    await wf.wait_for("go")
    return f"v{VERSION['changing']}"


@app.workflow()
async def clock_and_dice(wf: Workflow) -> list[Any]:
    return [wf.workflow_id, wf.input, wf.random(), wf.random(), wf.now() > 0]


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
