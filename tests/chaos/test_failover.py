"""Losing the PostgreSQL primary (issue 19), CI-sized: a primary and a synchronous standby
built with initdb/pg_basebackup on loopback ports, workers and clients on a multi-host URL
(`target_session_attrs=read-write`), the primary SIGKILLed and the standby promoted, twice
(the lost node comes back as the standby in between). Every workflow must end; no
acknowledged start or signal may be lost,
no fact seen before the kill may change, no booking may be doubled. `make failover` is the
longer run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from steadyhand.chaos.cluster import primary_and_standby, server_bin
from steadyhand.chaos.failover import run_failover
from steadyhand.chaos.options import ChaosOptions
from steadyhand.cli.main import main
from steadyhand.core.errors import StoreError, StoreUnavailable
from steadyhand.core.stuck import StuckRule
from steadyhand.ops.metrics import store_registry
from steadyhand.store import open_store
from steadyhand.store.postgres import PostgresStore
from tests.conftest import fresh_store_url
from tests.ops.promtool import promtool_check_metrics

needs_server = pytest.mark.skipif(
    server_bin() is None, reason="no PostgreSQL server programs (initdb) installed"
)


@needs_server
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_losing_the_primary_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    options = ChaosOptions(
        workflows=30,
        rate=3.0,  # arrivals over 10 s: the kills (at ~3 s and ~7 s) meet calls in flight
        workers=2,
        concurrency=8,
        seed=19,
        failovers=2,  # the second finds the first's lost node back as the standby
        kill_every=4.0,  # a few worker kills as well
        min_kills=0,
        disruptions=0,
        restarts=0,
        terminate_scope="run",
        workdir=tmp_path / "failover",
        timeout=90.0,
    )
    result = run_failover(options)
    chaos = result.chaos
    problems = [(c.name, p) for c in chaos.verdict.checks for p in c.problems]
    assert [d.kind for d in chaos.disruptions] == ["failover", "failover"]
    assert chaos.tally.trips == 30 and chaos.tally.finished == 30, problems
    assert chaos.verdict.violations == 0, problems
    assert chaos.workers_exited == 0, "a worker gave up instead of reconnecting by itself"
    assert result.starts_acknowledged == 30 and result.starts_lost == 0
    assert result.signals_answered > 0 and result.signals_lost == 0
    assert result.facts_changed == 0 and result.doubled == 0
    assert len(result.first_decision_s) == 2
    assert None not in result.first_decision_s, "no decision was recorded on a new primary"
    assert result.ok


@needs_server
@pytest.mark.timeout(60)
def test_a_writer_pointed_at_a_standby_is_refused_with_what_to_do() -> None:
    with primary_and_standby() as cluster:
        open_store(f"{cluster.primary.conninfo}?schema=roles").close()  # creates the tables
        cluster.wait_replayed()
        standby = f"{cluster.standby.conninfo}?schema=roles"
        with pytest.raises(StoreError) as refused:
            open_store(standby)
        message = str(refused.value)
        assert "read-only standby" in message and "target_session_attrs=read-write" in message
        # `steadyhand worker` says so in one line and exits, instead of retrying forever.
        worker = CliRunner().invoke(
            main, ["worker", "--app", "tests.apps.scripted:app", "--db", standby]
        )
        assert worker.exit_code == 1, worker.output
        assert (
            worker.stderr.startswith("error: PostgreSQL at ") and "Traceback" not in worker.stderr
        )
        # The read-only surfaces may use it, and say how far behind it is.
        reader = open_store(standby, read_only=True)
        try:
            lag = reader.replica_lag()
            assert lag is not None and lag >= 0
            # /metrics says so too (a dashboard started with --read-db), by the book.
            scrape = generate_latest(store_registry(reader, StuckRule())).decode()
            assert "\nsteadyhand_replica_lag_seconds " in scrape
            assert promtool_check_metrics(scrape) == ""
            with pytest.raises(StoreUnavailable, match="read-only"), reader.transaction() as tx:
                tx.query("DELETE FROM facts")
        finally:
            reader.close()
        # A multi-host URL without target_session_attrs finds the primary by itself.
        both = f"postgresql://postgres@127.0.0.1:{cluster.standby.port},127.0.0.1:"
        writer = open_store(f"{both}{cluster.primary.port}/steadyhand?schema=roles")
        try:
            assert writer.replica_lag() is None
        finally:
            writer.close()


def test_a_missing_table_during_a_switch_is_retried_not_fatal(tmp_path: Path) -> None:
    """A connection that lands on a server without the tables (`UndefinedTable`) is closed
    and the call reported as `StoreUnavailable`, which the worker retries; the next call
    gets a fresh connection and works once the tables are there again."""
    with fresh_store_url("postgres", tmp_path, "undef") as url:
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        try:
            store.drop_schema()
            missing = pytest.raises(StoreUnavailable, match="no steadyhand table")
            with missing, store.snapshot() as tx:
                tx.read_facts("nobody")
            store.migrate()
            with store.snapshot() as tx:
                assert len(tx.read_facts("nobody")) == 0
        finally:
            store.close()
