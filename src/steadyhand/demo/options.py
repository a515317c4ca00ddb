"""The demo's options and defaults, kept free of heavy imports so that the command line
starts quickly for every other command (the demo module is registered on the main group).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DB_FILE = "demo.db"
PROFILE_NAMES = ("none", "flaky", "hostile")
"""The fault profiles of faults.PROFILES, by name (a test keeps the two in step)."""


class DemoError(RuntimeError):
    """The demo could not run (a service or worker would not start); the message says why."""


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo; the defaults are the convincing run `make demo` shows."""

    trips: int = 1000
    rate: float = 25.0  # trips started per second (0: all at once), as customers arrive
    workers: int = 3
    concurrency: int = 16  # tasks in flight per worker process
    seed: int = 1
    db: str | None = None  # None: a fresh SQLite file in `workdir`
    faults: str = "flaky"
    kill_workers: bool = True
    kill_every: float = 4.0  # mean seconds between SIGKILLs
    lease: float = 3.0  # short, so a killed worker's calls are recovered within seconds
    workdir: Path = Path("steadyhand-demo")
    timeout: float = 240.0  # give up waiting (and report the unfinished trips) after this

    def __post_init__(self) -> None:
        if self.trips < 1 or self.workers < 1 or self.concurrency < 1:
            raise ValueError("--trips, --workers and the concurrency must be at least 1")
        if self.faults not in PROFILE_NAMES:
            raise ValueError(
                f"--faults must be one of {', '.join(PROFILE_NAMES)}, not {self.faults!r}"
            )
        if self.rate < 0:
            raise ValueError("--rate must be 0 (all at once) or a positive number of trips/s")
        if self.kill_every <= 0 or self.lease <= 0 or self.timeout <= 0:
            raise ValueError("--kill-every, the lease and --timeout must be positive seconds")

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.workdir / DB_FILE}"
