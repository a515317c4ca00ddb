"""OpenTelemetry on both backends, with the SDK's in-memory exporter: the worker's spans
(attempts, decisions, the workflow run) continue the trace of the code that called `start`
or `signal`, the agent runs inside its attempt's span, and the trace id is kept in the
facts where `explain` shows it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from steadyhand import Client, Worker, open_store
from steadyhand.cli.main import main
from steadyhand.store import Store
from tests.apps.shop import SPANS_SEEN, app
from tests.conftest import FAST

APP = "tests.apps.shop:app"


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def run_worker_until_done(store: Store, provider: TracerProvider, *ids: str) -> None:
    import threading

    worker = Worker(app, store, FAST, tracer_provider=provider)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        for workflow_id in ids:
            Client(app, store).wait(workflow_id, timeout=30)
    finally:
        worker.stop()
        thread.join(timeout=30)


def named(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def test_worker_spans_continue_the_trace_of_start(
    store: Store, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    client = Client(app, store)
    SPANS_SEEN.clear()
    with provider.get_tracer("shop").start_as_current_span("checkout") as root:
        ok = client.start("order", {"amount": 3}).workflow_id
        bad = client.start("order", {"amount": 4, "decline": True}).workflow_id
    run_worker_until_done(store, provider, ok, bad)
    trace_id = root.get_span_context().trace_id
    got = exporter.get_finished_spans()
    assert {s.context.trace_id for s in got} == {trace_id}, "one trace, the caller's"
    charges = named(got, "steadyhand action charge")
    assert len(charges) == 2
    by_workflow = {s.attributes["steadyhand.workflow.id"]: s for s in charges}
    good = by_workflow[ok]
    assert good.parent is not None and good.parent.span_id == root.get_span_context().span_id
    assert good.attributes["steadyhand.workflow.name"] == "order"
    assert good.attributes["steadyhand.step"] == "charge"
    assert good.attributes["steadyhand.attempt"] == 1
    assert good.attributes["steadyhand.outcome"] == "succeeded"
    declined = by_workflow[bad]
    assert declined.attributes["steadyhand.outcome"] == "failed"
    assert declined.status.status_code == trace.StatusCode.ERROR
    assert "card declined" in (declined.status.description or "")
    assert {c.span_id for c in SPANS_SEEN} == {s.context.span_id for s in charges}, (
        "the agent ran inside its attempt's span (its own spans would join the trace)"
    )
    decisions = named(got, "steadyhand decide order")
    assert {s.attributes["steadyhand.workflow.id"] for s in decisions} == {ok, bad}
    runs = {s.attributes["steadyhand.workflow.id"]: s for s in named(got, "steadyhand workflow")}
    assert runs[ok].attributes["steadyhand.outcome"] == "completed"
    assert runs[bad].attributes["steadyhand.outcome"] == "compensated"
    assert runs[ok].start_time <= good.start_time, "the run span covers the whole workflow"
    started = client.view(ok).facts[0]
    assert started.data["trace"]["trace_id"] == format(trace_id, "032x")
    explained = CliRunner().invoke(main, ["explain", ok, "--db", store.url])
    assert f"trace {format(trace_id, '032x')}" in explained.output


def test_a_signal_carries_its_trace_into_what_it_causes(
    store: Store, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    client = Client(app, store)
    waiting = client.start("approval", {}).workflow_id  # outside any span: nothing kept
    assert "trace" not in (client.view(waiting).facts[0].data or {})
    with provider.get_tracer("shop").start_as_current_span("webhook") as hook:
        client.signal("approved", {"by": "ann"}, workflow_id=waiting)
    run_worker_until_done(store, provider, waiting)
    hook_trace = hook.get_span_context().trace_id
    runs = named(exporter.get_finished_spans(), "steadyhand workflow approval")
    assert len(runs) == 1 and runs[0].context.trace_id == hook_trace
    assert runs[0].attributes["steadyhand.outcome"] == "completed"


def test_without_a_provider_the_worker_makes_no_spans(store: Store) -> None:
    worker = Worker(app, store, FAST)
    assert worker.tracing is None, "no SDK configured in this process: tracing stays off"


def test_worker_otel_flag_exports_spans_configured_by_otel_variables(tmp_path: Path) -> None:
    """`steadyhand worker --otel` in its own process, with OTEL_TRACES_EXPORTER=console."""
    url = f"sqlite:///{tmp_path / 'steadyhand.db'}"
    store = open_store(url)
    client = Client(app, store)
    started = client.start("order", {"amount": 1}).workflow_id
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "shop"}
    command = [sys.executable, "-m", "steadyhand", "worker", "--otel", "--app", APP, "--db", url]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert client.wait(started, timeout=30).state == "completed"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        store.close()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert '"name": "steadyhand action charge"' in text
    assert '"service.name": "shop"' in text


def test_otel_flag_refuses_an_unknown_exporter_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "carrier-pigeon"}
    url = f"sqlite:///{tmp_path / 'steadyhand.db'}"
    command = [sys.executable, "-m", "steadyhand", "worker", "--otel", "--app", APP, "--db", url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "OTEL_TRACES_EXPORTER='carrier-pigeon' is not supported" in done.stderr
    assert "Traceback" not in done.stderr
