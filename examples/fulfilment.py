"""Fulfil an order code-first: reserve every item at the warehouse, a few at a time
(`wf.map(..., max_parallel=3)`), then charge the card. An item out of stock is refused for
good: the workflow rolls back, releasing every reservation that took effect, newest first.

The warehouse is a small real HTTP service on 127.0.0.1 (started by `Warehouse.start()`),
idempotent by key, slow enough that parallel calls overlap, failing the first try of some
keys with a 503. Its ledger is audited at the end against how each order ended.
Run: python examples/fulfilment.py [--orders 6] [--db sqlite:///x.db]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx

from steadyhand import (
    App,
    Client,
    Context,
    PermanentError,
    ProbeAnswer,
    RetryPolicy,
    TransientError,
    Worker,
    WorkerOptions,
    Workflow,
    open_store,
)

MAX_PARALLEL = 3
"""Reservations of one order in flight at once, at most."""
RETRY = RetryPolicy(max_attempts=6, initial_backoff=0.05, max_backoff=0.5)
STOCK = {"apple": 100, "pear": 100, "plum": 100, "fig": 100, "kiwi": 100, "lime": 100}


class Warehouse:
    """The service: reservations and charges by idempotency key, and a ledger of both.

    It counts the reservations of each order in flight at once (`max_in_flight`), so the
    example can show `max_parallel` holds, and every POST of a key it already holds (a
    retry: answered with the same booking, never a second one).
    """

    def __init__(self, latency: float = 0.05, flaky: bool = True) -> None:
        self.latency, self.flaky = latency, flaky
        self.lock = threading.Lock()
        self.reservations: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.refused_once: set[str] = set()
        self.stock = dict(STOCK)
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        """Serve on a free port of 127.0.0.1 from a daemon thread; returns the base URL."""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def reserve(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key, order = str(body["key"]), str(body["order"])
        with self.lock:
            self.in_flight[order] += 1
            self.max_in_flight[order] = max(self.max_in_flight[order], self.in_flight[order])
        try:
            time.sleep(self.latency)
            with self.lock:
                if key in self.reservations:
                    return 200, self.reservations[key]
                if self.flaky and _coin(key) and key not in self.refused_once:
                    self.refused_once.add(key)
                    return 503, {"error": "busy, try again"}
                sku, qty = str(body["sku"]), int(body["qty"])
                if self.stock.get(sku, 0) < qty:
                    return 409, {"error": f"{sku} is out of stock"}
                self.stock[sku] -= qty
                n = len(self.reservations) + 1
                row = {"key": key, "order": order, "id": f"R-{n}", "sku": sku, "qty": qty}
                self.reservations[key] = {**row, "status": "reserved"}
                return 201, self.reservations[key]
        finally:
            with self.lock:
                self.in_flight[order] -= 1

    def release(self, key: str) -> dict[str, Any]:
        with self.lock:
            row = self.reservations.get(key)
            if row is not None and row["status"] == "reserved":
                row["status"] = "released"
                self.stock[row["sku"]] += row["qty"]
            return row or {"key": key, "status": "never reserved"}

    def charge(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            key = str(body["key"])
            if key not in self.charges:
                n = len(self.charges) + 1
                self.charges[key] = {
                    "key": key, "order": str(body["order"]), "id": f"C-{n}",
                    "amount": body["amount"], "status": "charged",
                }  # fmt: skip
            return self.charges[key]

    def ledger(self) -> dict[str, Any]:
        with self.lock:
            return {
                "reservations": [dict(r) for r in self.reservations.values()],
                "charges": [dict(c) for c in self.charges.values()],
                "max_in_flight": dict(self.max_in_flight),
            }


def _coin(key: str) -> bool:
    """About a third of keys have their first try refused with a 503 (the same ones always)."""
    return hashlib.blake2b(key.encode(), digest_size=2).digest()[0] % 3 == 0


def _handler(house: Warehouse) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            size = int(self.headers.get("Content-Length") or 0)
            body: dict[str, Any] = json.loads(self.rfile.read(size) or b"{}")
            return body

        def do_POST(self) -> None:  # http.server calls do_<METHOD>
            if self.path == "/reservations":
                self._send(*house.reserve(self._body()))
            elif self.path == "/charges":
                self._send(201, house.charge(self._body()))
            else:
                self._send(404, {"error": "no such resource"})

        def do_GET(self) -> None:
            if self.path == "/ledger":
                self._send(200, house.ledger())
                return
            key = unquote(self.path.removeprefix("/reservations/"))
            row = house.reservations.get(key)
            self._send(200 if row else 404, row or {"error": "no such reservation"})

        def do_DELETE(self) -> None:
            self._send(200, house.release(unquote(self.path.removeprefix("/reservations/"))))

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the example prints its own summary

    return Handler


# -- the agents: HTTP calls to the warehouse, classified for the engine ------------------------
WAREHOUSE_URL = {"url": ""}
"""Where the agents find the warehouse (set by main() or a test before workers run)."""

app = App()


def _call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return httpx.request(method, WAREHOUSE_URL["url"] + path, timeout=5.0, **kwargs)
    except httpx.TransportError as exc:
        raise TransientError(f"warehouse unreachable: {type(exc).__name__}") from exc


@app.agent()
def reserve_item(ctx: Context) -> dict[str, Any]:
    """Reserve one line of the order under the step's key (a retry gets the same one)."""
    body = {"key": ctx.idempotency_key, "order": ctx.workflow_id, **ctx.input}
    response = _call("POST", "/reservations", json=body)
    if response.status_code == 409:
        raise PermanentError(response.json()["error"])
    if response.status_code >= 500:
        raise TransientError(f"warehouse: {response.status_code} {response.json()['error']}")
    row: dict[str, Any] = response.json()
    return {"reservation": row["id"], "sku": row["sku"]}


@app.agent()
def release_item(ctx: Context) -> str:
    """The compensation: release what reserve_item reserved (safe to repeat)."""
    row: dict[str, Any] = _call("DELETE", f"/reservations/{quote(ctx.action_key, safe='')}").json()
    return str(row["status"])


@app.agent()
def reservation_status(ctx: Context) -> ProbeAnswer:
    """The probe after a lost answer: does the warehouse hold the key?"""
    response = _call("GET", f"/reservations/{quote(ctx.action_key, safe='')}")
    if response.status_code == 404:
        return ProbeAnswer.not_done()
    row = response.json()
    return ProbeAnswer.done({"reservation": row["id"], "sku": row["sku"]})


@app.agent()
def charge_card(ctx: Context) -> str:
    body = {"key": ctx.idempotency_key, "order": ctx.workflow_id, **ctx.input}
    return str(_call("POST", "/charges", json=body).json()["id"])


@app.workflow("fulfil_order")
async def fulfil_order(wf: Workflow, order: dict[str, Any]) -> dict[str, Any]:
    """Reserve every line, at most MAX_PARALLEL at once; then charge for them all."""
    reserved = await wf.map(
        reserve_item,
        order["lines"],
        max_parallel=MAX_PARALLEL,
        compensation=release_item,
        probe=reservation_status,
        retry=RETRY,
    )
    amount = sum(line["qty"] * line["price"] for line in order["lines"])
    charge = await wf.step(charge_card, {"amount": amount}, retry=RETRY)
    return {"reservations": [r["reservation"] for r in reserved], "charge": charge}


def audit(ledger: dict[str, Any], ended: dict[str, tuple[str, Any]]) -> list[str]:
    """What the warehouse holds, checked against how each order ended: a completed order
    holds one live reservation per line (the ones its result names) and one charge; a
    rolled-back one holds nothing live and was never charged; no key belongs to another
    workflow; never more than MAX_PARALLEL reservations of one order in flight."""
    problems = []
    live: dict[str, list[str]] = {wid: [] for wid in ended}
    for row in ledger["reservations"]:
        wid, _, step = str(row["key"]).rpartition(":")
        if row["order"] != wid or wid not in ended or not step.startswith("reserve_item"):
            problems.append(f"reservation {row['id']} under a stray key {row['key']!r}")
        elif row["status"] == "reserved":
            live[wid].append(row["id"])
    charged = Counter(str(c["order"]) for c in ledger["charges"])
    for wid, (state, result) in ended.items():
        if state == "completed":
            if sorted(live[wid]) != sorted(result["reservations"]) or charged[wid] != 1:
                problems.append(f"{wid}: completed, holds {live[wid]}, charged {charged[wid]}x")
        elif live[wid] or charged[wid]:
            problems.append(f"{wid}: {state} but holds {live[wid]}, charged {charged[wid]}x")
    for order, most in ledger["max_in_flight"].items():
        if most > MAX_PARALLEL:
            problems.append(f"{order}: {most} reservations in flight at once")
    return problems


def sample_order(n: int, lines: int = 6) -> dict[str, Any]:
    """Order n: `lines` lines of fruit; every fourth order asks for 500 figs (out of stock)."""
    skus = list(STOCK)
    rows = [{"sku": skus[(n + i) % len(skus)], "qty": 1 + i % 2, "price": 2} for i in range(lines)]
    if n % 4 == 3:
        rows[-1] = {"sku": "fig", "qty": 500, "price": 1}
    return {"id": n, "lines": rows}


def main(argv: list[str] | None = None) -> int:
    """Fulfil a few orders with a worker on a background thread; print them and the audit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=6)
    parser.add_argument("--db", default=None, help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    house = Warehouse()
    WAREHOUSE_URL["url"] = house.start()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.db or f"sqlite:///{Path(tmp) / 'orders.db'}")
        client = Client(app, store)
        worker = Worker(app, store, WorkerOptions(concurrency=8, poll_interval=0.02))
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            orders = [sample_order(n) for n in range(args.orders)]
            ids = [client.start("fulfil_order", order).workflow_id for order in orders]
            ended = {}
            for n, wid in enumerate(ids):
                status = client.wait(wid, timeout=60)
                ended[wid] = (status.state, status.result)
                print(f"order {n}: {status.state}: {status.result or status.reason}")
        finally:
            worker.stop()
            thread.join()
            store.close()
            house.stop()
    problems = audit(house.ledger(), ended)
    most = max(house.ledger()["max_in_flight"].values(), default=0)
    print(f"at most {most} reservations of one order in flight (max_parallel={MAX_PARALLEL})")
    print("audit: " + ("passed" if not problems else "; ".join(problems)))
    return 0 if not problems else 3


if __name__ == "__main__":
    raise SystemExit(main())
