"""A test app whose agents call a simulated remote service through a shared ledger file, so
several worker processes can be checked against one service's limits."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from steadyhand import App, CircuitPolicy, Context, RetryPolicy, Step, TransientError

app = App()
app.service("limited", max_in_flight=2)
app.service("metered", rate=5.0, burst=1.0)
app.service("fragile", circuit=CircuitPolicy(min_calls=4, sample=10, window=10, cooldown=0.5,
                                             max_cooldown=1.0, trial_calls=1))  # fmt: skip
app.service("unguarded", circuit=CircuitPolicy(enabled=False))
PATIENT = RetryPolicy(max_attempts=200, initial_backoff=0.02, max_backoff=0.05, jitter=0)


def ledger(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS calls (service TEXT, pid INT, began REAL, ended REAL)")
    conn.execute("CREATE TABLE IF NOT EXISTS outage (service TEXT PRIMARY KEY, until REAL)")
    return conn


def calls(path: str, service: str) -> list[tuple[float, float]]:
    with ledger(path) as conn:
        rows = conn.execute("SELECT began, ended FROM calls WHERE service = ?", (service,))
        return [(float(a), float(b)) for a, b in rows.fetchall()]


def set_outage(path: str, service: str, seconds: float) -> None:
    with ledger(path) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO outage VALUES (?, ?)", (service, time.time() + seconds)
        )


def _call(ctx: Context, service: str) -> Any:
    path = ctx.input["ledger"]
    began = time.time()
    with ledger(path) as conn:
        row = conn.execute("SELECT until FROM outage WHERE service = ?", (service,)).fetchone()
    down = row is not None and began < float(row[0])
    time.sleep(float(ctx.input.get("work", 0.0)))
    with ledger(path) as conn:
        conn.execute(
            "INSERT INTO calls VALUES (?, ?, ?, ?)", (service, os.getpid(), began, time.time())
        )
    if down:
        raise TransientError(f"{service}: 503 (outage)")
    return "ok"


@app.agent(service="limited")
def call_limited(ctx: Context) -> Any:
    return _call(ctx, "limited")


@app.agent(service="metered")
def call_metered(ctx: Context) -> Any:
    return _call(ctx, "metered")


@app.agent(service="fragile")
def call_fragile(ctx: Context) -> Any:
    return _call(ctx, "fragile")


@app.agent(service="unguarded")
def call_unguarded(ctx: Context) -> Any:
    return _call(ctx, "unguarded")


for service in ("limited", "metered", "fragile", "unguarded"):
    agent = {"limited": call_limited, "metered": call_metered, "fragile": call_fragile,
             "unguarded": call_unguarded}[service]  # fmt: skip
    app.workflow(service, [Step("call", agent, retry=PATIENT, timeout=10)])
