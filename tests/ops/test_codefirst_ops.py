"""What operators see of code-first workflows, on both backends: `explain` lists the steps
as discovered with parallel branches grouped; `status` shows sleeps and waits with deadlines."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from starlette.testclient import TestClient

from steadyhand import Client
from steadyhand.cli.main import main
from steadyhand.store import Store
from steadyhand.web.app import create_app
from tests.apps.codefirst import app, wait_until
from tests.conftest import running_worker


def cli(url: str, *args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_explain_shows_discovered_steps_with_parallel_branches(
    store: Store, store_url: str
) -> None:
    client = Client(app, store)
    started = client.start("trip", {"vip": True, "script": {"car": ["transient", "ok"]}})
    with running_worker(app, store):
        assert client.wait(started.workflow_id, timeout=30).state == "completed"
    plan = cli(store_url, "explain", started.workflow_id)["plan"]
    assert [(line["name"], line["action"], line["attempts"], line["group"]) for line in plan] == [
        ("book", "succeeded", 1, None),
        ("book#2", "succeeded", 1, 1),  # hotel and car: side by side
        ("book#3", "succeeded", 2, 1),
        ("book#4", "succeeded", 1, None),
    ]
    text = CliRunner().invoke(main, ["explain", started.workflow_id, "--db", store_url],
                              env={"COLUMNS": "200"}).output  # fmt: skip
    assert "side by side" in text and "∥ 1" in text
    with TestClient(create_app(store)) as web:
        page = web.get(f"/workflows/{started.workflow_id}")
    assert page.status_code == 200
    assert "book#3" in page.text and "&#8741; 1" in page.text and "agent book" in page.text


def test_status_shows_sleeps_and_waits_with_their_deadlines(store: Store, store_url: str) -> None:
    client = Client(app, store)
    waiting = client.start("booked_then_wait", {"timeout": 600})
    sleeping = client.start("sleeper", 600)
    with running_worker(app, store):
        wait_until(lambda: client.view(waiting.workflow_id).has("wait_began"))
        wait_until(lambda: client.view(sleeping.workflow_id).has("sleep_began"))
    waits = cli(store_url, "status", waiting.workflow_id)
    assert waits["in_progress"].startswith("wait paid: waiting (event paid, deadline ")
    assert [line["kind"] for line in waits["steps"]] == ["step", "wait"]
    sleeps = cli(store_url, "status", sleeping.workflow_id)
    assert sleeps["in_progress"].startswith("sleep sleep: sleeping (until ")
    text = CliRunner().invoke(main, ["status", sleeping.workflow_id, "--db", store_url]).output
    assert "in progress" in text and "until" in text
    client.signal("paid", {"ok": 1}, workflow_id=waiting.workflow_id)
    with running_worker(app, store):
        assert client.wait(waiting.workflow_id, timeout=20).state == "completed"
    lines = cli(store_url, "explain", waiting.workflow_id)["plan"]
    assert lines[1]["action"] == "received"
