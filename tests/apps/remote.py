"""A test app that books through the real HTTP `SlowService` (its URL in the workflow input):
a sync agent, an async one, a probe that says "unknown" while the service is still working
on the first request, and a compensation. Every request carries the fencing token."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from steadyhand import App, Context, ProbeAnswer, Step

app = App()


def _call(ctx: Context, method: str, path: str) -> Any:
    url = f"{ctx.input['service']}{path}?key={ctx.action_key}&token={ctx.fencing_token}"
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=ctx.timeout) as response:
        return json.loads(response.read())


@app.agent()
def book(ctx: Context) -> Any:
    return _call(ctx, "POST", "/book")


@app.agent()
async def book_async(ctx: Context) -> Any:
    return await asyncio.to_thread(_call, ctx, "POST", "/book")


@app.agent()
def cancel(ctx: Context) -> Any:
    return _call(ctx, "POST", "/cancel")


@app.agent()
def ask(ctx: Context) -> ProbeAnswer:
    state = _call(ctx, "GET", "/status")["state"]
    if state == "booked":
        return ProbeAnswer.done({"booking": ctx.action_key, "probed": True})
    if state == "none":
        return ProbeAnswer.not_done()
    return ProbeAnswer.unknown()  # still working on the first request: cannot tell yet


for name, agent in (("remote", book), ("remote_async", book_async)):
    app.workflow(
        name,
        [Step("booking", agent, compensation=cancel, probe=ask, timeout=30.0, probe_backoff=0.5)],
    )
