"""Prometheus metrics: store-wide figures computed at scrape time, and per-worker counters.

`StoreCollector` asks the store (bounded queries from `stats`) on every scrape of the
dashboard's `/metrics`; `WorkerMetrics` counts what one worker process did, for
`steadyhand worker --metrics-port`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from steadyhand.core.facts import PROBE
from steadyhand.core.records import SUPERVISE, Task
from steadyhand.core.stuck import StuckRule
from steadyhand.engine.answers import Outcome
from steadyhand.ops.stats import collect
from steadyhand.store.base import Store

DEFAULT_WINDOW = 300.0  # seconds of recent activity a scrape counts


class StoreCollector(Collector):
    """Workflows by state, stuck ones, queue depth and lag, recent calls and decisions."""

    def __init__(self, store: Store, rule: StuckRule, window: float = DEFAULT_WINDOW) -> None:
        self.store = store
        self.rule = rule
        self.window = window

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        s = collect(self.store, time.time(), self.rule, self.window, buckets=1)
        w = f"{self.window:g}s"
        workflows = GaugeMetricFamily(
            "steadyhand_workflows", "Workflows that have not ended, by state", labels=["state"]
        )
        ended = GaugeMetricFamily(
            "steadyhand_workflows_ended",
            f"Workflows whose current round ended in the last {w}, by how",
            labels=["state"],
        )
        for state, n in s.states.items():
            if state in ("running", "waiting", "compensating"):
                workflows.add_metric([state], n)
            else:
                ended.add_metric([state], n)
        yield workflows
        yield ended
        yield _gauge(
            "steadyhand_workflows_stuck",
            f"Workflows not progressing for over {self.rule.after:g}s (see steadyhand.core.stuck)",
            s.stuck,
        )
        yield _gauge(
            "steadyhand_workflows_started", f"Workflows started in the last {w}", s.started
        )
        depth = GaugeMetricFamily(
            "steadyhand_queue_depth", "Tasks due now that no worker holds", labels=["kind"]
        )
        for kind in ("supervise", "action", "compensation", PROBE):
            depth.add_metric([kind], s.queue.get(kind, 0))
        yield depth
        yield _gauge(
            "steadyhand_queue_lag_seconds", "How long the oldest due task has waited", s.queue_lag
        )
        yield _gauge("steadyhand_tasks_in_flight", "Tasks leased by a live worker", s.leased)
        yield _gauge(
            "steadyhand_leases_expired",
            "Leases past their expiry that no watchdog has recovered yet",
            s.expired_leases,
        )
        calls = GaugeMetricFamily(
            "steadyhand_calls",
            f"Agent calls that ended in the last {w}, by phase, step and outcome",
            labels=["phase", "step", "outcome"],
        )
        retries = GaugeMetricFamily(
            "steadyhand_retries",
            f"Calls in the last {w} that were not the first attempt",
            labels=["phase", "step"],
        )
        for row in s.attempts:
            for outcome, n in row.outcomes.items():
                calls.add_metric([row.phase, row.step, outcome], n)
            retries.add_metric([row.phase, row.step], row.retries)
        yield calls
        yield retries
        yield _gauge(
            "steadyhand_compensations_began",
            f"Workflows that began rolling back in the last {w}",
            s.compensations_began,
        )
        latency = GaugeMetricFamily(
            "steadyhand_decision_latency_ms",
            f"Supervisor decision time over the last {s.decisions} runs in {w}",
            labels=["quantile"],
        )
        for name, q in (("p50", "0.5"), ("p95", "0.95"), ("max", "1")):
            latency.add_metric([q], s.decision_ms.get(name, 0.0))
        yield latency
        in_flight = GaugeMetricFamily(
            "steadyhand_service_calls_in_flight",
            "Calls running against each remote service",
            labels=["service"],
        )
        rate = GaugeMetricFamily(
            "steadyhand_service_call_rate",
            "Attempts per second over the last minute",
            labels=["service"],
        )
        failing = GaugeMetricFamily(
            "steadyhand_service_failure_ratio",
            "Share of the last minute's attempts that failed or timed out",
            labels=["service"],
        )
        circuit = GaugeMetricFamily(
            "steadyhand_service_circuit_open",
            "1 when the circuit is open or held by an operator, 0.5 half-open",
            labels=["service"],
        )
        for svc in s.services:
            in_flight.add_metric([svc.service], svc.in_flight)
            rate.add_metric([svc.service], svc.rate)
            failing.add_metric([svc.service], svc.failure_ratio)
            level = {"open": 1.0, "held": 1.0, "half_open": 0.5}.get(svc.circuit, 0.0)
            circuit.add_metric([svc.service], level)
        yield in_flight
        yield rate
        yield failing
        yield circuit
        yield _gauge(
            "steadyhand_scrape_seconds",
            "Time spent reading the store for this scrape",
            time.perf_counter() - started,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def store_registry(
    store: Store, rule: StuckRule, window: float = DEFAULT_WINDOW
) -> CollectorRegistry:
    """A registry holding only the store's figures (the dashboard's `/metrics`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, rule, window))
    return registry


class WorkerMetrics:
    """Counters one worker keeps; passed to `Worker(..., metrics=)` as its observer."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "steadyhand_worker_calls",
            "Agent calls this worker performed, by phase, step and outcome",
            ["phase", "step", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "steadyhand_worker_retries",
            "Calls this worker performed that were not the step's first attempt",
            ["phase", "step"],
            registry=r,
        )
        self.compensations = Counter(
            "steadyhand_worker_compensations",
            "Compensation calls this worker performed, by step and outcome",
            ["step", "outcome"],
            registry=r,
        )
        self.lease_expiries = Counter(
            "steadyhand_worker_lease_expiries",
            "Expired leases this worker's watchdog recovered, by task kind",
            ["kind"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "steadyhand_worker_call_seconds",
            "How long agent calls took, by phase",
            ["phase"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "steadyhand_worker_decision_seconds",
            "Time of one decision transaction (lock, read facts, decide, append), by trigger",
            ["trigger"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.tasks = Counter(
            "steadyhand_worker_tasks", "Tasks this worker finished, by kind", ["kind"], registry=r
        )
        self.supervisor_errors = Counter(
            "steadyhand_worker_supervisor_errors",
            "Workflows this worker ended failed for a bug in supervisor code: it raised "
            "(raised) or returned a decision that cannot be applied (refused)",
            ["kind"],
            registry=r,
        )
        self.slow_decisions = Counter(
            "steadyhand_worker_slow_decisions",
            "Supervisor runs that took longer than the worker's --slow-decision threshold",
            registry=r,
        )
        self.store_errors = Counter(
            "steadyhand_worker_store_errors",
            "Store errors this worker met, by cause (disk_full, locked, connection_refused, ...)",
            ["cause"],
            registry=r,
        )

    def task_done(
        self, task: Task, outcome: Outcome | None, call_seconds: float, decide_seconds: float
    ) -> None:
        """One task finished: a supervisor run, or an agent call and the decision after it."""
        self.tasks.labels(task.kind).inc()
        if task.kind == SUPERVISE or outcome is None:
            self.decision_seconds.labels("supervise").observe(decide_seconds)
            return
        step = task.step or ""
        self.calls.labels(task.kind, step, outcome.suffix).inc()
        self.call_seconds.labels(task.kind).observe(call_seconds)
        self.decision_seconds.labels("outcome").observe(decide_seconds)
        if (task.attempt or 1) > 1:
            self.retries.labels(task.kind, step).inc()
        if task.kind == "compensation":
            self.compensations.labels(step, outcome.suffix).inc()

    def lease_expired(self, task: Task) -> None:
        self.lease_expiries.labels(task.kind).inc()

    def noticed(self, what: str, detail: str) -> None:
        """Trouble worth counting (see `runtime.options.Noticed`)."""
        if what == "supervisor_raised":
            self.supervisor_errors.labels("raised").inc()
        elif what == "decision_refused":
            self.supervisor_errors.labels("refused").inc()
        elif what == "slow_decision":
            self.slow_decisions.inc()
        elif what == "store_error":
            self.store_errors.labels(detail).inc()

    def serve(self, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
        """Expose these counters on http://host:port/metrics from a background thread;
        returns a function that stops serving."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop
