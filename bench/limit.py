"""The server's own limit: single-row INSERT commits per second with C clients.

pgbench (shipped with PostgreSQL) runs `INSERT INTO t (v) VALUES (1)` in autocommit from
C clients on C threads for a few seconds, so the figure has no Python overhead in it.
Where pgbench is missing, C Python processes do the same with psycopg.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from .common import Fleet

SCRIPT = "INSERT INTO bench_commit_limit (v) VALUES (1);\n"


def _prepare(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_commit_limit")
        conn.execute("CREATE TABLE bench_commit_limit (id BIGSERIAL PRIMARY KEY, v INTEGER)")


def _cleanup(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_commit_limit")


def commits_per_second(db_url: str, clients: int, seconds: float = 4.0) -> tuple[float, str]:
    """Commits/s of single-row INSERTs with `clients` clients; and which tool measured it."""
    _prepare(db_url)
    try:
        exe = shutil.which("pgbench")
        if exe is not None:
            return _pgbench(exe, db_url, clients, seconds), "pgbench"
        return _python(db_url, clients, seconds), "psycopg"
    finally:
        _cleanup(db_url)


def _pgbench(exe: str, db_url: str, clients: int, seconds: float) -> float:
    parts = urlsplit(db_url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(SCRIPT)
    try:
        cmd = [
            exe,
            "-n",
            "-f",
            script.name,
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(max(1, round(seconds))),
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port or 5432),
            "-U",
            parts.username or "postgres",
            parts.path.lstrip("/") or "postgres",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    finally:
        Path(script.name).unlink(missing_ok=True)
    match = re.search(r"tps = ([\d.]+)", out.stdout)
    if match is None:
        raise RuntimeError(f"could not read pgbench's output: {out.stdout[-500:]}")
    return float(match.group(1))


def _client(
    db_url: str, seconds: float, counter_file: str, index: int, ready: Event, go: Event
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        ready.set()
        go.wait()
        done = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            conn.execute("INSERT INTO bench_commit_limit (v) VALUES (1)")
            done += 1
    Path(f"{counter_file}.{index}").write_text(str(done))


def _python(db_url: str, clients: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        counter = str(Path(tmp) / "count")
        fleet = Fleet.spawn(_client, clients, (db_url, seconds, counter))
        try:
            fleet.wait_ready()
            fleet.start()
            for process in fleet.processes:
                process.join(seconds + 30)
        finally:
            fleet.stop()
        total = sum(int(Path(f"{counter}.{i}").read_text()) for i in range(clients))
    return total / seconds
