"""Shared fixtures: a fresh store per test on SQLite and on PostgreSQL, and in-thread workers.

PostgreSQL tests use $STEADYHAND_TEST_PG, else the local server if it answers; each test
gets its own schema. With STEADYHAND_REQUIRE_PG=1 (CI) an unreachable server fails the
run instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest

from steadyhand import App, Worker, WorkerOptions, open_store
from steadyhand.store import Store

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
FAST = WorkerOptions(
    concurrency=8,
    lease_seconds=1.5,
    poll_interval=0.02,
    watchdog_interval=0.3,
    unwatched_grace=1.0,
)


def _pg_base() -> str | None:
    url = os.environ.get("STEADYHAND_TEST_PG", DEFAULT_PG)
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        if os.environ.get("STEADYHAND_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL tests are required but {url} is unreachable: {exc}")
        return None
    return url


_PG: list[str | None] = []


def pg_base() -> str | None:
    if not _PG:
        _PG.append(_pg_base())
    return _PG[0]


@contextmanager
def fresh_store_url(backend: str, folder: Path, prefix: str = "t") -> Iterator[str]:
    """The URL of an empty store on `backend`: a new SQLite file in `folder`, or a new
    PostgreSQL schema named `<prefix>_<random>` that is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'steadyhand.db'}"
        return
    base = pg_base()
    if base is None:
        pytest.skip("PostgreSQL not reachable: set STEADYHAND_TEST_PG or start the local server")
    schema = f"{prefix}_{secrets.token_hex(6)}"
    sep = "&" if "?" in base else "?"
    # Sessions carry the schema as their application_name, so a test that cuts connections
    # off (test_crashes) can aim at its own sessions and never at other tests' or users'.
    yield f"{base}{sep}application_name=steadyhand-test-{schema}&schema={schema}"  # schema last
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def application_name(url: str) -> str:
    """The application_name the sessions of the store at `url` carry."""
    return dict(parse_qsl(urlsplit(url).query))["application_name"]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store, once per backend."""
    with fresh_store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@contextmanager
def running_worker(
    app: App, store: Store, options: WorkerOptions = FAST, metrics: object = None
) -> Iterator[Worker]:
    """A worker on a background thread, stopped (gracefully) on exit."""
    worker = Worker(app, store, options, metrics)  # type: ignore[arg-type]
    thread = threading.Thread(
        target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True
    )
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "worker did not stop within 30 s"
