"""Prometheus metrics: store-wide figures computed at scrape time, and per-worker counters.

`StoreCollector` asks the store (bounded queries from `stats`) on every scrape of the
dashboard's `/metrics`; `WorkerMetrics` counts what one worker process did, for
`steadyhand worker --metrics-port`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from steadyhand.core.facts import PROBE
from steadyhand.core.records import SUPERVISE, Task
from steadyhand.core.stuck import StuckRule
from steadyhand.engine.answers import Outcome
from steadyhand.ops.reports import ENDED_STATES, OPEN_STATES
from steadyhand.ops.stats import Stats, collect
from steadyhand.store.base import Store

DEFAULT_WINDOW = 300.0  # seconds of history the first scrape counts
SETTLE = 2.0  # seconds a fact may take to commit after its time: counted one scrape later
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CIRCUIT_STATES = ("closed", "open", "half_open", "held")  # held: by an operator


class StoreCollector(Collector):
    """Gauges of the store now (workflows by open state, stuck ones, queue depth and lag,
    services) and counters of what happened (starts, endings, calls, retries, rollbacks,
    decision times), as Prometheus expects them: seconds, `_total`, histograms.

    The counters are this process's running totals: each scrape counts the facts stamped
    since the previous one (the first counts the last `window` seconds), so a scrape costs
    what happened between two scrapes, never the size of the history. Like any counter they
    restart from zero when the process restarts, which `rate()` handles.
    """

    def __init__(
        self, store: Store, rule: StuckRule, window: float = DEFAULT_WINDOW, settle: float = SETTLE
    ) -> None:
        self.store = store
        self.rule = rule
        self.window = window
        self.settle = settle
        self._lock = threading.Lock()
        self._upto: float | None = None
        self._started = 0
        self._ended: dict[str, int] = dict.fromkeys(ENDED_STATES, 0)
        self._calls: dict[tuple[str, str, str], int] = {}
        self._retries: dict[tuple[str, str], int] = {}
        self._began = 0
        self._decisions = [0] * (len(DECISION_BUCKETS) + 1)
        self._decision_sum = 0.0

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        with self._lock:  # two scrapes at once must not count the same facts twice
            now = time.time()
            since = now - self.window if self._upto is None else self._upto
            upto = max(since, now - self.settle)
            s = collect(self.store, now, self.rule, now - since, buckets=1, until=upto)
            self._count(s)
            self._upto = upto
            yield from self._gauges(s)
            yield from self._counters()
        lag = self.store.replica_lag()
        if lag is not None:  # this process reads a standby (`--read-db`)
            yield _gauge(
                "steadyhand_replica_lag_seconds",
                "How far the standby these figures are read from is behind the primary "
                "(0 when it has replayed all it received)",
                lag,
            )
        yield _gauge(
            "steadyhand_scrape_duration_seconds",
            "Time spent reading the store for this scrape",
            time.perf_counter() - started,
        )

    def _count(self, s: Stats) -> None:
        self._started += s.started
        for state in ENDED_STATES:
            self._ended[state] += s.states.get(state, 0)
        for row in s.attempts:
            for outcome, n in row.outcomes.items():
                key = (row.phase, row.step, outcome)
                self._calls[key] = self._calls.get(key, 0) + n
            self._retries[(row.phase, row.step)] = (
                self._retries.get((row.phase, row.step), 0) + row.retries
            )
        self._began += s.compensations_began
        for ms in s.decision_samples:
            seconds = ms / 1000.0
            self._decision_sum += seconds
            slot = next(
                (i for i, b in enumerate(DECISION_BUCKETS) if seconds <= b), len(DECISION_BUCKETS)
            )
            self._decisions[slot] += 1

    def _gauges(self, s: Stats) -> Iterator[Metric]:
        workflows = GaugeMetricFamily(
            "steadyhand_workflows", "Workflows that have not ended, by state", labels=["state"]
        )
        for state in OPEN_STATES:
            workflows.add_metric([state], s.states.get(state, 0))
        yield workflows
        yield _gauge(
            "steadyhand_workflows_stuck",
            f"Workflows not progressing for over {self.rule.after:g}s (see steadyhand.core.stuck)",
            s.stuck,
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
        in_flight = GaugeMetricFamily(
            "steadyhand_service_calls_in_flight",
            "Calls running against each remote service",
            labels=["service"],
        )
        failing = GaugeMetricFamily(
            "steadyhand_service_failure_ratio",
            "Share of the last minute's attempts that failed or timed out",
            labels=["service"],
        )
        circuit = GaugeMetricFamily(
            "steadyhand_service_circuit_state",
            "1 for the state each service's circuit breaker is in (closed, open, half_open, held)",
            labels=["service", "state"],
        )
        for svc in s.services:
            in_flight.add_metric([svc.service], svc.in_flight)
            failing.add_metric([svc.service], svc.failure_ratio)
            for state in CIRCUIT_STATES:
                circuit.add_metric([svc.service, state], 1.0 if svc.circuit == state else 0.0)
        yield in_flight
        yield failing
        yield circuit

    def _counters(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "steadyhand_workflows_started", "Workflows started", value=self._started
        )
        ended = CounterMetricFamily(
            "steadyhand_workflows_ended",
            "Workflow rounds that ended, by how (a retried workflow can end again)",
            labels=["state"],
        )
        for state, n in self._ended.items():
            ended.add_metric([state], n)
        yield ended
        calls = CounterMetricFamily(
            "steadyhand_calls",
            "Agent calls that ended, by phase, step and outcome",
            labels=["phase", "step", "outcome"],
        )
        for (phase, step, outcome), n in sorted(self._calls.items()):
            calls.add_metric([phase, step, outcome], n)
        yield calls
        retries = CounterMetricFamily(
            "steadyhand_retries",
            "Calls that were not their step's first attempt, by phase and step",
            labels=["phase", "step"],
        )
        for (phase, step), n in sorted(self._retries.items()):
            retries.add_metric([phase, step], n)
        yield retries
        yield CounterMetricFamily(
            "steadyhand_compensations_began",
            "Workflows that began rolling back",
            value=self._began,
        )
        buckets = []
        total = 0
        for bound, n in zip((*DECISION_BUCKETS, float("inf")), self._decisions, strict=True):
            total += n
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", total))
        yield HistogramMetricFamily(
            "steadyhand_decision_seconds",
            "Supervisor decision time (lock, read facts, decide, append), from the facts",
            buckets=buckets,
            sum_value=self._decision_sum,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def store_registry(
    store: Store, rule: StuckRule, window: float = DEFAULT_WINDOW, settle: float = SETTLE
) -> CollectorRegistry:
    """A registry holding only the store's figures (the dashboard's `/metrics`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, rule, window, settle))
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
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.clock_offset = Gauge(
            "steadyhand_worker_clock_offset_seconds",
            "This worker's wall clock minus the store's clock (positive: fast), last measured",
            registry=r,
        )
        self.clock_round_trip = Gauge(
            "steadyhand_worker_clock_round_trip_seconds",
            "Round trip of the last clock measurement (the offset is known to half of it)",
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

    def clock_measured(self, skew: float, round_trip: float) -> None:
        self.clock_offset.set(skew)
        self.clock_round_trip.set(round_trip)

    def serve(self, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
        """Expose these counters on http://host:port/metrics from a background thread;
        returns a function that stops serving."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop
