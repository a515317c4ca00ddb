"""`steadyhand explain --json` of a real code-first run replays with the test kit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from steadyhand import Client
from steadyhand.cli.main import main
from steadyhand.store import Store
from steadyhand.testing import Simulator, replay_history
from tests.apps import codefirst
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


def test_replay_check_passes_good_histories_and_fails_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(codefirst.VERSION, "changing", 1)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(Simulator(app).run("trip", {}).history()))
    waiting = tmp_path / "waiting.json"
    waiting.write_text(json.dumps(Simulator(app).run("changing").history()))
    args = ["replay-check", "--app", "tests.apps.codefirst:app", str(good), str(waiting)]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("ok ") == 2
    monkeypatch.setitem(codefirst.VERSION, "changing", 2)
    broken = CliRunner().invoke(main, args)
    assert broken.exit_code == 3, broken.output
    assert "BREAKS" in broken.output and "wf.patched" in broken.output
    missing = CliRunner().invoke(main, [*args[:3], str(tmp_path / "nope.json")])
    assert missing.exit_code == 2
