"""Bounded waits on the store: a table lock held by someone else makes workers and clients
give up a statement after the lock timeout, log what was blocked and by whom, back off and
carry on once the lock is gone (issue 22). Real worker processes, real locks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from steadyhand import Client, open_store
from steadyhand.core.errors import StoreUnavailable
from steadyhand.store import Store
from steadyhand.store.postgres import split_url
from steadyhand.store.sqlite import sqlite_path
from tests.apps.scripted import app
from tests.processes import worker_process


def with_lock_timeout(url: str, seconds: float) -> str:
    return f"{url}{'&' if '?' in url else '?'}lock_timeout={seconds:g}"


@contextmanager
def table_lock(url: str) -> Iterator[str]:
    """Hold the queue's table lock from another session; yields how it is named in logs."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield "stayed locked by another writer for longer than 0.5s"
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, application_name="test-locker") as locker:
        locker.execute(f"LOCK TABLE {schema}.tasks IN ACCESS EXCLUSIVE MODE")
        pid = locker.info.backend_pid
        try:
            yield f"blocked by pid {pid} (postgres, application test-locker"
        finally:
            locker.rollback()


def wait_for_line(log: Path, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in log.read_text(errors="replace").splitlines() if text in line]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"no log line with {text!r} in {log}")
        time.sleep(0.05)


def test_a_held_table_lock_is_logged_with_its_holder_and_work_resumes(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    first = client.start("one", {"ledger": ledger, "script": {}}).workflow_id
    bounded = with_lock_timeout(store_url, 0.5)
    impatient = open_store(bounded)
    log = tmp_path / "worker.log"
    try:
        with table_lock(store_url) as holder, worker_process(bounded, log):
            with pytest.raises(StoreUnavailable) as refused:
                Client(app, impatient).start("one", {"ledger": ledger, "script": {}})
            assert holder in str(refused.value), "the client is told who holds the lock"
            line = wait_for_line(log, holder)
            assert "WARNING" in line
            if not store_url.startswith("sqlite"):  # SQLite cannot say who holds its lock
                assert "statement lease_tasks waited 0.5s for a lock (lock_timeout)" in line
        with worker_process(bounded, log):  # the same worker would do; a fresh one is quicker
            assert client.wait(first, timeout=30).state == "completed"
        second = Client(app, impatient).start("one", {"ledger": ledger, "script": {}})
        with worker_process(bounded, log):
            assert client.wait(second.workflow_id, timeout=30).state == "completed"
    finally:
        impatient.close()
