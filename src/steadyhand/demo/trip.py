"""The demo's trip, code-first: book a flight, then a hotel and a car side by side
(`wf.gather`); if anything is refused for good, every booking that took effect (or may have)
is cancelled, newest first.

Agents talk HTTP to the demo services, whose base URLs arrive through $STEADYHAND_DEMO_SERVICES
(JSON: {"flights": url, "hotels": url, "cars": url}), so workers need nothing in the input.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from steadyhand import (
    App,
    CircuitPolicy,
    Context,
    OutcomeUnknown,
    PermanentError,
    ProbeAnswer,
    RetryPolicy,
    TransientError,
    Workflow,
)
from steadyhand.core import jsoncodec

SERVICES_ENV = "STEADYHAND_DEMO_SERVICES"
STEPS = (("flight", "flights"), ("hotel", "hotels"), ("car", "cars"))
"""Each step of a trip and the service it books, in booking order."""

STEP_TIMEOUT = 2.0
"""Seconds an attempt may take; a hung service costs this much before the probe asks."""
HTTP_TIMEOUT = 1.5
"""Shorter than STEP_TIMEOUT, so the agent itself notices a hang and says the outcome is
unknown, rather than being cut off by the worker with no explanation."""

BOOK_RETRY = RetryPolicy(max_attempts=8, initial_backoff=0.2, multiplier=2.0, max_backoff=2.0)
"""Eight tries spread over ten-odd seconds outlast the hostile profile's 1-2 s outages."""
CANCEL_RETRY = RetryPolicy(max_attempts=20, initial_backoff=0.2, multiplier=2.0, max_backoff=2.0)
"""Cancelling never meets a permanent refusal here, so it is worth trying for much longer."""

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def service_urls() -> dict[str, str]:
    """The services' base URLs from the environment, with a clear error when it is not set."""
    raw = os.environ.get(SERVICES_ENV)
    if not raw:
        raise PermanentError(
            f"${SERVICES_ENV} is not set: run the trip workers through `steadyhand demo`, or "
            'export it as JSON, e.g. {"flights": "http://127.0.0.1:8001", ...}'
        )
    urls: dict[str, str] = jsoncodec.loads(raw)
    return urls


def _client() -> httpx.AsyncClient:
    """One connection pool per event loop: a worker runs one loop, a test may run several."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        client = httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=limits)
        _clients[loop] = client
    return client


async def _request(
    service: str, method: str, path: str, *, may_have_acted: bool, **kwargs: Any
) -> httpx.Response:
    """Send one request and classify transport failures the way the supervisor needs them.

    A request that never left (connect errors) is a plain transient failure. One that was sent
    but got no complete answer may have acted: for a booking that is OutcomeUnknown, so the
    supervisor probes before retrying; for an idempotent cancel it is just worth a retry.
    """
    url = f"{service_urls()[service]}{path}"
    what = f"{service}: {method} /bookings"
    try:
        return await _client().request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransientError(f"{what}: could not connect ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        message = f"{what}: no complete answer ({type(exc).__name__})"
        if may_have_acted:
            raise OutcomeUnknown(message) from exc
        raise TransientError(message) from exc


def _unavailable(service: str, response: httpx.Response) -> TransientError:
    try:
        reason = str(response.json().get("reason", "unavailable"))
    except ValueError:
        reason = "unavailable"
    header = response.headers.get("Retry-After")
    retry_after = float(header) if header and header.replace(".", "", 1).isdigit() else None
    return TransientError(f"{service}: {response.status_code} {reason}", retry_after=retry_after)


def _booking(service: str, body: dict[str, Any]) -> dict[str, Any]:
    """What a step returns: enough to cancel it and to audit it against the ledger."""
    return {"service": service, "booking_id": body["booking_id"], "key": body["key"]}


def booker(service: str) -> Callable[[Context], Awaitable[dict[str, Any]]]:
    """The action agent of one service: POST the booking under the step's idempotency key."""

    async def book(ctx: Context) -> dict[str, Any]:
        trip = ctx.input or {}
        details = {"label": trip.get("label"), "traveller": trip.get("traveller")}
        details["route"] = f"{trip.get('origin')}-{trip.get('destination')}"
        body = {"key": ctx.idempotency_key, "trip": ctx.workflow_id, "details": details}
        response = await _request(service, "POST", "/bookings", json=body, may_have_acted=True)
        if response.status_code in (200, 201):
            return _booking(service, response.json())
        if response.status_code == 409:
            error = response.json().get("error", "conflict")
            raise PermanentError(f"{service}: {str(error).replace('_', ' ')}")
        if response.status_code >= 500:
            raise _unavailable(service, response)
        raise PermanentError(f"{service}: unexpected {response.status_code}: {response.text[:200]}")

    return book


def canceller(service: str) -> Callable[[Context], Awaitable[dict[str, Any]]]:
    """The compensation of one service: DELETE by the action's key (safe to repeat)."""

    async def cancel(ctx: Context) -> dict[str, Any]:
        path = f"/bookings/{quote(ctx.action_key, safe='')}"
        response = await _request(service, "DELETE", path, may_have_acted=False)
        if response.status_code == 200:
            body = response.json()
            return {"service": service, "status": body.get("status"), "key": ctx.action_key}
        if response.status_code >= 500:
            raise _unavailable(service, response)
        raise PermanentError(f"{service}: unexpected {response.status_code}: {response.text[:200]}")

    return cancel


def prober(service: str) -> Callable[[Context], Awaitable[ProbeAnswer]]:
    """The probe of one service: ask what became of the action's key after a lost answer."""

    async def status(ctx: Context) -> ProbeAnswer:
        path = f"/bookings/{quote(ctx.action_key, safe='')}"
        try:
            response = await _request(service, "GET", path, may_have_acted=False)
        except TransientError:
            return ProbeAnswer.unknown()
        if response.status_code == 404:
            return ProbeAnswer.not_done()
        if response.status_code == 200 and response.json().get("status") == "booked":
            return ProbeAnswer.done(_booking(service, response.json()))
        # A cancelled booking, or the service is down: only a retry (same key) can tell.
        return ProbeAnswer.unknown()

    return status


# Each service's breaker: its baseline faults (up to a third of calls in the hostile profile)
# stay under the threshold; an outage (every call refused) opens it within a second or two.
CIRCUIT = CircuitPolicy(
    failure_ratio=0.6, min_calls=20, sample=40, window=5.0, cooldown=1.0, max_cooldown=4.0,
    trial_calls=6,
)  # fmt: skip

app = App()
_agents: dict[str, tuple[Any, Any, Any]] = {}
for _step, _service in STEPS:
    app.service(_service, circuit=CIRCUIT)
    _agents[_step] = (
        app.agent(f"book_{_step}", service=_service)(booker(_service)),
        app.agent(f"cancel_{_step}", service=_service)(canceller(_service)),
        app.agent(f"{_step}_status", service=_service)(prober(_service)),
    )


def _book(wf: Workflow, step: str, trip: dict[str, Any]) -> Any:
    """One booking step, named after what it books (its key is `<trip id>:<step>`, which the
    services' ledgers are audited against)."""
    book, cancel, status = _agents[step]
    return wf.step(
        book,
        trip,
        name=step,
        compensation=cancel,
        probe=status,
        retry=BOOK_RETRY,
        timeout=STEP_TIMEOUT,
        compensation_retry=CANCEL_RETRY,
    )


@app.workflow("trip")
async def trip(wf: Workflow, order: dict[str, Any]) -> dict[str, Any]:
    """The flight first (no point holding a room without one), then hotel and car at once."""
    flight = await _book(wf, "flight", order)
    hotel, car = await wf.gather(_book(wf, "hotel", order), _book(wf, "car", order))
    return {"flight": flight, "hotel": hotel, "car": car}
