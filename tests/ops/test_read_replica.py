"""`--read-db`: the on-call commands and the dashboard read a replica, never the primary,
and say how far behind it is; retry and cancel still go to the primary (issue 19).

On both backends the "replica" is the store itself, opened read-only (the reads provably do
not touch --db: it names a file that cannot exist). On PostgreSQL a real streaming standby
is read as well, built with initdb/pg_basebackup on loopback ports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from steadyhand import Client, open_store
from steadyhand.chaos.cluster import primary_and_standby, server_bin
from steadyhand.cli.main import main
from steadyhand.core.errors import StoreError
from steadyhand.store import open_reader
from steadyhand.web import DashboardOptions, create_app
from tests.apps.scripted import app
from tests.ops.conftest import Scenario, serve

TOKEN = "t0ken-for-tests"
NOWHERE = "sqlite:////nonexistent/steadyhand/never.db"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "220"})


def test_every_read_only_command_reads_the_replica(scenario: Scenario) -> None:
    replica = ["--db", NOWHERE, "--read-db", scenario.url]
    listed = cli("list", "--json", *replica)
    assert listed.exit_code == 0, listed.output
    ids = {row["id"] for row in json.loads(listed.stdout)["workflows"]}
    assert {scenario.completed, scenario.compensated, scenario.failed} <= ids
    status = cli("status", scenario.failed, "--json", *replica)
    assert status.exit_code == 0 and json.loads(status.stdout)["state"] == "failed"
    explain = cli("explain", scenario.compensated, *replica)
    assert explain.exit_code == 0 and "compensated" in explain.stdout
    stats = cli("stats", "--json", *replica)
    assert stats.exit_code == 0 and json.loads(stats.stdout)
    # Without --read-db the same command reads --db, which here cannot be opened.
    assert cli("list", "--db", NOWHERE).exit_code != 0


def test_a_replica_store_refuses_writes(scenario: Scenario) -> None:
    reader = open_reader(scenario.url)
    try:
        if reader.dialect == "postgresql":
            with pytest.raises(StoreError), reader.transaction() as tx:
                tx.query("DELETE FROM tasks")
        assert reader.replica_lag() is None  # the primary itself: not behind
    finally:
        reader.close()


@pytest.mark.skipif(server_bin() is None, reason="no PostgreSQL server programs installed")
@pytest.mark.timeout(90)
def test_a_streaming_standby_serves_reads_and_actions_go_to_the_primary(tmp_path: Path) -> None:
    with primary_and_standby() as cluster:
        primary_url = f"{cluster.url}&schema=replica"
        standby_url = f"{cluster.standby.conninfo}?schema=replica"
        primary = open_store(primary_url)
        try:
            client = Client(app, primary)
            running = client.start("trip", {"ledger": str(tmp_path / "l.db")}).workflow_id
            cluster.wait_replayed()
            listed = cli("list", "--json", "--db", NOWHERE, "--read-db", standby_url)
            assert listed.exit_code == 0, listed.output
            assert [r["id"] for r in json.loads(listed.stdout)["workflows"]] == [running]
            assert re.search(r"reading a replica: \d+\.\ds behind", listed.stderr)
            # The dashboard reads the standby and cancels on the primary.
            replica = open_reader(standby_url)
            try:
                asgi = create_app(replica, DashboardOptions(token=TOKEN), primary)
                with serve(asgi) as base, httpx.Client(base_url=base) as person:
                    person.post("/login", data={"token": TOKEN})
                    assert re.search(r"replica, \d+\.\ds behind", person.get("/").text)
                    page = person.get(f"/workflows/{running}").text
                    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                    done = person.post(
                        f"/workflows/{running}/cancel", data={"csrf": csrf, "reason": "x"}
                    )
                    assert done.status_code == 303, done.text
            finally:
                replica.close()
            assert client.view(running).latest("cancel_requested") is not None
            # A multi-host URL for --read-db prefers the standby.
            both = f"{cluster.url.split('?')[0]}?schema=replica"
            reader = open_reader(both)
            try:
                assert reader.replica_lag() is not None, "it read the primary, not the standby"
            finally:
                reader.close()
        finally:
            primary.close()
