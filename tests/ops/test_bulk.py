"""Bulk cancel and retry from the command line, on both backends: a dry run lists the
selection and changes nothing; the real run writes one operator fact per workflow, all with
the same batch id, and reports done / already / ended; the pace is kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.core.facts import CANCEL_REQUESTED, RETRY_REQUESTED
from steadyhand.ops.bulk import Pace, parse_rate
from tests.apps.scripted import app
from tests.ops.conftest import FAIL_SCRIPT, run_trips


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--db", url], env={"COLUMNS": "220"})


def as_json(url: str, *args: str) -> Any:
    result = run(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def operator_facts(url: str, workflow_id: str, kind: str) -> list[dict[str, Any]]:
    store = open_store(url)
    try:
        view = Client(app, store).view(workflow_id)
    finally:
        store.close()
    return [dict(f.data or {}) for f in view.facts if f.kind == kind]


def _trips(url: str, tmp_path: Path) -> tuple[list[str], str]:
    """Two failed trips and one completed one."""
    ids = run_trips(url, str(tmp_path / "ledger.db"), [FAIL_SCRIPT, FAIL_SCRIPT, {}])
    return ids[:2], ids[2]


def test_bulk_cancel_dry_run_then_waves_with_one_batch_id(store_url: str, tmp_path: Path) -> None:
    failed, completed = _trips(store_url, tmp_path)
    dry = as_json(store_url, "cancel", "--state", "failed", "--name", "trip", "--dry-run")
    assert sorted(dry["workflows"]) == sorted(failed) and dry["dry_run"] is True
    text = run(store_url, "cancel", "--state", "failed", "--since", "1h", "--dry-run")
    assert text.exit_code == 0 and "would touch 2 workflow(s)" in text.output
    for workflow_id in failed:
        assert operator_facts(store_url, workflow_id, CANCEL_REQUESTED) == []
    assert as_json(store_url, "cancel", "--name", "nope", "--dry-run")["workflows"] == []

    done = as_json(store_url, "cancel", "--state", "failed", "--reason", "bad deploy")
    assert done["counts"] == {"done": 2, "already": 0, "ended": 0, "not_applicable": 0}
    batch = done["batch"]
    for workflow_id in failed:
        [fact] = operator_facts(store_url, workflow_id, CANCEL_REQUESTED)
        assert fact["batch"] == batch and fact["reason"] == "bad deploy"
    assert operator_facts(store_url, completed, CANCEL_REQUESTED) == []

    # Selected again by name: the two are already cancelled, the completed one had ended.
    again = run(store_url, "cancel", "--name", "trip", "--rate", "600/m")
    assert again.exit_code == 0, again.output
    assert "0 done, 2 already, 1 ended, 0 not applicable (of 3 selected)" in again.output
    for workflow_id in failed:
        assert len(operator_facts(store_url, workflow_id, CANCEL_REQUESTED)) == 1


def test_bulk_retry_selects_failed_ones_and_keeps_the_single_form(
    store_url: str, tmp_path: Path
) -> None:
    failed, completed = _trips(store_url, tmp_path)
    result = as_json(store_url, "retry", "--name", "trip", "--reason", "API fixed")
    assert sorted(a["id"] for a in result["workflows"]) == sorted(failed)
    assert result["counts"]["done"] == 2
    for workflow_id in failed:
        [fact] = operator_facts(store_url, workflow_id, RETRY_REQUESTED)
        assert fact["batch"] == result["batch"] and fact["reason"] == "API fixed"
    # The single-id form is unchanged: a completed workflow cannot be retried (exit 5).
    assert run(store_url, "retry", completed).exit_code == 5
    assert run(store_url, "cancel", completed).exit_code == 5


def test_bulk_usage_errors_are_one_clear_line(store_url: str) -> None:
    nothing = run(store_url, "cancel")
    assert nothing.exit_code == 2 and "name a workflow ID, or select" in nothing.output
    both = run(store_url, "cancel", "abc", "--state", "failed")
    assert both.exit_code == 2 and "not both" in both.output
    rate = run(store_url, "retry", "--state", "failed", "--rate", "fast")
    assert rate.exit_code == 2 and "--rate 'fast'" in rate.output


@pytest.mark.parametrize(
    ("text", "per_second"), [("50/s", 50.0), ("600/m", 10.0), ("7", 7.0), ("3600/h", 1.0)]
)
def test_rates_parse(text: str, per_second: float) -> None:
    assert parse_rate(text) == per_second


def test_pace_waits_between_waves_for_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Pace(2.0, clock=lambda: now[0], sleep=sleep)
    waves = list(pace.waves(["a", "b", "c", "d", "e"]))
    assert waves == [["a", "b"], ["c", "d"], ["e"]]
    assert slept == [1.0, 1.0]  # two waves of 2 at 2/s: one second each, none after the last
