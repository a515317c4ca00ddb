"""A small shop for the client, CLI and tracing tests: an order charges a card through the
`payments` service and ships. `"decline": true` makes the charge fail for good (the order
rolls back); `"undeliverable": true` fails the shipping, and with `"refund_broken": true`
the refund fails too (the order ends failed). An approval waits for an `approved` event."""

from __future__ import annotations

from typing import Any

from steadyhand import App, Context, PermanentError, RetryPolicy, Step

QUICK = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)

app = App()
app.service("payments")
SPANS_SEEN: list[Any] = []  # the span context current inside `charge` (tracing tests)


@app.agent(service="payments")
def charge(ctx: Context) -> dict[str, Any]:
    try:
        from opentelemetry import trace

        SPANS_SEEN.append(trace.get_current_span().get_span_context())
    except ImportError:
        pass
    if (ctx.input or {}).get("decline"):
        raise PermanentError("card declined")
    return {"charged": (ctx.input or {}).get("amount", 0)}


@app.agent()
def refund(ctx: Context) -> dict[str, Any]:
    if (ctx.input or {}).get("refund_broken"):
        raise PermanentError("refunds are switched off")
    return {"refunded": True}


@app.agent()
def ship(ctx: Context) -> dict[str, Any]:
    if (ctx.input or {}).get("undeliverable"):
        raise PermanentError("no such address")
    return {"shipped": True}


app.workflow(
    "order",
    [Step("charge", charge, refund, retry=QUICK), Step("ship", ship, retry=QUICK)],
)
app.workflow("approval", [Step("approve", wait_for="approved", deadline=600)])
