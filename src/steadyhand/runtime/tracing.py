"""OpenTelemetry spans of a worker (the `[otel]` extra): one per attempt (agent call, probe,
compensation), one per supervisor decision, and one per workflow run when it ends, each
with its workflow id and name, step, attempt and outcome as attributes.

Every span continues the trace kept in the workflow's facts by the `start` or `signal`
that carried one (`define.tracecontext`), and an agent runs inside its attempt's span, so
the agent's own instrumented HTTP calls join the caller's trace. Tracing is on when an
OpenTelemetry SDK is configured in the process (`steadyhand worker --otel` configures one
from the standard `OTEL_*` variables); otherwise the worker makes no spans at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from steadyhand.core.decisions import Complete, Decision, EndCompensated
from steadyhand.core.facts import EVENT_RECEIVED, FAILED, WORKFLOW_STARTED
from steadyhand.core.records import Task
from steadyhand.engine.answers import Outcome
from steadyhand.store.base import Store

TRACER_NAME = "steadyhand"
PREFIX = "steadyhand."


def tracing_for(provider: Any = None) -> Tracing | None:
    """A `Tracing` on `provider`, else on the process's configured SDK; None when
    OpenTelemetry is not installed or no SDK is configured (no spans, no cost)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    if provider is None:
        provider = trace.get_tracer_provider()
        if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
            return None
    return Tracing(provider)


class Tracing:
    """Makes the worker's spans (see the module docstring)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self.tracer = provider.get_tracer(TRACER_NAME)

    def _parent(self, carrier: Mapping[str, Any] | None) -> Any:
        headers = {k: v for k, v in (carrier or {}).items() if isinstance(v, str)}
        return self._propagator.extract(headers)

    @contextmanager
    def attempt(self, task: Task, agent: str) -> Iterator[Any]:
        """The span of one agent call, current while the agent runs; `finish` it with the
        outcome (`Tracing.outcome`)."""
        span = self.tracer.start_span(
            f"steadyhand {task.kind} {task.step}",
            context=self._parent(task.payload.get("trace")),
            kind=self._trace.SpanKind.CLIENT,
            attributes=_attributes(task, agent),
        )
        with self._trace.use_span(span, end_on_exit=True, record_exception=False):
            yield span

    def outcome(self, span: Any, outcome: Outcome) -> None:
        from opentelemetry.trace import Status, StatusCode

        data = outcome.data or {}
        span.set_attribute(PREFIX + "outcome", outcome.suffix)
        if "permanent" in data:
            span.set_attribute(PREFIX + "permanent", bool(data["permanent"]))
        if outcome.suffix != "succeeded":
            error = str(data.get("error", outcome.suffix))[:500]
            span.set_status(Status(StatusCode.ERROR, error))
            if outcome.suffix == FAILED:
                span.add_event("exception", {"exception.message": error})

    def decision(
        self,
        carrier: Mapping[str, Any] | None,
        workflow_id: str,
        workflow: str,
        decision: Decision | None,
        started: float,
        trigger: str,
    ) -> None:
        """A finished supervisor decision as a span from `started` (a time.time()) to now."""
        what = "nothing" if decision is None else "; ".join(decision.describe())
        span = self.tracer.start_span(
            f"steadyhand decide {workflow}",
            context=self._parent(carrier),
            start_time=int(started * 1e9),
            attributes={
                PREFIX + "workflow.id": workflow_id,
                PREFIX + "workflow.name": workflow,
                PREFIX + "trigger": trigger,
                PREFIX + "decision": what[:500],
                PREFIX + "why": (decision.why if decision else "")[:500],
            },
        )
        span.end()
        if decision is not None and decision.terminal is not None:
            self.workflow_ended(carrier, workflow_id, workflow, decision)

    def workflow_ended(
        self, carrier: Mapping[str, Any] | None, workflow_id: str, workflow: str, decision: Decision
    ) -> None:
        """The span of a whole workflow run, from its start (kept in the trace context) to
        the decision that ended it."""
        end = decision.terminal
        state = (
            "completed"
            if isinstance(end, Complete)
            else "compensated"
            if isinstance(end, EndCompensated)
            else "failed"
        )
        begun = (carrier or {}).get("at")
        start = float(begun) if isinstance(begun, int | float) else time.time()
        span = self.tracer.start_span(
            f"steadyhand workflow {workflow}",
            context=self._parent(carrier),
            start_time=int(start * 1e9),
            attributes={
                PREFIX + "workflow.id": workflow_id,
                PREFIX + "workflow.name": workflow,
                PREFIX + "outcome": state,
            },
        )
        if state != "completed":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, (decision.why or state)[:500]))
        span.end()


def _attributes(task: Task, agent: str) -> dict[str, Any]:
    return {
        PREFIX + "workflow.id": task.workflow_id,
        PREFIX + "workflow.name": str(task.payload.get("workflow", "")),
        PREFIX + "step": task.step or "",
        PREFIX + "phase": task.kind,
        PREFIX + "attempt": int(task.attempt or 0),
        PREFIX + "agent": agent,
        PREFIX + "idempotency_key": str(task.payload.get("key", "")),
    }


def workflow_trace(store: Store, workflow_id: str) -> tuple[dict[str, Any] | None, str]:
    """A workflow's latest trace context and its name, read from its facts (for the spans
    of supervisor runs, whose tasks carry no trace)."""
    with store.snapshot() as tx:
        row = tx.get_workflow(workflow_id)
        facts = tx.read_facts(workflow_id) if row is not None else ()
    carrier = None
    for fact in reversed(facts):
        if fact.kind in (WORKFLOW_STARTED, EVENT_RECEIVED) and fact.data and "trace" in fact.data:
            carrier = dict(fact.data["trace"])
            break
    return carrier, (row.name if row is not None else "")


def configure_from_env() -> None:
    """Configure the OpenTelemetry SDK the standard way, from `OTEL_*` variables:
    `OTEL_TRACES_EXPORTER` (console, otlp or none; default otlp), `OTEL_SERVICE_NAME`,
    `OTEL_EXPORTER_OTLP_ENDPOINT`, … (`steadyhand worker --otel`)."""
    import os

    from steadyhand.core.errors import InputError

    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise InputError("--otel needs OpenTelemetry: pip install 'steadyhand[otel]'") from None
    os.environ.setdefault("OTEL_SERVICE_NAME", "steadyhand-worker")
    provider = TracerProvider(resource=Resource.create())
    for raw in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        name = raw.strip().lower()
        if name in ("", "none"):
            continue
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise InputError(
                    "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: pip install "
                    "'steadyhand[otel]' (or set OTEL_TRACES_EXPORTER=console)"
                ) from None
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            raise InputError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported here: use console, otlp or none"
            )
    trace.set_tracer_provider(provider)


def shutdown() -> None:
    """Flush and stop the configured SDK (spans still batched are exported)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    stop = getattr(trace.get_tracer_provider(), "shutdown", None)
    if callable(stop):
        stop()
