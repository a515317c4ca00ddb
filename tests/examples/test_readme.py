"""The README's snippets, run as written, on both backends.

The complete example must be examples/trips.py word for word. The other Python blocks run
in order in one namespace (as a reader pastes them into one session), next to the booking
services the example talks to and a worker. Every shell command runs too, with `<id>`
replaced by the workflow the Python snippets started: one-shot commands must end without a
usage error or a traceback; long-running ones (worker, dashboard) must come up, and are
then stopped. The SQL block runs on PostgreSQL. Only the two set-up `make` commands are
left out (`make test` is what runs this).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.store.pg_connect import split_url
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).parents[2]
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
LONG_RUNNING = ("steadyhand worker", "steadyhand dashboard", "steadyhand serve")
BIN = Path(sys.executable).parent


def blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [body for lang, body in BLOCK.findall(text) if lang == language]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_complete_example_is_examples_trips() -> None:
    assert blocks("python")[0] == (ROOT / "examples" / "trips.py").read_text()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, str]]:
    from examples.bookings_service import serve

    servers = {name: serve(0, str(tmp_path / f"{name}.db")) for name in ("flights", "hotels")}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    yield {name: f"http://127.0.0.1:{s.server_address[1]}" for name, s in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=10)


def test_every_snippet_runs_as_written(
    store_url: str,
    tmp_path: Path,
    services: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    shutil.copy(ROOT / "examples" / "trips.py", workdir / "trips.py")
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.setenv("FLIGHTS_URL", services["flights"])
    monkeypatch.setenv("HOTELS_URL", services["hotels"])
    monkeypatch.delitem(sys.modules, "trips", raising=False)
    import trips  # type: ignore[import-not-found]

    def local(code: str) -> str:
        return code.replace("sqlite:///trips.db", store_url)

    def local_shell(code: str) -> str:  # the test's URL holds '&': quote it for the shell
        return code.replace("sqlite:///trips.db", shlex.quote(store_url))

    store = open_store(store_url)
    namespace: dict[str, Any] = {}
    asyncio_runs: list[str] = []
    try:
        with running_worker(trips.app, store):
            for code in blocks("python")[1:]:
                if "await " in code:  # an asyncio service's snippet: run on an event loop
                    text = local(code).replace("postgresql://…", store_url)
                    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
                    service = dict(namespace)  # its `client` is async: the next ones use sync
                    awaited = eval(compile(text, "README.md", "exec", flags=flags), service)
                    if inspect.iscoroutine(awaited):
                        asyncio.run(awaited)
                    asyncio_runs.append(service["status"].state)
                    continue
                exec(compile(local(code), "README.md", "exec"), namespace)
            assert asyncio_runs == ["completed"]  # the asyncio snippet waited for its end
            workflow_id = namespace["started"].workflow_id
            assert Client(trips.app, store).status(workflow_id).state == "completed"
            if store.dialect == "postgresql":
                run_sql(store, store_url, trips.app)
        if any("replay-check --app flows:app saved/" in code for code in blocks("sh")):
            save_code_first_history(store, workdir)
        for code in blocks("sh"):
            if code.lstrip().startswith("make "):
                continue  # the set-up commands: `make test` is what runs this test
            run_shell(local_shell(code.replace("<id>", workflow_id)), workdir)
    finally:
        store.close()


FLOWS = """
from steadyhand import App

app = App()


@app.workflow()
async def greet(wf, input):
    return {"hello": input}
"""


def save_code_first_history(store: Any, workdir: Path) -> None:
    """`flows:app` and `saved/*.json` in the README stand for the reader's code-first app and
    histories saved with `explain --json`: make one of each, as the reader would."""
    (workdir / "flows.py").write_text(FLOWS)
    sys.modules.pop("flows", None)
    import flows  # type: ignore[import-not-found]

    client = Client(flows.app, store)
    started = client.start("greet", "ada")
    with running_worker(flows.app, store):
        assert client.wait(started.workflow_id, timeout=30).state == "completed"
    saved = workdir / "saved"
    saved.mkdir()
    result = CliRunner().invoke(main, ["explain", started.workflow_id, "--db", store.url, "--json"])
    assert result.exit_code == 0, result.output
    (saved / f"{started.workflow_id}.json").write_text(result.stdout)


def run_sql(store: Any, store_url: str, app: Any) -> None:
    Client(app, store).engine.publish_plans()
    base, schema = split_url(store_url)
    with psycopg.connect(base, autocommit=True) as conn:
        for statement in blocks("sql")[0].split(";"):
            if statement.strip():
                conn.execute(statement.replace("steadyhand.", f"{schema}.")).fetchall()


def run_shell(code: str, workdir: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "COLUMNS": "120"}
    (workdir / "dashboard.token").write_text("s3cret-t0ken-of-32-characters-at-least\n")
    (workdir / "trip.json").write_text('{"from": "LIS", "to": "OSL"}')  # the reader's files
    (workdir / "event.json").write_text('{"plan": "pro"}')
    for raw in code.replace("\\\n", " ").splitlines():
        line = raw.split("  #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("pip ", "make ")):
            continue  # installing and set-up: `make test` is what runs this test
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").split("#", 1)[0].strip().partition("=")
            env[name] = shlex.split(value)[0] if value else value  # as the shell would
            continue
        if any(command in line for command in LONG_RUNNING):
            run_long(line, workdir, env)
            continue
        done = subprocess.run(
            ["bash", "-c", line],
            check=False,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = done.stdout + done.stderr
        assert "Traceback" not in output, f"{line}\n{output}"
        # 4: no such workflow (a key the reader's own events would have created); 5: the
        # action does not apply (e.g. retrying a completed workflow), as documented.
        assert done.returncode in (0, 4, 5), f"{line} exited {done.returncode}\n{output}"


def run_long(line: str, workdir: Path, env: dict[str, str]) -> None:
    """Start a serving command, wait until it serves, and stop it (by its process group)."""
    port = None
    if "dashboard" in line:
        port = free_port()
        if "--port" in line:
            line = re.sub(r"--port \d+", f"--port {port}", line)
        else:
            line += f" --port {port}"
    log = workdir / f"serving-{free_port()}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            ["bash", "-c", line],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not serving(log, port):
            assert process.poll() is None, f"{line} exited {process.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"{line} did not come up within 30 s"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text(), f"{line}\n{log.read_text()}"


def serving(log: Path, port: int | None) -> bool:
    if port is not None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return True  # it answers (an --allowed-host it does not know gets a refusal)
        except httpx.HTTPError:
            return False
    # A worker says so once it has opened the store.
    return " started on " in log.read_text()


def test_shell_lines_name_their_store() -> None:
    """Every steadyhand command in the README says which store it means (or its block
    exports $STEADYHAND_DB first), so a pasted line never creates a stray steadyhand.db."""
    for code in blocks("sh"):
        exported = "export STEADYHAND_DB=" in code
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#", 1)[0]) if line.strip() else []
            while words and "=" in words[0]:  # VAR=value before the command
                words = words[1:]
            if words[:1] == ["steadyhand"] and not exported:
                assert "--db" in words, line
