"""How things are served (issue 15 §10, §12, §14): worker metrics on loopback by default,
uvicorn limits a slow client cannot stretch, dependency floors past known advisories."""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import click
import httpx
import uvicorn
from starlette.applications import Starlette

from steadyhand.cli.run import worker
from steadyhand.ops.metrics import WorkerMetrics
from steadyhand.web.serving import HeadTimeoutProtocol, ServeLimits
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
    assert issubclass(config.http, HeadTimeoutProtocol)  # type: ignore[arg-type]
    assert config.http.head_timeout == 10.0  # type: ignore[union-attr]


@contextmanager
def served(limits: ServeLimits) -> Iterator[int]:
    """An empty Starlette app under a real uvicorn with `limits`; yields its port."""
    port = free_port()
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
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_slow_clients_cannot_take_every_connection() -> None:
    """Two clients that send half a request and stall hold two of three places; more
    requests are answered 503 at once, not queued."""
    stalled: list[socket.socket] = []
    with served(ServeLimits(max_connections=3, head_timeout=60)) as port:
        try:
            for _ in range(3):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                stalled.append(sock)
            time.sleep(0.2)  # let the server accept them (ordering only, not a threshold)
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 503
        finally:
            for sock in stalled:
                sock.close()


def test_a_request_head_sent_byte_by_byte_is_cut_off() -> None:
    """A client dripping its head is disconnected after `head_timeout`, however often it
    sends a byte; a prompt client on the same connection is served, then waited for only
    as long again."""
    with served(ServeLimits(head_timeout=0.5)) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            began = time.monotonic()
            closed = False
            for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.05)
                if time.monotonic() - began > 10:
                    break
            if not closed:
                sock.settimeout(10)
                closed = sock.recv(100) == b""
            assert closed, "the server kept a dripping client"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 404")


def _floor(name: str) -> tuple[int, ...]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():  # e.g. [web]
        specs += extra
    for spec in specs:
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
