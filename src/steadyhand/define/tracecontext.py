"""Carrying the caller's trace into a workflow: when OpenTelemetry is installed and the code
calling `start` or `signal` is inside a span, that call records a short span of its own and
its W3C trace context (`traceparent`) goes into the fact it writes. The worker continues
that trace in every agent call it makes for the workflow (see `runtime.tracing`), and the
trace id in the facts lets `explain` and the dashboard link to the trace. Without
OpenTelemetry, or outside any span, nothing is recorded and nothing is imported twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TRACER_NAME = "steadyhand"


def _otel() -> Any:
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return None
    return trace, propagate


@contextmanager
def caller_trace(operation: str, attributes: dict[str, str]) -> Iterator[dict[str, Any] | None]:
    """Inside a span named `operation`, the trace context to keep in the fact, or None."""
    otel = _otel()
    if otel is None:
        yield None
        return
    trace, propagate = otel
    if not trace.get_current_span().get_span_context().is_valid:
        yield None  # no trace to join: do not start one from a library call
        return
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        operation, kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        context = span.get_span_context()
        if "traceparent" not in carrier or not context.is_valid:
            yield None
            return
        yield {
            **carrier,
            "trace_id": format(context.trace_id, "032x"),
            "at": time.time(),
        }


def trace_id_of(facts: Any) -> str | None:
    """The trace id kept in a workflow's facts (its start's, else its first signal's)."""
    for fact in facts:
        trace = (fact.data or {}).get("trace")
        if isinstance(trace, dict) and isinstance(trace.get("trace_id"), str):
            return str(trace["trace_id"])
    return None
