"""Worker processes for tests: `steadyhand worker` in a subprocess, optionally with its
wall clock shifted by libfaketime (Debian's `faketime` package), stopped by pid."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from steadyhand.chaos.workerfaults import faketime_env as shifted_env

ROOT = Path(__file__).resolve().parents[1]
STEADYHAND = str(Path(sys.executable).with_name("steadyhand"))


def faketime_env(offset: str) -> dict[str, str]:
    """Environment that shifts a process's clocks by `offset` (e.g. "+40s", "-40s")."""
    env = shifted_env(offset)
    if env is not None:
        return env
    if os.environ.get("STEADYHAND_REQUIRE_PG") == "1" or shutil.which("faketime"):
        pytest.fail("libfaketime is not where Debian puts it; install the faketime package")
    pytest.skip("libfaketime missing: apt-get install faketime (.ci/run installs it)")


@contextmanager
def worker_process(
    store_url: str,
    log: Path,
    *,
    app: str = "tests.apps.scripted:app",
    lease: float = 1.5,
    env: Mapping[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """A `steadyhand worker` process, killed (by pid) on exit if still running."""
    command = [
        STEADYHAND, "worker", "--app", app, "--db", store_url,
        "--concurrency", "4", "--lease", str(lease), "--poll", "0.02", "--watchdog", "0.3",
        *extra,
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
