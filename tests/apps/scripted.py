"""A test app whose agents follow a script in the workflow input and write their effects to
a real ledger (a SQLite file), standing in for a remote service.

Input: {"ledger": "/path/ledger.db", "script": {"hotel": ["transient", "ok"],
"undo:hotel": ["permanent"]}}. Script words: ok, transient, permanent, hang (sleep past
the timeout without acting), act_then_hang (act, then hang: a lost confirmation),
slow:<seconds> (act after sleeping), gate (act once the file `<ledger>.open` exists, after at
most a minute: a call that is certainly still running when a test kills or stops its worker).
Missing entries mean ok. Calls a test interrupts (`gate`, `act_then_hang`) first record that
they started (`calls_started`): the marker a test waits for before it kills a worker
mid-call (other calls skip the write, which would slow every test's calls).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from steadyhand import App, Context, PermanentError, ProbeAnswer, RetryPolicy, Step, TransientError

MARKED = ("gate", "act_then_hang")
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05)


def ledger(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS effects (key TEXT, phase TEXT, step TEXT, attempt INTEGER, "
        "worker_pid INTEGER, at REAL)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS started (phase TEXT, step TEXT, attempt INTEGER, "
        "worker_pid INTEGER)"
    )
    return conn


def calls_started(path: str) -> list[tuple[Any, ...]]:
    """(phase, step, attempt) of every call that began, in order."""
    with ledger(path) as conn:
        return conn.execute("SELECT phase, step, attempt FROM started ORDER BY rowid").fetchall()


def open_gate(path: str) -> None:
    """Let calls waiting on the word `gate` act."""
    Path(f"{path}.open").touch()


def _mark_started(ctx: Context) -> None:
    import os

    with ledger(ctx.input["ledger"]) as conn:
        conn.execute(
            "INSERT INTO started VALUES (?, ?, ?, ?)",
            (ctx.phase, ctx.step, ctx.attempt, os.getpid()),
        )


def effects(path: str) -> list[tuple[Any, ...]]:
    with ledger(path) as conn:
        return conn.execute(
            "SELECT key, phase, step, attempt FROM effects ORDER BY rowid"
        ).fetchall()


def _word(ctx: Context) -> str:
    script = (ctx.input or {}).get("script", {})
    name = ctx.step if ctx.phase == "action" else f"undo:{ctx.step}"
    words = script.get(name, [])
    return str(words[ctx.attempt - 1]) if ctx.attempt <= len(words) else "ok"


def _act(ctx: Context) -> dict[str, Any]:
    import os

    with ledger(ctx.input["ledger"]) as conn:
        conn.execute(
            "INSERT INTO effects VALUES (?, ?, ?, ?, ?, ?)",
            (ctx.idempotency_key, ctx.phase, ctx.step, ctx.attempt, os.getpid(), time.time()),
        )
    return {"key": ctx.idempotency_key, "step": ctx.step}


def perform(ctx: Context) -> Any:
    word = _word(ctx)
    if word in MARKED:
        _mark_started(ctx)
    if word == "ok":
        return _act(ctx)
    if word == "transient":
        raise TransientError(f"{ctx.step}: 503 on attempt {ctx.attempt}")
    if word == "permanent":
        raise PermanentError(f"{ctx.step}: refused")
    if word == "hang":
        time.sleep(ctx.timeout + 1.0)
        return None
    if word == "act_then_hang":
        _act(ctx)
        time.sleep(ctx.timeout + 1.0)
        return None
    if word == "gate":
        gate = Path(f"{ctx.input['ledger']}.open")
        deadline = time.monotonic() + 60
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return _act(ctx)
    if word.startswith("slow:"):
        time.sleep(float(word.split(":")[1]))
        return _act(ctx)
    raise AssertionError(f"unknown script word {word!r}")


app = App()


@app.agent()
def act(ctx: Context) -> Any:
    return perform(ctx)


@app.agent()
async def act_async(ctx: Context) -> Any:
    word = _word(ctx)
    if word == "hang":
        await asyncio.sleep(ctx.timeout + 5)
    return await asyncio.to_thread(perform, ctx)


@app.agent()
def undo(ctx: Context) -> Any:
    return perform(ctx)


@app.agent()
def lookup(ctx: Context) -> ProbeAnswer:
    with ledger(ctx.input["ledger"]) as conn:
        row = conn.execute(
            "SELECT key FROM effects WHERE key = ? AND phase = 'action'", (ctx.action_key,)
        ).fetchone()
    return (
        ProbeAnswer.done({"key": ctx.action_key, "probed": True}) if row else ProbeAnswer.not_done()
    )


def steps(
    *names: str, timeout: float = 1.0, probe: bool = False, use_async: bool = False
) -> list[Step]:
    return [
        Step(
            name,
            act_async if use_async else act,
            compensation=undo,
            probe=lookup if probe else None,
            retry=FAST_RETRY,
            timeout=timeout,
            compensation_retry=FAST_RETRY,
            compensation_timeout=timeout,
        )
        for name in names
    ]


app.workflow("trip", steps("flight", "hotel", "car"))
app.workflow("trip_probed", steps("flight", "hotel", "car", probe=True))
app.workflow("trip_async", steps("flight", "hotel", "car", use_async=True))
app.workflow("one", steps("only"))
app.workflow("slow_probed", steps("only", timeout=5.0, probe=True))
# Calls that outlast any stall of a loaded test machine (a test kills them well before).
app.workflow("slow_gated", steps("only", timeout=90.0, probe=True))
