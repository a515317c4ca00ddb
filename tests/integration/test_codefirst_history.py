"""`steadyhand explain --json` of a real code-first run replays with the test kit."""

from __future__ import annotations

import json

from click.testing import CliRunner

from steadyhand import Client
from steadyhand.cli.main import main
from steadyhand.store import Store
from steadyhand.testing import replay_history
from tests.apps.codefirst import app
from tests.conftest import running_worker


def test_an_explain_json_history_replays_and_catches_a_change(store: Store, store_url: str) -> None:
    client = Client(app, store)
    started = client.start("trip", {"vip": True, "script": {"car": ["transient", "ok"]}})
    with running_worker(app, store):
        assert client.wait(started.workflow_id, timeout=30).state == "completed"
    out = CliRunner().invoke(main, ["explain", started.workflow_id, "--json", "--db", store_url])
    assert out.exit_code == 0, out.output
    history = json.loads(out.stdout)
    report = replay_history(app, history)
    assert report.ok, report.problems
    assert report.differences == []
    assert report.runs >= 5
    changed = {**history, "input": {"script": history["input"]["script"]}}  # no longer vip
    problems = replay_history(app, changed).problems
    assert problems and "step book#4 (agent book)" in problems[0]
