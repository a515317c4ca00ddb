"""A small booking service for `examples/trips.py`: what a flights or hotels API looks like
to an agent, with a ledger on disk that a test can audit.

    python examples/bookings_service.py --port 8001 --ledger flights.db

- `POST /bookings` `{"key": …, …}` books once per key (a repeated key returns the booking
  it made), 409 when sold out. The booking is written *before* the answer, and the answer
  can be made slow (`delay`): the case where the client times out but the seat is taken.
- `GET /bookings/<key>` says what became of a key (404: never booked).
- `DELETE /bookings/<key>` cancels it (404 when there is nothing to cancel).
- `POST /admin` `{"delay": seconds, "sold_out": bool}` changes the behaviour (tests use it).

Standard library only, so it runs anywhere Python does.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Ledger:
    """Every booking and its status, in a SQLite file that outlives the service."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS bookings (key TEXT PRIMARY KEY, status TEXT NOT NULL,"
                " details TEXT NOT NULL, at REAL NOT NULL)"
            )

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def book(self, key: str, details: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        with self.lock, self._db() as db:
            row = db.execute("SELECT status FROM bookings WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return {"key": key, "status": row[0]}, False
            db.execute(
                "INSERT INTO bookings VALUES (?, 'booked', ?, ?)",
                (key, json.dumps(details), time.time()),
            )
            return {"key": key, "status": "booked"}, True

    def get(self, key: str) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT status FROM bookings WHERE key = ?", (key,)).fetchone()
        return None if row is None else {"key": key, "status": row[0]}

    def cancel(self, key: str) -> bool:
        with self.lock, self._db() as db:
            changed = db.execute(
                "UPDATE bookings SET status = 'cancelled' WHERE key = ?", (key,)
            ).rowcount
        return changed > 0


def live_bookings(path: str) -> list[str]:
    """Keys still booked in the ledger at `path` (what an audit after a rollback checks)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key FROM bookings WHERE status = 'booked'").fetchall()
    return [r[0] for r in rows]


def make_handler(ledger: Ledger, settings: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _answer(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"null")

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/admin":
                settings.update(body)
                return self._answer(200, settings)
            if self.path != "/bookings" or not isinstance(body, dict) or "key" not in body:
                return self._answer(400, {"error": "POST /bookings {key, ...}"})
            if settings.get("sold_out") and ledger.get(str(body["key"])) is None:
                return self._answer(409, {"error": "sold out"})
            booking, new = ledger.book(str(body["key"]), body)
            time.sleep(float(settings.get("delay") or 0))  # booked, but the answer is late
            return self._answer(201 if new else 200, booking)

        def do_GET(self) -> None:
            if self.path == "/health":
                return self._answer(200, {"ok": True})
            booking = ledger.get(self.path.removeprefix("/bookings/"))
            return (
                self._answer(404, {"error": "no such booking"})
                if booking is None
                else (self._answer(200, booking))
            )

        def do_DELETE(self) -> None:
            key = self.path.removeprefix("/bookings/")
            if ledger.cancel(key):
                return self._answer(200, ledger.get(key))
            return self._answer(404, {"error": "no such booking"})

    return Handler


def serve(port: int, ledger_path: str, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server bound to `host:port` (0: any free port); call `serve_forever` on it."""
    server = ThreadingHTTPServer((host, port), make_handler(Ledger(ledger_path), {}))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ledger", default="bookings.db")
    args = parser.parse_args(argv)
    server = serve(args.port, args.ledger)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
