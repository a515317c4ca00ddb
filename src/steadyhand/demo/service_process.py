"""Starting and stopping one demo service as a real OS process on a free 127.0.0.1 port.

Used by the demo and the tests, so that faults like dropped connections and crashes are
real network events rather than mocks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx


class ServiceStartError(RuntimeError):
    """The service process died or did not become healthy in time; the message has its log."""


@dataclass
class RunningService:
    """A live service process; stop() it, or use it as a context manager."""

    kind: str
    url: str
    ledger_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, so uvicorn shuts down cleanly; SIGKILL if it does not within timeout."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
        return self.process.wait()

    def kill(self) -> int:
        """Crash the service (SIGKILL), as a real outage would; its ledger stays on disk."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGKILL)
        return self.process.wait()

    def __enter__(self) -> RunningService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def start_service(
    kind: str, workdir: Path, faults: str, seed: int, timeout: float = 10, *, port: int = 0
) -> RunningService:
    """Launch `python -m steadyhand.demo.services` and return once /health answers.

    Files live in workdir as KIND.db, KIND.port and KIND.log, so starting the same kind
    again in the same workdir resumes its ledger (pass the old port to keep its URL).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ledger_path = workdir / f"{kind}.db"
    port_file = workdir / f"{kind}.port"
    log_path = workdir / f"{kind}.log"
    port_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "steadyhand.demo.services",
        f"--kind={kind}",
        f"--ledger={ledger_path}",
        f"--faults={faults}",
        f"--seed={seed}",
        f"--port={port}",
        f"--port-file={port_file}",
    ]
    # The child must import this very copy of steadyhand, installed or not.
    src_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src_root, env.get("PYTHONPATH")]))
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    service = RunningService(kind, "", ledger_path, process, log_path)
    try:
        service.url = f"http://127.0.0.1:{_wait_for_port(service, port_file, timeout)}"
        _wait_for_health(service, time.monotonic() + timeout)
    except BaseException:
        service.kill()
        raise
    return service


def _wait_for_port(service: RunningService, port_file: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ServiceStartError(
                f"{service.kind} service exited with {service.process.returncode}:\n"
                + _log_tail(service.log_path)
            )
        if port_file.exists():
            return int(port_file.read_text().strip())
        time.sleep(0.02)
    raise ServiceStartError(
        f"{service.kind} service wrote no port in {timeout}s:\n" + _log_tail(service.log_path)
    )


def _wait_for_health(service: RunningService, deadline: float) -> None:
    with httpx.Client(timeout=1.0) as client:
        while True:
            try:
                if client.get(f"{service.url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if service.process.poll() is not None or time.monotonic() > deadline:
                raise ServiceStartError(
                    f"{service.kind} service at {service.url} never became healthy:\n"
                    + _log_tail(service.log_path)
                )
            time.sleep(0.05)


def fetch_ledger(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """Every booking a service holds, plus double_booked (keys booked twice; must be empty)."""
    response = httpx.get(f"{url}/ledger", timeout=timeout)
    response.raise_for_status()
    ledger: dict[str, Any] = response.json()
    return ledger


def set_faults(url: str, profile: str, timeout: float = 5.0, **numbers: Any) -> dict[str, Any]:
    """Switch a running service's fault profile; numbers override fields of FaultProfile."""
    response = httpx.post(
        f"{url}/admin/faults", json={"profile": profile, **numbers}, timeout=timeout
    )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer
