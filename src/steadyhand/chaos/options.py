"""The chaos run's options and defaults, kept free of heavy imports so that registering the
`chaos` command costs the other commands nothing (like the demo's options).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from steadyhand.demo.options import DemoOptions

if TYPE_CHECKING:
    from steadyhand.chaos.disruptions import Disruption

SQLITE_FILE = "chaos.db"
PG_SCHEMA = "steadyhand_chaos"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TERMINATE_SCOPES = ("run", "database")


@dataclass(frozen=True)
class ChaosOptions:
    """How hard to push; the defaults are the long run of `make chaos` (per backend).

    `db` None means a store the harness owns and resets: a fresh SQLite file in `workdir`,
    or (with `backend="postgresql"`) the schema `steadyhand_chaos` of `pg_url`, dropped first.
    """

    workflows: int = 2000
    rate: float = 10.0  # trips started per second
    workers: int = 4
    concurrency: int = 16
    seed: int = 1
    backend: str = "sqlite"  # used only when db is None
    db: str | None = None
    pg_url: str = DEFAULT_PG
    faults: str = "hostile"
    kill_every: float = 1.5  # mean seconds between SIGKILLs
    min_kills: int = 50  # keep killing (after the last start) until this many
    lease: float = 3.0
    disruptions: int = 3  # connection kills (PostgreSQL) or write-lock holds (SQLite)
    restarts: int = 1  # real PostgreSQL server restarts (pg_ctlcluster); 0 in tests
    # Worker disruptions (chaos/workerfaults.py): clock 40 s fast and slow, SIGSTOP longer
    # than the lease, a proxy stalling one worker's PostgreSQL traffic (PostgreSQL only).
    worker_faults: tuple[str, ...] = ("skew_fast", "skew_slow", "pause", "partition")
    lock_hold: tuple[float, float] = (2.0, 5.0)  # seconds the SQLite write lock is held
    terminate_scope: str = "database"  # "run": only this run's connections
    pg_cluster: tuple[str, str] = ("15", "main")
    workdir: Path = Path("steadyhand-chaos")
    timeout: float = 1800.0
    # `steadyhand failover`: strikes `failovers` times, spread over the arrivals (kill the
    # primary, promote the standby); given the seconds into the run, returns what happened.
    failover: Callable[[float], Disruption] | None = None
    failovers: int = 1

    def __post_init__(self) -> None:
        if self.workflows < 1 or self.workers < 1 or self.concurrency < 1:
            raise ValueError("--workflows, --workers and --concurrency must be at least 1")
        if self.rate <= 0 or self.kill_every <= 0 or self.lease <= 0 or self.timeout <= 0:
            raise ValueError("--rate, --kill-every, the lease and --timeout must be positive")
        if self.disruptions < 0 or self.restarts < 0 or self.min_kills < 0 or self.failovers < 0:
            raise ValueError(
                "--disruptions, --restarts, --min-kills and --failovers cannot be negative"
            )
        if self.backend not in ("sqlite", "postgresql"):
            raise ValueError(f"--backend must be sqlite or postgresql, not {self.backend!r}")
        if self.terminate_scope not in TERMINATE_SCOPES:
            raise ValueError(f"--terminate-scope must be one of {', '.join(TERMINATE_SCOPES)}")
        unknown = set(self.worker_faults) - {"skew_fast", "skew_slow", "pause", "partition"}
        if unknown:
            raise ValueError(f"unknown worker disruptions: {', '.join(sorted(unknown))}")
        low, high = self.lock_hold
        if not 0 < low <= high:
            raise ValueError("the lock hold must be a range 0 < low <= high seconds")

    @property
    def worker_faults_for_dialect(self) -> tuple[str, ...]:
        if self.dialect == "postgresql":
            return self.worker_faults
        return tuple(kind for kind in self.worker_faults if kind != "partition")

    @property
    def owns_store(self) -> bool:
        return self.db is None

    @property
    def db_url(self) -> str:
        if self.db is not None:
            return self.db
        if self.backend == "postgresql":
            sep = "&" if "?" in self.pg_url else "?"
            return f"{self.pg_url}{sep}schema={PG_SCHEMA}"
        return f"sqlite:///{(self.workdir / SQLITE_FILE).resolve()}"

    @property
    def dialect(self) -> str:
        return "postgresql" if self.db_url.startswith(("postgresql:", "postgres:")) else "sqlite"

    def demo_options(self) -> DemoOptions:
        """The demo's view of this run: what its services, fleet and workdir helpers need."""
        return DemoOptions(
            trips=self.workflows,
            rate=self.rate,
            workers=self.workers,
            concurrency=self.concurrency,
            seed=self.seed,
            db=self.db_url,
            faults=self.faults,
            kill_workers=True,
            kill_every=self.kill_every,
            lease=self.lease,
            workdir=self.workdir,
            timeout=self.timeout,
        )
