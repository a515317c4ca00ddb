"""The demo's simulated remote booking services (flights, hotels, cars) and their ledgers.

One Starlette app per kind, served by uvicorn in its own process, with its own SQLite
ledger that survives restarts. faults.py decides how often things fail; this module
decides where in a request each fault strikes. Run: python -m steadyhand.demo.services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import queue
import secrets
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from steadyhand.demo.faults import (
    KINDS,
    PROFILES,
    FaultInjector,
    QuietDroppedConfirmations,
    TruncatedJSONResponse,
    hang,
    profile_from_request,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,  -- deliberately NOT unique: a double booking must stay visible
    booking_id TEXT NOT NULL,
    trip TEXT NOT NULL,
    details TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    created_at TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE INDEX IF NOT EXISTS bookings_by_key ON bookings (key);
"""
_COLUMNS = "key, booking_id, trip, details, status, created_at, cancelled_at"
Row = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _row(values: tuple[Any, ...]) -> Row:
    key, booking_id, trip, details, status, created_at, cancelled_at = values
    return {
        "key": key,
        "booking_id": booking_id,
        "status": status,
        "trip": trip,
        "details": json.loads(details),
        "created_at": created_at,
        "cancelled_at": cancelled_at,
    }


class Ledger:
    """The service's durable memory, so a retried request finds the booking it already made.

    Idempotency is a lookup-then-insert inside one BEGIN IMMEDIATE transaction rather than
    a unique index, so that a bug that did book twice shows up in double_booked().
    Connections are pooled because handlers run the blocking calls in worker threads.
    """

    def __init__(self, path: Path, id_prefix: str) -> None:
        self.path = path
        self._id_prefix = id_prefix
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            yield conn
        finally:
            self._idle.put(conn)

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._connection() as conn:
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _first(conn: sqlite3.Connection, key: str) -> Row | None:
        found = conn.execute(
            f"SELECT {_COLUMNS} FROM bookings WHERE key = ? ORDER BY id LIMIT 1", (key,)
        ).fetchone()
        return None if found is None else _row(found)

    def book(
        self, key: str, trip: str, details: dict[str, Any], sold_out: Callable[[str], bool]
    ) -> tuple[str, Row]:
        """Book once per key: outcome is booked, existing, cancelled or sold_out."""
        with self._transaction() as conn:
            row = self._first(conn, key)
            if row is not None:
                return ("existing" if row["status"] == "booked" else "cancelled"), row
            if sold_out(key):
                return "sold_out", {"key": key}
            booking_id = f"{self._id_prefix}-{secrets.token_hex(6)}"
            values = (key, booking_id, trip, json.dumps(details), "booked", _now(), None)
            conn.execute(f"INSERT INTO bookings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", values)
            return "booked", _row(values)

    def cancel(self, key: str) -> Row | None:
        """Cancel the booking under key; None when there is none. Safe to repeat."""
        with self._transaction() as conn:
            row = self._first(conn, key)
            if row is not None and row["status"] == "booked":
                row.update(status="cancelled", cancelled_at=_now())
                conn.execute(
                    "UPDATE bookings SET status = 'cancelled', cancelled_at = ? "
                    "WHERE key = ? AND status = 'booked'",
                    (row["cancelled_at"], key),
                )
            return row

    def lookup(self, key: str) -> Row | None:
        with self._connection() as conn:
            return self._first(conn, key)

    def dump(self) -> dict[str, Any]:
        with self._transaction("BEGIN") as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM bookings ORDER BY id").fetchall()
            dupes = conn.execute(
                "SELECT key FROM bookings GROUP BY key HAVING COUNT(*) > 1 ORDER BY key"
            ).fetchall()
        return {"bookings": [_row(r) for r in rows], "double_booked": [d[0] for d in dupes]}

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


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
        body = json.loads(raw)
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
                body = json.loads(await request.body())
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
