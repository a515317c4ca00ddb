"""The example of issue 14, as written there (only the nap is an input, so a test on a real
store need not sleep an hour), with in-process agents standing in for the services."""

from __future__ import annotations

import threading
from typing import Any

from steadyhand import (
    App,
    Context,
    PermanentError,
    ProbeAnswer,
    RetryPolicy,
    WaitTimedOut,
    Workflow,
)

app = App()
DONE: list[str] = []  # idempotency keys of effects, in order
_LOCK = threading.Lock()


def effect(ctx: Context, what: str) -> dict[str, Any]:
    with _LOCK:
        DONE.append(f"{what}:{ctx.idempotency_key}")
    return {"ref": f"{what}-{ctx.input['id']}"}


@app.agent()
def book_flight(ctx: Context) -> dict[str, Any]:
    return effect(ctx, "flight")


@app.agent()
def cancel_flight(ctx: Context) -> None:
    effect(ctx, f"undo-{ctx.result['ref']}")


@app.agent()
def flight_status(ctx: Context) -> ProbeAnswer:
    return ProbeAnswer.not_done()


@app.agent()
def book_hotel(ctx: Context) -> dict[str, Any]:
    return effect(ctx, "hotel")


@app.agent()
def cancel_hotel(ctx: Context) -> None:
    effect(ctx, f"undo-{ctx.result['ref']}")


@app.agent()
def book_car(ctx: Context) -> dict[str, Any]:
    if ctx.input.get("no_cars"):
        raise PermanentError("no cars left")
    return effect(ctx, "car")


@app.agent()
def cancel_car(ctx: Context) -> None:
    effect(ctx, f"undo-{ctx.result['ref']}")


@app.agent()
def send_gift(ctx: Context) -> dict[str, Any]:
    return effect(ctx, "gift")


@app.agent()
def send_receipt(ctx: Context) -> str:
    with _LOCK:
        DONE.append(f"receipt:{ctx.workflow_id}:{ctx.input}")
    return f"sent:{ctx.input}"


@app.agent()
def ship_order(ctx: Context) -> dict[str, Any]:
    return {"tracking": f"TRK-{ctx.input['order']}"}


@app.workflow()
async def ship(wf: Workflow, request: dict[str, Any]) -> dict[str, Any]:
    return await wf.step(ship_order, request)


@app.workflow()  # registered as "trip"; @app.workflow("name") to choose
async def trip(wf: Workflow, order: dict[str, Any]) -> dict[str, Any]:
    flight = await wf.step(
        book_flight,
        order,
        compensation=cancel_flight,
        probe=flight_status,
        retry=RetryPolicy(max_attempts=5),
        timeout=10,
    )
    hotel, car = await wf.gather(  # run side by side
        wf.step(book_hotel, order, compensation=cancel_hotel),
        wf.step(book_car, order, compensation=cancel_car),
    )
    if order.get("vip"):
        await wf.step(send_gift, order)
    await wf.sleep(order.get("nap", 3600))  # durable; wf.sleep_until(ts) too
    try:
        paid = await wf.wait_for("payment.confirmed", timeout=600)
    except WaitTimedOut:
        raise  # uncaught: the saga rolls back
    receipts = await wf.map(
        send_receipt, order["emails"], max_parallel=10, compensation=None
    )  # results in item order
    shipment = await wf.child("ship", {"order": order["id"]})
    return {"flight": flight, "hotel": hotel, "car": car, "shipment": shipment,
            "paid": paid, "receipts": receipts}  # fmt: skip
