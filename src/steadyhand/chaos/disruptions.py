"""Disruptions of the store: terminate PostgreSQL connections, restart the server, or hold
SQLite's write lock from another process. Each returns a `Disruption` record for the report;
none touches the facts (they only take the database away for a while).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from steadyhand.store.pg_admin import terminate_sessions
from steadyhand.store.postgres import split_url
from steadyhand.store.sqlite import sqlite_path

if TYPE_CHECKING:
    pass

APP_NAME_PREFIX = "steadyhand-chaos"


@dataclass(frozen=True)
class Disruption:
    """One disruption as it happened: what, when (seconds into the run), for how long."""

    kind: str  # "terminate", "restart" or "lock"
    at: float
    duration: float
    detail: str


def with_app_name(url: str, name: str) -> str:
    """The PostgreSQL URL with `application_name` set, so a run's connections can be found."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    query.append(("application_name", name))
    return urlunsplit(parts._replace(query=urlencode(query)))


def terminate_connections(url: str, app_prefix: str | None, at: float) -> Disruption:
    """`pg_terminate_backend` every connection to the database but this one.

    With `app_prefix`, only connections whose application_name starts with it (this run's
    workers and observer), so other users of a shared database are left alone.
    """
    started = time.monotonic()
    count = terminate_sessions(url, app_prefix)
    scope = f"application_name {app_prefix}*" if app_prefix else "the whole database"
    return Disruption(
        "terminate", at, time.monotonic() - started, f"terminated {count} connections ({scope})"
    )


def restart_server(
    url: str, cluster: tuple[str, str], at: float, ready_timeout: float = 120.0
) -> Disruption:
    """Restart the PostgreSQL cluster (fast shutdown) and wait until pg_isready says yes."""
    conninfo, _ = split_url(url)
    parts = urlsplit(conninfo)
    host, port = parts.hostname or "127.0.0.1", str(parts.port or 5432)
    started = time.monotonic()
    version, name = cluster
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"],
        check=True,
        capture_output=True,
        timeout=ready_timeout,
    )
    deadline = started + ready_timeout
    while True:
        ready = subprocess.run(
            ["pg_isready", "-h", host, "-p", port, "-t", "2"], capture_output=True, check=False
        )
        if ready.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"PostgreSQL at {host}:{port} not ready {ready_timeout:g}s after restart"
            )
        time.sleep(0.2)
    took = time.monotonic() - started
    return Disruption(
        "restart", at, took, f"pg_ctlcluster {version} {name} restart, ready in {took:.1f}s"
    )


_HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def hold_write_lock(url: str, seconds: float, at: float) -> Disruption:
    """From another process, take SQLite's write lock (BEGIN IMMEDIATE) and sit on it."""
    path = sqlite_path(url)
    started = time.monotonic()
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), f"{seconds:.3f}"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # blocks until the lock is ours
        acquired = time.monotonic()
        process.wait(timeout=seconds + 60)
    if line != b"held" or process.returncode != 0:
        raise RuntimeError(f"the lock holder failed (exit {process.returncode}, said {line!r})")
    held = time.monotonic() - acquired
    return Disruption(
        "lock",
        at,
        time.monotonic() - started,
        f"held the write lock for {held:.1f}s (waited {acquired - started:.1f}s to get it)",
    )
