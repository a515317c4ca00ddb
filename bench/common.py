"""What every measurement shares: result rows, the machine description, PostgreSQL
databases made for one run, commit counters, and worker processes started on a signal.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import platform
import secrets
import signal
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TERMINAL_KINDS = ("workflow_completed", "workflow_compensated", "workflow_failed")
SPAWN = mp.get_context("spawn")


@dataclass
class Row:
    """One line of the results table."""

    section: str
    system: str
    backend: str
    workers: str
    metric: str
    value: float | None
    unit: str
    note: str = ""

    def formatted(self) -> str:
        if self.value is None:
            return "n/a"
        if abs(self.value) >= 100:
            return f"{self.value:,.0f}"
        if abs(self.value) >= 10:
            return f"{self.value:.1f}"
        return f"{self.value:.2f}"


@dataclass
class Results:
    """Rows collected by one run, with the notes worth printing under the table."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        for row in rows:
            self.rows.append(row)
            print(
                f"  {row.system:<11} {row.backend:<8} K={row.workers:<3} {row.metric}: "
                f"{row.formatted()} {row.unit} {row.note}",
                flush=True,
            )

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def find(
        self, section: str, system: str, backend: str, workers: str, metric: str
    ) -> float | None:
        for row in self.rows:
            if (row.section, row.system, row.backend, row.workers, row.metric) == (
                section,
                system,
                backend,
                workers,
                metric,
            ):
                return row.value
        return None


# -- the machine ------------------------------------------------------------------------------
def machine_info(pg_admin: str | None) -> dict[str, str]:
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if pg_admin:
        try:
            with psycopg.connect(pg_admin, connect_timeout=3) as conn:
                for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers"):
                    row = conn.execute(f"SHOW {name}").fetchone()
                    key = "postgresql" if name == "server_version" else f"pg {name}"
                    info[key] = str(row[0]) if row else "?"
        except psycopg.Error as exc:
            info["postgresql"] = f"unreachable ({exc})"
    try:
        import importlib.metadata as md

        for package in ("dbos", "pgqueuer", "psycopg"):
            with contextlib.suppress(md.PackageNotFoundError):
                info[package] = md.version(package)
    except ImportError:  # pragma: no cover
        pass
    return info


# -- PostgreSQL ----------------------------------------------------------------------------------
def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def pg_reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new database for one measurement (its own commit counters), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def fresh_schema_url(db_url: str) -> str:
    sep = "&" if "?" in db_url else "?"
    return f"{db_url}{sep}schema=bench_{secrets.token_hex(4)}"


def drop_schema(store_url: str) -> None:
    from steadyhand.store.postgres import split_url

    conninfo, schema = split_url(store_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def xact_commits(db_url: str) -> int:
    """Committed transactions of the URL's database so far (pg_stat_database), fresh read.

    Each read is itself one committed transaction of the reading session's database; the
    callers read from the admin database so that it is not counted.
    """
    conninfo = db_url.split("?", 1)[0]
    dbname = database_of(conninfo)
    with psycopg.connect(with_database(conninfo, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
    return int(row[0]) if row else 0


def settle_stats() -> None:
    """Backends flush their statistics at exit or at most once a second: let them."""
    time.sleep(1.2)


# -- processes ----------------------------------------------------------------------------------
@dataclass
class Fleet:
    """Worker processes that get ready (import, connect) first and start work on `go`."""

    processes: list[SpawnProcess]
    ready: list[Event]
    go: Event

    @classmethod
    def spawn(cls, target: Callable[..., None], count: int, args: Sequence[Any] = ()) -> Fleet:
        go = SPAWN.Event()
        ready = [SPAWN.Event() for _ in range(count)]
        processes = [
            SPAWN.Process(target=target, args=(*args, i, ready[i], go), daemon=True)
            for i in range(count)
        ]
        for process in processes:
            process.start()
        return cls(processes, ready, go)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for event, process in zip(self.ready, self.processes, strict=True):
            while not event.wait(0.1):
                if not process.is_alive():
                    raise RuntimeError(f"worker process {process.pid} died while starting")
                if time.monotonic() > deadline:
                    raise RuntimeError("worker processes did not get ready in time")

    def start(self) -> float:
        started = time.time()
        self.go.set()
        return started

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.is_alive():
                raise RuntimeError(f"worker process {process.pid} exited ({process.exitcode})")

    def stop(self, timeout: float = 20.0) -> None:
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)


def quiet_logging() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    for name in ("steadyhand", "dbos", "pgqueuer"):
        logging.getLogger(name).setLevel(logging.WARNING)


# -- numbers ------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread(values: Sequence[float]) -> str:
    """'median (min-max)' of repeated figures, to show how noisy a shared machine is."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def sqlite_url(directory: Path, name: str) -> str:
    return f"sqlite:///{directory / name}"
