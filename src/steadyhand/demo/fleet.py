"""The demo's worker processes: start them, SIGKILL one and replace it (as a crash would),
notice ones that exit on their own, and stop them all in order."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from steadyhand.demo.options import DemoError, DemoOptions

APP_REF = "steadyhand.demo.trip:app"


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child process: this very copy of steadyhand, plus `extra`."""
    src_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src_root, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    number: int
    process: subprocess.Popen[bytes]
    started_at: float
    log_path: Path


class Fleet:
    """The worker processes: start, SIGKILL one and replace it, notice crashes, stop all."""

    def __init__(self, options: DemoOptions, db_url: str, env: dict[str, str]) -> None:
        self.options = options
        self.command = [
            sys.executable,
            "-m",
            "steadyhand",
            "--log-level",
            "INFO",
            "worker",
            "--app",
            APP_REF,
            "--db",
            db_url,
            "--concurrency",
            str(options.concurrency),
            "--lease",
            str(options.lease),
            "--watchdog",
            "1",
        ]
        self.env = env
        self.log_dir = options.workdir / "logs"
        self.alive: list[WorkerProcess] = []
        self.started = 0
        self.killed = 0
        self.early_exits = 0

    def start_one(self) -> WorkerProcess:
        self.started += 1
        log_path = self.log_dir / f"worker-{self.started}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops workers in order
            )
        worker = WorkerProcess(self.started, process, time.monotonic(), log_path)
        self.alive.append(worker)
        return worker

    def kill_one(
        self, rng: random.Random, prefer: Collection[int] = ()
    ) -> tuple[WorkerProcess, WorkerProcess]:
        """SIGKILL a random worker (of `prefer`'s pids if one lives), like a crash; replace it."""
        victim = rng.choice([w for w in self.alive if w.process.pid in prefer] or self.alive)
        with contextlib.suppress(ProcessLookupError):
            victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        self.alive.remove(victim)
        self.killed += 1
        return victim, self.start_one()

    def replace_exited(self) -> list[tuple[WorkerProcess, int]]:
        """Restart workers that exited on their own; give up if they keep dying at once."""
        gone: list[tuple[WorkerProcess, int]] = []
        for worker in list(self.alive):
            code = worker.process.poll()
            if code is None:
                continue
            self.alive.remove(worker)
            gone.append((worker, code))
            if time.monotonic() - worker.started_at < 5.0:
                self.early_exits += 1
            if self.early_exits > 3:
                tail = worker.log_path.read_text(errors="replace")[-3000:]
                raise DemoError(f"worker processes keep exiting at start; last log:\n{tail}")
            self.start_one()
        return gone

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM everyone (they finish in-flight calls), then SIGKILL the stragglers."""
        for worker in self.alive:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
        deadline = time.monotonic() + timeout
        for worker in self.alive:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.alive.clear()
