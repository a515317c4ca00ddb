# trips.py
import os

import httpx

from steadyhand import App, Context, PermanentError, ProbeAnswer, RetryPolicy, Workflow

app = App()
FLIGHTS = os.environ.get("FLIGHTS_URL", "http://127.0.0.1:8001")
HOTELS = os.environ.get("HOTELS_URL", "http://127.0.0.1:8002")
TIMEOUT = float(os.environ.get("TRIPS_HTTP_TIMEOUT", "5"))


async def book(service: str, ctx: Context) -> dict:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        # The idempotency key is stable across attempts: the service books it once.
        r = await http.post(f"{service}/bookings", json={"key": ctx.idempotency_key, **ctx.input})
    if r.status_code == 409:
        raise PermanentError("sold out")  # never retried: the trip rolls back
    r.raise_for_status()  # a 4xx or 503 is retried; a 500 or a timeout is uncertain
    return r.json()


async def cancel(service: str, ctx: Context) -> None:
    # Compensations are retried until they succeed: make them idempotent, and count
    # "nothing to undo" (404: the booking never happened) as success.
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        r = await http.delete(f"{service}/bookings/{ctx.action_key}")
    if r.status_code != 404:
        r.raise_for_status()


async def status(service: str, ctx: Context) -> ProbeAnswer:
    # Asked before retrying a call whose outcome is uncertain: did it happen after all?
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        r = await http.get(f"{service}/bookings/{ctx.action_key}")
    if r.status_code == 404:
        return ProbeAnswer.not_done()
    r.raise_for_status()
    return ProbeAnswer.done(r.json()) if r.json()["status"] == "booked" else ProbeAnswer.unknown()


@app.agent()
async def book_flight(ctx: Context) -> dict:
    return await book(FLIGHTS, ctx)


@app.agent()
async def cancel_flight(ctx: Context) -> None:
    await cancel(FLIGHTS, ctx)


@app.agent()
async def flight_status(ctx: Context) -> ProbeAnswer:
    return await status(FLIGHTS, ctx)


@app.agent()
async def book_hotel(ctx: Context) -> dict:
    return await book(HOTELS, ctx)


@app.agent()
async def cancel_hotel(ctx: Context) -> None:
    await cancel(HOTELS, ctx)


@app.agent()
async def hotel_status(ctx: Context) -> ProbeAnswer:
    return await status(HOTELS, ctx)


retry = RetryPolicy(max_attempts=5, initial_backoff=0.5)


@app.workflow()
async def trip(wf: Workflow, order: dict) -> dict:
    # Plain Python, replayed from the facts: a worker killed at any line loses nothing.
    # A step that fails for good raises StepFailed here; uncaught, it rolls the trip back:
    # every step that took effect (or may have) is compensated, newest first.
    flight = await wf.step(
        book_flight, order, name="flight", compensation=cancel_flight,
        probe=flight_status, retry=retry, timeout=10,
    )  # fmt: skip
    hotel = await wf.step(
        book_hotel, order, name="hotel", compensation=cancel_hotel,
        probe=hotel_status, retry=retry, timeout=10,
    )  # fmt: skip
    return {"flight": flight, "hotel": hotel}
