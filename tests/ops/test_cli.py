"""The operator commands on both backends: list, status, explain, stats, retry, exit codes.

Tests run in file order against one populated store per backend; the ones that add or change
workflows come last.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.ops.reports import STATES
from tests.apps.scripted import app
from tests.conftest import running_worker
from tests.ops.conftest import Scenario, run_trips
from tests.waiting import eventually


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--db", url], env={"COLUMNS": "220"})


def as_json(url: str, *args: str) -> Any:
    result = run(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ids(url: str, *args: str) -> list[str]:
    return [row["id"] for row in as_json(url, "list", *args)["workflows"]]


def test_list_shows_every_workflow_and_filters_by_state_and_name(scenario: Scenario) -> None:
    url = scenario.url
    rows = as_json(url, "list")["workflows"]
    states = {row["id"]: row["state"] for row in rows}
    assert states == {
        scenario.completed: "completed",
        scenario.compensated: "compensated",
        scenario.failed: "failed",
    }
    assert ids(url, "--state", "failed") == [scenario.failed]
    assert ids(url, "--state", "completed") == [scenario.completed]
    assert ids(url, "--state", "compensated") == [scenario.compensated]
    assert ids(url, "--state", "running") == []
    assert ids(url, "--state", "stuck") == []
    assert len(ids(url, "--name", "trip")) == 3
    assert ids(url, "--name", "nope") == []
    assert ids(url, "--state", "failed", "--since", "1h") == [scenario.failed]
    assert ids(url, "--since", "2099-01-01T00:00") == []
    failed = next(row for row in rows if row["id"] == scenario.failed)
    assert "could not compensate hotel" in failed["reason"]
    text = run(url, "list", "--state", "failed")
    assert text.exit_code == 0 and scenario.failed in text.output and "failed" in text.output


def test_list_pages_by_cursor_without_gaps_or_repeats(scenario: Scenario) -> None:
    seen: list[str] = []
    cursor: list[str] = []
    for _ in range(5):
        page = as_json(scenario.url, "list", "--limit", "1", *cursor)
        seen += [row["id"] for row in page["workflows"]]
        if page["next_cursor"] is None:
            break
        cursor = ["--cursor", page["next_cursor"]]
    assert seen == [scenario.failed, scenario.compensated, scenario.completed]


def test_status_says_where_it_stands_and_why(scenario: Scenario) -> None:
    failed = as_json(scenario.url, "status", scenario.failed)
    assert failed["state"] == "failed" and failed["stuck"] is None
    assert "could not compensate hotel" in failed["reason"]
    done = as_json(scenario.url, "status", scenario.completed)
    assert done["state"] == "completed" and set(done["result"]) == {"flight", "hotel", "car"}
    text = run(scenario.url, "status", scenario.failed)
    assert text.exit_code == 0 and "could not compensate hotel" in text.output


def test_explain_tells_the_story_with_every_decision_and_the_verdict(scenario: Scenario) -> None:
    story = as_json(scenario.url, "explain", scenario.failed)
    assert story["status"]["state"] == "failed"
    assert story["verdict"].startswith("FAILED: could not compensate hotel")
    assert f"steadyhand retry {scenario.failed}" in story["verdict"]
    kinds = [f["kind"] for f in story["facts"]]
    assert kinds[0] == "workflow_started" and kinds[-1] == "workflow_failed"
    runs = [f for f in story["facts"] if f["kind"] == "supervisor_ran"]
    assert runs and all(f["why"] and f["saw"] and f["decided"] for f in runs)
    assert any("permanent" in f["why"] for f in runs if "rolling back" in f["why"])
    plan = {line["name"]: line for line in story["plan"]}
    assert plan["car"]["action"] == "gave up" and plan["hotel"]["compensation"] == "gave up"
    assert plan["flight"]["compensation"] == "to do"  # undone newest first: hotel blocked it
    text = run(scenario.url, "explain", scenario.failed)
    assert text.exit_code == 0
    for words in ("timeline", "supervisor run", "why:", "FAILED", "car", "rolling back"):
        assert words in text.output, words


def test_stats_counts_states_calls_and_the_queue(scenario: Scenario) -> None:
    stats = as_json(scenario.url, "stats", "--window", "1h")
    assert stats["states"] == {
        "running": 0,
        "waiting": 0,
        "compensating": 0,
        "completed": 1,
        "compensated": 1,
        "failed": 1,
    }
    assert stats["started"] == 3 and stats["ended"] == 3 and sum(stats["throughput"]) == 3
    assert stats["stuck"] == 0 and stats["queue_depth"] == 0 and stats["leased"] == 0
    calls = {(a["phase"], a["step"]): a for a in stats["attempts"]}
    assert calls[("action", "car")]["outcomes"] == {"failed": 2, "succeeded": 1}
    assert calls[("compensation", "hotel")]["outcomes"]["failed"] == 4
    assert calls[("compensation", "hotel")]["retries"] == 3
    assert stats["compensations_began"] == 2
    assert stats["decisions"] > 10 and stats["decision_ms"]["max"] >= stats["decision_ms"]["p50"]
    text = run(scenario.url, "stats")
    assert text.exit_code == 0 and "queue" in text.output and "calls by step" in text.output


def test_exit_codes_mean_something(scenario: Scenario) -> None:
    assert run(scenario.url, "status", "nope").exit_code == 4
    assert run(scenario.url, "explain", "nope").exit_code == 4
    assert run(scenario.url, "retry", scenario.completed).exit_code == 5
    assert run(scenario.url, "list", "--since", "someday").exit_code == 2
    assert run(scenario.url, "list", "--cursor", "garbage").exit_code == 2
    assert run(scenario.url, "stats", "--window", "0s").exit_code == 2
    assert run(scenario.url, "list", "--state", "sleeping").exit_code == 2


def test_a_workflow_nobody_runs_is_stuck_in_list_status_and_stats(scenario: Scenario) -> None:
    store = open_store(scenario.url)
    try:
        started = Client(app, store).start("one", {"ledger": scenario.ledger})
    finally:
        store.close()
    fast = ("--stuck-after", "0.1")
    # No worker: its first call becomes overdue (wait for that, not for a guessed time).
    eventually(lambda: as_json(scenario.url, "stats", *fast)["stuck"] == 1, what="stuck")
    rows = as_json(scenario.url, "list", "--state", "stuck", *fast)["workflows"]
    assert [r["id"] for r in rows] == [started.workflow_id]
    assert "due for" in rows[0]["stuck"] and "no worker took it" in rows[0]["stuck"]
    status = as_json(scenario.url, "status", started.workflow_id, *fast)
    assert status["state"] == "running" and "no worker took it" in status["stuck"]
    assert as_json(scenario.url, "stats", *fast)["stuck"] == 1
    assert as_json(scenario.url, "stats")["stuck"] == 0  # not after the default 5 minutes
    assert ids(scenario.url, "--state", "stuck") == []
    explained = run(scenario.url, "explain", started.workflow_id, *fast)
    assert "STUCK" in explained.output


def test_retry_from_the_cli_resumes_a_failed_workflow(scenario: Scenario) -> None:
    result = run(scenario.url, "retry", scenario.failed, "--reason", "hotel API fixed")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{scenario.failed}: compensating"
    assert scenario.failed not in ids(scenario.url, "--state", "failed")
    assert scenario.failed in ids(scenario.url, "--state", "compensating")
    story = as_json(scenario.url, "explain", scenario.failed)
    retry = [f for f in story["facts"] if f["kind"] == "retry_requested"]
    assert retry and "hotel API fixed" in retry[0]["text"] and story["rounds"] == 1


def test_every_state_filter_agrees_with_status(scenario: Scenario) -> None:
    """The SQL that filters by state and `derive_status` are two readings of one definition."""
    store = open_store(scenario.url)
    try:
        client = Client(app, store)
        everything = ids(scenario.url)
        truth = {workflow_id: client.status(workflow_id).state for workflow_id in everything}
    finally:
        store.close()
    assert len(set(truth.values())) >= 4
    for state in STATES:
        listed = set(ids(scenario.url, "--state", state))
        assert listed == {w for w, s in truth.items() if s == state}, state


def test_cancel_of_a_completed_workflow_exits_5_already_ended(scenario: Scenario) -> None:
    result = run(scenario.url, "cancel", scenario.completed, "--reason", "too late")
    assert result.exit_code == 5
    assert "already ended completed" in result.output
    assert as_json(scenario.url, "status", scenario.completed)["state"] == "completed"


def test_cancel_from_the_cli_rolls_back_a_failed_workflow(scenario: Scenario) -> None:
    # undo gives up once
    script: dict[str, object] = {"car": ["permanent"], "undo:hotel": ["transient"] * 4}
    (failed,) = run_trips(scenario.url, scenario.ledger, [script])
    assert as_json(scenario.url, "status", failed)["state"] == "failed"
    result = run(scenario.url, "cancel", failed, "--reason", "roll it back")
    assert result.exit_code == 0, result.output
    store = open_store(scenario.url)
    try:
        client = Client(app, store)
        with running_worker(app, store):
            status = client.wait(failed, timeout=20)
    finally:
        store.close()
    assert status.state == "compensated"
    story = as_json(scenario.url, "explain", failed)
    assert any(
        "roll it back" in f["text"] for f in story["facts"] if f["kind"] == "cancel_requested"
    )
    rollback = [f for f in story["facts"] if f["kind"] == "retry_requested"]
    assert "roll back: roll it back" in rollback[0]["text"]
    assert "compensates what took effect" in rollback[0]["text"]
    again = run(scenario.url, "cancel", failed)
    assert again.exit_code == 5 and "already ended compensated" in again.output


def test_worker_refuses_a_slow_decision_threshold_that_is_not_positive(scenario: Scenario) -> None:
    result = run(scenario.url, "worker", "--app", "tests.apps.scripted:app", "--slow-decision", "0")
    assert result.exit_code == 2 and "--slow-decision" in result.output
