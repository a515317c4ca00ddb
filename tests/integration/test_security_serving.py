"""How things are served (issue 15 §10, §12, §14): worker metrics on loopback by default,
uvicorn limits a slow client cannot stretch, dependency floors past known advisories."""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from importlib import metadata
from pathlib import Path

import click
import httpx
import uvicorn
from starlette.applications import Starlette

from steadyhand.cli.run import worker
from steadyhand.ops.metrics import WorkerMetrics
from steadyhand.web.serving import ServeLimits
from tests.ops.conftest import free_port

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_worker_metrics_listen_on_loopback_by_default() -> None:
    option = next(p for p in worker.params if p.name == "metrics_host")
    assert isinstance(option, click.Option) and option.default == "127.0.0.1"
    port = free_port()
    stop = WorkerMetrics().serve(port)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        ]
        assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1, not 0.0.0.0
    finally:
        stop()


def test_served_apps_get_connection_and_header_limits() -> None:
    options = ServeLimits().uvicorn_options()
    config = uvicorn.Config(Starlette(), **options)  # type: ignore[arg-type]
    assert config.limit_concurrency == 200
    assert config.h11_max_incomplete_event_size == 16 * 1024
    assert config.timeout_keep_alive == 5
    assert config.server_header is False


def test_slow_clients_cannot_take_every_connection() -> None:
    """A real uvicorn with a connection cap of 3: two clients that send half a request
    and stall hold two places; more requests are answered 503 at once, not queued."""
    port = free_port()
    limits = ServeLimits(max_connections=3)
    config = uvicorn.Config(
        Starlette(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        **limits.uvicorn_options(),  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stalled: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            stalled.append(sock)
        time.sleep(0.2)  # let the server accept them (no threshold: only ordering)
        answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert answer.status_code == 503
    finally:
        for sock in stalled:
            sock.close()
        server.should_exit = True
        thread.join(timeout=10)


def _floor(name: str) -> tuple[int, ...]:
    for spec in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]:
        if spec.lower().startswith(name + ">="):
            return tuple(int(x) for x in spec.split(">=", 1)[1].split("."))
    raise AssertionError(f"{name} has no floor in pyproject.toml")


def test_dependency_floors_are_past_known_advisories() -> None:
    assert _floor("starlette") >= (0, 49, 1)
    assert _floor("jinja2") >= (3, 1, 6)
    assert _floor("h11") >= (0, 16)
    for name in ("starlette", "jinja2", "h11"):
        installed = tuple(int(x) for x in metadata.version(name).split(".")[:3])
        assert installed >= _floor(name), name
