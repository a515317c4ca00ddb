"""Schedules across worker processes (issue 17): one workflow per tick however many workers
fire it, missed ticks handled by each catch-up mode, overlap rules, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from steadyhand import Client, WorkerOptions
from steadyhand.cli.main import main
from steadyhand.store import Store
from tests.apps.scheduled import app, overlapping
from tests.conftest import FAST, running_worker

ROOT = Path(__file__).resolve().parents[2]
STEADYHAND = str(Path(sys.executable).with_name("steadyhand"))
QUICK = WorkerOptions(**{**FAST.__dict__, "schedule_interval": 0.2})


def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@contextmanager
def workers(store_url: str, count: int, log: Path) -> Iterator[None]:
    command = [STEADYHAND, "worker", "--app", "tests.apps.scheduled:app", "--db", store_url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        procs = [
            subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
            for _ in range(count)
        ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def ticks(store: Store, schedule: str) -> list[float]:
    """The tick times of the workflows a schedule started, from their idempotency keys."""
    with store.snapshot() as tx:
        rows = tx.query(
            "SELECT idempotency_key FROM workflows WHERE idempotency_key LIKE :p",
            {"p": f"schedule:{schedule}:%"},
        ).fetchall()
    stamps = [str(r[0]).split(":", 2)[2] for r in rows]
    return sorted(
        datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() for s in stamps
    )


def test_two_workers_start_one_workflow_per_tick_and_catch_up_by_mode(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    with workers(store_url, 2, log):
        _until(lambda: len(ticks(store, "all")) >= 4 and len(ticks(store, "latest")) >= 4)
    seen = ticks(store, "all")
    assert seen == [seen[0] + i for i in range(len(seen))], (seen, log.read_text())
    # "latest" and "none" may rightly skip a tick when a pass comes more than a second
    # late (a loaded machine); each tick still starts at most one workflow (its key).

    # A long outage, without waiting for one: the schedules' next tick is moved back to
    # eight ticks before the first one ever started, as if no worker had run since.
    first = {name: ticks(store, name)[0] for name in ("all", "latest", "none")}
    with store.transaction() as tx:
        for name, tick in first.items():
            tx.query(
                "UPDATE schedules SET next_at = :at WHERE name = :name",
                {"at": tick - 8, "name": name},
            )
    client = Client(app, store)
    with workers(store_url, 1, log):
        _until(lambda: ticks(store, "all")[0] == first["all"] - 8)
        _until(lambda: all(ticks(store, n)[-1] > time.time() - 1 for n in first))
        with store.snapshot() as tx:
            ids = [r[0] for r in tx.query("SELECT id FROM workflows").fetchall()]
        _until(lambda: all(client.status(i).done for i in ids))
    seen = ticks(store, "all")
    assert seen == [seen[0] + i for i in range(len(seen))], "every missed tick was started"
    for name in ("latest", "none"):
        assert ticks(store, name)[0] == first[name], f"{name}: missed ticks are not started"
    assert {client.status(i).state for i in ids} == {"completed"}


def test_overlap_skip_keeps_one_run_and_cancel_previous_rolls_it_back(store: Store) -> None:
    client = Client(overlapping, store)
    with running_worker(overlapping, store, QUICK):
        _until(lambda: len(ticks(store, "canceller")) >= 3)
        _until(lambda: _skipped(store, "skipper") >= 2)
    assert len(ticks(store, "skipper")) == 1, "a tick never starts beside a running run"
    with store.snapshot() as tx:
        rows = tx.query(
            "SELECT id FROM workflows WHERE idempotency_key LIKE :p ORDER BY created_at",
            {"p": "schedule:canceller:%"},
        ).fetchall()
    earlier = [str(r[0]) for r in rows][:-1]
    _until(lambda: all(client.view(i).count("cancel_requested") == 1 for i in earlier))


def _skipped(store: Store, name: str) -> int:
    with store.snapshot() as tx:
        row = tx.query("SELECT skipped FROM schedules WHERE name = :n", {"n": name}).fetchone()
    return 0 if row is None else int(row[0])


def test_the_cli_lists_pauses_resumes_and_triggers(store: Store, store_url: str) -> None:
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["schedules", *args, "--db", store_url])
        return result.exit_code, result.output

    with running_worker(overlapping, store, QUICK):
        _until(lambda: len(ticks(store, "skipper")) == 1)
        code, out = cli("pause", "skipper")
        assert code == 0 and "paused" in out
    code, out = cli("list")
    assert code == 0 and "skipper" in out and "paused" in out and "every 1s" in out
    assert cli("resume", "skipper")[0] == 0
    assert "next" in cli("list")[1]
    code, out = cli("trigger", "canceller", "--app", "tests.apps.scheduled:overlapping")
    assert code == 0 and "started" in out
    code, out = cli("pause", "nosuch")
    assert code == 4 and "no schedule 'nosuch'" in out and "skipper" in out
