"""The demo's simulated remote booking services (flights, hotels, cars) and their ledgers.

One Starlette app per kind, served by uvicorn in its own process, with its own SQLite
ledger that survives restarts. faults.py decides how often things fail; this module
decides where in a request each fault strikes. Run: python -m steadyhand.demo.services.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from steadyhand.core import jsoncodec
from steadyhand.demo.faults import (
    KINDS,
    PROFILES,
    FaultInjector,
    QuietDroppedConfirmations,
    TruncatedJSONResponse,
    hang,
    profile_from_request,
)
from steadyhand.demo.ledger import Ledger


def _error(code: int, error: str, /, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=code)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise ValueError(f"{name} must be a non-empty string of at most 256 characters")
    return value


def _parse_booking(raw: bytes) -> tuple[str, str, dict[str, Any]]:
    """Reject a bad request before any fault or ledger work, so a 400 is always a 400."""
    try:
        body = jsoncodec.loads(raw)
    except ValueError as exc:
        raise ValueError(f"body must be a JSON object: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    details = body.get("details")
    if details is None:
        details = {}
    if not isinstance(details, dict):
        raise ValueError("details must be a JSON object when given")
    return _text(body, "key"), _text(body, "trip"), details


class BookingService:
    """One remote service: the ledger, the dice, and the counters the demo shows.

    Faults strike only the booking API; /health, /ledger, /stats and /admin stay reliable
    because they are the observer's window, not part of the simulated remote service.
    """

    def __init__(self, kind: str, ledger: Ledger, injector: FaultInjector) -> None:
        self.kind = kind
        self.ledger = ledger
        self.faults = injector
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        # Set from the signal handler, so a hanging request ends promptly at shutdown.
        self.stopping = asyncio.Event()

    def _unavailable(self, reason: str, retry_after: str) -> JSONResponse:
        self.injected[reason] += 1
        response = _error(503, "unavailable", reason=reason, service=self.kind)
        response.headers["Retry-After"] = retry_after
        return response

    async def _inject(self, request: Request, *, may_hang: bool) -> Response | None:
        """The faults that strike before any work: an answer to send instead, or None."""
        outage = self.faults.outage_remaining(time.monotonic())
        if outage > 0:
            return self._unavailable("outage", str(math.ceil(outage)))
        profile = self.faults.profile
        if self.faults.roll(profile.p_transient):
            return self._unavailable("transient", self.faults.retry_after())
        delay = self.faults.latency_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if may_hang and self.faults.roll(profile.p_hang):
            self.injected["hang"] += 1
            ended = await hang(request.receive, self.stopping, profile.hang_s)
            self.injected[f"hang_ended_by_{ended}"] += 1
            return _error(
                504 if ended == "timeout" else 503, "unavailable", reason=f"hang, {ended}"
            )
        return None

    async def book(self, request: Request) -> Response:
        self.requests["POST /bookings"] += 1
        try:
            key, trip, details = _parse_booking(await request.body())
        except ValueError as exc:
            return _error(400, "bad_request", message=str(exc))
        fault = await self._inject(request, may_hang=True)
        if fault is not None:
            return fault
        outcome, row = await run_in_threadpool(
            self.ledger.book, key, trip, details, self.faults.sold_out
        )
        self.outcomes[outcome] += 1
        if outcome == "sold_out":
            self.injected["sold_out"] += 1
            return _error(409, "sold_out", key=key, service=self.kind)
        if outcome == "cancelled":
            return _error(409, "cancelled", **row)
        status = 201 if outcome == "booked" else 200
        if self.faults.roll(self.faults.profile.p_lost_confirmation):
            self.injected["lost_confirmation"] += 1
            return TruncatedJSONResponse(row, status_code=status)
        return JSONResponse(row, status_code=status)

    async def cancel(self, request: Request) -> Response:
        self.requests["DELETE /bookings"] += 1
        fault = await self._inject(request, may_hang=True)
        if fault is not None:
            return fault
        key = request.path_params["key"]
        row = await run_in_threadpool(self.ledger.cancel, key)
        return JSONResponse(row if row is not None else {"key": key, "status": "not_found"})

    async def status(self, request: Request) -> Response:
        self.requests["GET /bookings"] += 1
        fault = await self._inject(request, may_hang=False)
        if fault is not None:
            return fault
        key = request.path_params["key"]
        row = await run_in_threadpool(self.ledger.lookup, key)
        if row is None:
            return JSONResponse({"key": key, "status": "unknown"}, status_code=404)
        return JSONResponse(row)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "kind": self.kind})

    async def ledger_dump(self, request: Request) -> Response:
        self.requests["GET /ledger"] += 1
        return JSONResponse({"kind": self.kind, **await run_in_threadpool(self.ledger.dump)})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "kind": self.kind,
                "profile": self.faults.profile.name,
                "requests": dict(self.requests),
                "faults": dict(self.injected),
                "outcomes": dict(self.outcomes),
            }
        )

    async def admin_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = jsoncodec.loads(await request.body())
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                self.faults.set_profile(profile_from_request(body))
            except ValueError as exc:
                return _error(400, "bad_request", message=str(exc))
        return JSONResponse({"kind": self.kind, "profile": self.faults.profile.to_json()})


def create_app(service: BookingService) -> Starlette:
    """The ASGI app; the ledger's connections close at lifespan shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        service.ledger.close()

    routes = [
        Route("/health", service.health, methods=["GET"]),
        Route("/bookings", service.book, methods=["POST"]),
        Route("/bookings/{key:path}", service.status, methods=["GET"]),
        Route("/bookings/{key:path}", service.cancel, methods=["DELETE"]),
        Route("/ledger", service.ledger_dump, methods=["GET"]),
        Route("/stats", service.stats, methods=["GET"]),
        Route("/admin/faults", service.admin_faults, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, max_body_size=64 * 1024)


class _Server(uvicorn.Server):
    """uvicorn, plus telling the app that a stop was asked so hanging requests end now."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.on_exit: Callable[[], None] = lambda: None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.on_exit()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _serve(
    server: _Server, service: BookingService, sock: socket.socket, port_file: Path | None
) -> None:
    loop = asyncio.get_running_loop()

    def wake_hanging_requests() -> None:
        loop.call_soon_threadsafe(service.stopping.set)

    server.on_exit = wake_hanging_requests
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started and port_file is not None:
        _write_atomically(port_file, f"{sock.getsockname()[1]}\n")
    await task


def main(argv: Sequence[str] | None = None) -> None:
    """Bind the socket ourselves so the port is known, then serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="Serve one unreliable demo booking service.")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--ledger", type=Path, required=True, help="SQLite file of bookings")
    parser.add_argument("--faults", choices=sorted(PROFILES), default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the port once serving")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)

    injector = FaultInjector(args.kind, args.seed, PROFILES[args.faults], time.monotonic())
    ledger = Ledger(args.ledger, id_prefix=args.kind[:2].upper())
    service = BookingService(args.kind, ledger, injector)
    config = uvicorn.Config(
        create_app(service),
        http="h11",
        loop="asyncio",
        lifespan="on",
        log_level="info",
        access_log=args.access_log,
        timeout_graceful_shutdown=2,
    )
    logging.getLogger("uvicorn.error").addFilter(QuietDroppedConfirmations())
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets that say they are TCP,
    # and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    asyncio.run(_serve(_Server(config), service, sock, args.port_file))


if __name__ == "__main__":
    main()
