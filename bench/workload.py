"""The steadyhand side of every benchmark: no-op agents and the workflows built from them.

Workers import this module by name (`bench.workload:app`), so it must stay importable from
the repository root with no side effects beyond registering definitions.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from steadyhand import App, Context, RetryPolicy, Step, TransientError, Workflow

app = App(max_supervisor_runs=5000)
"""A generous run budget: the 1,000-step chains decide more than a thousand times."""

FAILURE_RATE = 0.2
"""Share of attempts of the `flaky` agent that fail with a transient error."""

NO_BACKOFF = RetryPolicy(max_attempts=30, initial_backoff=0.0, max_backoff=0.0, jitter=0.0)


@app.agent()
def noop(ctx: Context) -> None:
    """A sync agent that does nothing (the shape the README shows first)."""
    return None


@app.agent()
async def anoop(ctx: Context) -> None:
    """An async agent that does nothing: no thread per call."""
    return None


def fails(key: str, attempt: int, rate: float = FAILURE_RATE) -> bool:
    """Deterministic coin: the same key and attempt always fail or succeed alike."""
    digest = hashlib.blake2b(f"{key}:{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


@app.agent()
def flaky(ctx: Context) -> None:
    """Fails transiently on about FAILURE_RATE of its attempts, otherwise does nothing."""
    if fails(ctx.idempotency_key, ctx.attempt):
        raise TransientError("injected transient failure")


@app.agent()
async def slow(ctx: Context) -> None:
    """Waits on a 'remote service' for `input["sleep"]` seconds (memory benchmark)."""
    seconds: Any = (ctx.input or {}).get("sleep", 60)
    await asyncio.sleep(float(seconds))


app.workflow("three", [Step("a", noop), Step("b", noop), Step("c", noop)])
app.workflow("three_async", [Step("a", anoop), Step("b", anoop), Step("c", anoop)])
app.workflow("one", [Step("a", noop)])
app.workflow("one_async", [Step("a", anoop)])
app.workflow(
    "flaky3",
    [Step(name, flaky, retry=NO_BACKOFF) for name in ("a", "b", "c")],
)
app.workflow("slow1", [Step("wait", slow, timeout=3600.0)])


@app.workflow("three_code")
async def three_code(wf: Workflow, data: Any) -> None:
    """`three` written code-first: the same agent, the same step names (bench.codefirst)."""
    for name in ("a", "b", "c"):
        await wf.step(noop, name=name)


CHAIN_LENGTHS = (10, 100, 1000)
"""Steps of the long workflows whose decision time bench.codefirst measures."""


def _chain(length: int) -> Any:
    async def chain(wf: Workflow, data: Any) -> None:
        """`length` no-op steps one after another: every decision replays all before it."""
        for _ in range(length):
            await wf.step(noop)

    return chain


for _length in CHAIN_LENGTHS:
    app.workflow(f"chain_code{_length}")(_chain(_length))
    app.workflow(f"chain_saga{_length}", [Step(f"s{i}", noop) for i in range(_length)])

WORKFLOW_STEPS = {
    "three": 3,
    "three_async": 3,
    "one": 1,
    "one_async": 1,
    "flaky3": 3,
    "slow1": 1,
    "three_code": 3,
}
