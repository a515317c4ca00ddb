"""Packaging: the extras people deploy with, an SPDX license with its file, and a core that
imports without the web, OpenTelemetry or PostgreSQL extras."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_extras_match_how_people_deploy() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {"postgres", "web", "otel", "demo"} <= set(extras)
    assert any(d.startswith("psycopg[binary]") for d in extras["postgres"])
    assert any(d.startswith("psycopg>=") for d in project["dependencies"])
    assert not any(
        d.startswith(("starlette", "uvicorn", "jinja2")) for d in project["dependencies"]
    )
    assert any(d.startswith("opentelemetry-sdk") for d in extras["otel"])
    assert not any(d.startswith("pydantic") for d in project["dependencies"])
    assert "steadyhand[postgres,web,otel,demo]" in extras["test"], "make test installs all"
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_the_core_runs_on_sqlite_without_the_optional_extras(tmp_path: Path) -> None:
    """Import steadyhand, start and run a workflow with the extras' modules made unimportable."""
    script = f"""
import sys
for name in ("starlette", "uvicorn", "jinja2", "httpx", "opentelemetry", "pydantic"):
    sys.modules[name] = None  # import fails, as if not installed
from steadyhand import App, Step, Worker
app = App()
@app.agent()
def hello(ctx):
    return "hi"
app.workflow("w", [Step("s", hello)])
client = app.connect("sqlite:///{tmp_path / "core.db"}")
wid = client.start("w").workflow_id
worker = Worker(app, client.store)
import threading
t = threading.Thread(target=worker.run, kwargs={{"install_signal_handlers": False}})
t.start()
print(client.wait(wid, timeout=30).state)
worker.stop(); t.join()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed"
