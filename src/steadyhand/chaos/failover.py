"""The failover run: the chaos harness on a primary and a synchronous standby of its own,
with workers and clients on a multi-host URL, the primary SIGKILLed halfway through the
arrivals and the standby promoted; then the ledgers are checked.

What it shows: every workflow ends terminal; no start and no signal a client got an answer
for is lost (the harness keeps the started workflows, a signaller thread the signals that
were answered); no fact seen before the kill changed or vanished (history digests); no
effect happened twice (the services' ledgers); and how long it took from the kill to the
standby accepting writes and to the first decision recorded on it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from steadyhand.chaos.cluster import Cluster, primary_and_standby
from steadyhand.chaos.disruptions import Disruption
from steadyhand.chaos.harness import ChaosResult, run_chaos
from steadyhand.chaos.invariants import APPEND_ONLY
from steadyhand.chaos.options import ChaosOptions
from steadyhand.core.errors import SteadyhandError
from steadyhand.core.facts import EVENT_RECEIVED, SUPERVISOR_RAN
from steadyhand.core.stuck import StuckRule
from steadyhand.define.app import App
from steadyhand.define.client import Client
from steadyhand.demo.audit import DOUBLE
from steadyhand.ops.reports import Listing, list_workflows
from steadyhand.store import open_store
from steadyhand.store.pg_admin import first_fact_after

SCHEMA = "steadyhand_failover"
PING = "failover_ping"
Note = Callable[[str], None]


@dataclass
class Strike:
    """The disruption the harness runs: kill the primary, promote the standby, wait for the
    first decision recorded on the new primary, then bring the lost node back as the new
    standby (so the next strike again loses nothing a client saw)."""

    cluster: Cluster
    promoted_s: list[float] = field(default_factory=list)
    first_decision_s: list[float | None] = field(default_factory=list)

    def __call__(self, at: float) -> Disruption:
        started = time.monotonic()
        killed_at = self.cluster.kill_primary()
        promoted_at = self.cluster.promote_standby()
        first = self._first_decision(killed_at, timeout=120.0)
        self.promoted_s.append(promoted_at - killed_at)
        self.first_decision_s.append(None if first is None else first - killed_at)
        recovered = (
            "no decision within 120 s"
            if first is None
            else f"first decision {first - killed_at:.2f} s after"
        )
        rebuilt = self.cluster.rebuild_standby()
        detail = (
            f"SIGKILLed the primary; standby writable {promoted_at - killed_at:.2f} s after "
            f"the kill, {recovered}; lost node back as synchronous standby in {rebuilt:.1f} s"
        )
        return Disruption("failover", at, time.monotonic() - started, detail)

    def _first_decision(self, killed_at: float, timeout: float) -> float | None:
        """When a supervisor run that began after the kill is first seen committed on the new
        primary (polled every 50 ms). Not the fact's own time: that is read when its
        transaction begins, which may be before the switch it then waited out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conninfo = self.cluster.standby.conninfo
                if first_fact_after(conninfo, SCHEMA, SUPERVISOR_RAN, killed_at) is not None:
                    return time.time()
            except psycopg.Error:
                pass
            time.sleep(0.05)
        return None


class Signaller(threading.Thread):
    """A client sending a `failover_ping` event to a running workflow every `every` s, and
    keeping its own ledger of the ones that got an answer (those must survive the kill)."""

    def __init__(self, url: str, every: float = 0.1) -> None:
        super().__init__(name="failover-signaller", daemon=True)
        self.url = url
        self.every = every
        self.answered: list[tuple[str, int]] = []
        self.refused = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        client: Client | None = None
        counter = itertools.count(1)
        rule = StuckRule()
        while not self._stop_event.wait(self.every):
            try:
                if client is None:
                    client = Client(App(), open_store(self.url))
                page = list_workflows(
                    client.store, Listing(state="running", limit=5), time.time(), rule
                )
                if not page.rows:
                    continue
                n = next(counter)
                target = page.rows[n % len(page.rows)].id
                client.signal(PING, {"n": n}, workflow_id=target, dedupe_key=f"ping-{n}")
                self.answered.append((target, n))
            except SteadyhandError:
                self.refused += 1  # no answer: not in the ledger, whether or not it landed
        if client is not None:
            client.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


@dataclass(frozen=True)
class FailoverResult:
    """The chaos verdict plus what the failover itself showed."""

    chaos: ChaosResult
    promoted_s: list[float]
    first_decision_s: list[float | None]
    starts_acknowledged: int
    starts_lost: int
    signals_answered: int
    signals_lost: int
    facts_changed: int
    doubled: int
    server: str
    events: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.chaos.ok
            and len(self.first_decision_s) == self.chaos.options.failovers
            and None not in self.first_decision_s
            and self.starts_lost == 0
            and self.signals_lost == 0
            and self.facts_changed == 0
            and self.doubled == 0
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failovers": len(self.promoted_s),
            "kill_to_standby_writable_s": [round(s, 2) for s in self.promoted_s],
            "kill_to_first_decision_s": [
                None if s is None else round(s, 2) for s in self.first_decision_s
            ],
            "starts_acknowledged": self.starts_acknowledged,
            "starts_lost": self.starts_lost,
            "signals_answered": self.signals_answered,
            "signals_lost": self.signals_lost,
            "facts_changed_or_lost": self.facts_changed,
            "effects_doubled": self.doubled,
            "server": self.server,
            "chaos": self.chaos.to_json(),
        }


def run_failover(
    options: ChaosOptions, port: int | None = None, note: Note | None = None
) -> FailoverResult:
    """Build the cluster, run the harness on it with one failover, check, and stop it all.

    `options.db` and `options.failover` are set here; the rest is the caller's."""
    say: Note = note or (lambda message: None)
    with primary_and_standby(port) as cluster:
        url = f"{cluster.url}&schema={SCHEMA}"
        say(f"cluster up: {cluster.events[-1]}; store {url}")
        strike = Strike(cluster)
        signaller = Signaller(url)
        # The failover run strikes the primary only: no worker disruptions (chaos/workerfaults).
        run = ChaosOptions(
            **{**options.__dict__, "db": url, "failover": strike, "worker_faults": ()}
        )
        signaller.start()
        try:
            chaos = run_chaos(run, say)
        finally:
            signaller.stop()
        starts_lost, signals_lost = _lost(url, chaos, signaller.answered)
        with psycopg.connect(cluster.primary.conninfo, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        server = f"PostgreSQL {row[0] if row else '?'}"
        events = list(cluster.events)
    problems = {c.name: len(c.problems) for c in chaos.verdict.checks}
    return FailoverResult(
        chaos=chaos,
        promoted_s=strike.promoted_s,
        first_decision_s=strike.first_decision_s,
        starts_acknowledged=len(chaos.records),
        starts_lost=starts_lost,
        signals_answered=len(signaller.answered),
        signals_lost=signals_lost,
        facts_changed=problems.get(APPEND_ONLY, 0),
        doubled=problems.get(DOUBLE, 0),
        server=server,
        events=events,
    )


def _lost(url: str, chaos: ChaosResult, answered: list[tuple[str, int]]) -> tuple[int, int]:
    """Acknowledged starts with no facts on the new primary, and answered signals whose
    event fact is missing there."""
    store = open_store(url)
    try:
        with store.snapshot() as tx:
            starts = sum(1 for r in chaos.records if not tx.read_facts(r.trip.workflow_id))
            signals = 0
            for workflow_id, n in answered:
                slots = {f.slot for f in tx.read_facts(workflow_id) if f.kind == EVENT_RECEIVED}
                signals += f"event:ping-{n}" not in slots
    finally:
        store.close()
    return starts, signals


def default_workdir() -> Path:
    return Path("steadyhand-failover")
