"""Saga behaviour end to end, on both backends, with real workers and a real ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from steadyhand import Client
from steadyhand.store import Store
from tests.apps.scripted import app, effects
from tests.conftest import running_worker


def run(store: Store, tmp_path: Path, name: str, script: dict[str, Any], timeout: float = 30):
    ledger = str(tmp_path / "ledger.db")
    client = Client(app, store)
    started = client.start(name, {"ledger": ledger, "script": script})
    with running_worker(app, store):
        status = client.wait(started.workflow_id, timeout=timeout)
    return status, client.view(started.workflow_id), effects(ledger)


def kinds(view: Any, *wanted: str) -> list[tuple[str, str | None, int | None]]:
    return [(f.kind, f.step, f.attempt) for f in view.facts if f.kind in wanted]


def test_happy_path_runs_every_step_once(store: Store, tmp_path: Path) -> None:
    status, view, done = run(store, tmp_path, "trip", {})
    assert status.state == "completed"
    assert set(status.result) == {"flight", "hotel", "car"}
    assert [(phase, step) for _, phase, step, _ in done] == [
        ("action", "flight"),
        ("action", "hotel"),
        ("action", "car"),
    ]
    assert view.count("attempt_scheduled") == 3


def test_transient_failures_are_retried_until_success(store: Store, tmp_path: Path) -> None:
    status, view, done = run(store, tmp_path, "trip", {"hotel": ["transient", "transient", "ok"]})
    assert status.state == "completed"
    assert kinds(view, "attempt_failed") == [
        ("attempt_failed", "hotel", 1),
        ("attempt_failed", "hotel", 2),
    ]
    assert [(step, attempt) for _, _, step, attempt in done] == [
        ("flight", 1),
        ("hotel", 3),
        ("car", 1),
    ]


def test_permanent_failure_in_step_three_compensates_two_then_one(
    store: Store, tmp_path: Path
) -> None:
    status, view, done = run(store, tmp_path, "trip", {"car": ["permanent"]})
    assert status.state == "compensated"
    assert "car" in (status.reason or "") and "refused" in (status.reason or "")
    assert view.count("attempt_scheduled", "car") == 1, "a permanent failure is never retried"
    assert [(phase, step) for _, phase, step, _ in done] == [
        ("action", "flight"),
        ("action", "hotel"),
        ("compensation", "hotel"),
        ("compensation", "flight"),
    ]
    assert not view.has("compensation_scheduled", "car"), "car never took effect"


def test_exhausted_retries_compensate(store: Store, tmp_path: Path) -> None:
    status, view, _ = run(store, tmp_path, "trip", {"hotel": ["transient"] * 10})
    assert status.state == "compensated"
    assert view.count("attempt_scheduled", "hotel") == 4  # FAST_RETRY.max_attempts
    assert "gave up after 4 attempts" in (status.reason or "")
    assert kinds(view, "compensation_succeeded") == [("compensation_succeeded", "flight", 1)]


def test_compensation_that_keeps_failing_ends_failed_with_reason(
    store: Store, tmp_path: Path
) -> None:
    script = {"car": ["permanent"], "undo:hotel": ["transient"] * 10}
    status, view, _done = run(store, tmp_path, "trip", script)
    assert status.state == "failed"
    reason = status.reason or ""
    assert "could not compensate hotel" in reason
    assert "Still in effect: flight, hotel" in reason
    assert view.count("compensation_scheduled", "hotel") == 4
    assert not view.has("compensation_scheduled", "flight"), "reverse order: flight waits"


@pytest.mark.parametrize("name", ["trip", "trip_async"])
def test_attempt_that_hangs_times_out_and_is_retried(
    store: Store, tmp_path: Path, name: str
) -> None:
    status, view, done = run(store, tmp_path, name, {"hotel": ["hang", "ok"]})
    assert status.state == "completed"
    assert kinds(view, "attempt_timed_out") == [("attempt_timed_out", "hotel", 1)]
    assert ("hotel", 2) in [(step, attempt) for _, _, step, attempt in done]


def test_probe_that_finds_the_effect_prevents_a_retry(store: Store, tmp_path: Path) -> None:
    status, view, done = run(store, tmp_path, "trip_probed", {"hotel": ["act_then_hang"]})
    assert status.state == "completed"
    assert view.count("attempt_scheduled", "hotel") == 1, "the probe said done: no retry"
    answer = view.latest("probe_succeeded", "hotel")
    assert answer is not None and answer.get("answer") == "done"
    assert status.result["hotel"] == {"key": f"{view.workflow_id}:hotel", "probed": True}
    assert [step for _, _, step, _ in done].count("hotel") == 1


def test_probe_that_finds_nothing_lets_the_retry_happen(store: Store, tmp_path: Path) -> None:
    status, view, _ = run(store, tmp_path, "trip_probed", {"hotel": ["hang", "ok"]})
    assert status.state == "completed"
    probe = view.latest("probe_succeeded", "hotel")
    assert probe is not None and probe.get("answer") == "not_done"
    assert view.count("attempt_scheduled", "hotel") == 2


def test_uncertain_step_is_compensated_when_the_saga_rolls_back(
    store: Store, tmp_path: Path
) -> None:
    # hotel's outcome stays unknown (no probe, and an async agent that is cancelled never
    # reports late) until retries run out: roll it back anyway, since it may have happened.
    status, _view, done = run(store, tmp_path, "trip_async", {"hotel": ["act_then_hang"] * 4})
    assert status.state == "compensated"
    assert [step for _, phase, step, _ in done if phase == "compensation"] == ["hotel", "flight"]


def test_every_supervisor_run_leaves_a_breadcrumb(store: Store, tmp_path: Path) -> None:
    _, view, _ = run(store, tmp_path, "trip", {"hotel": ["transient", "ok"]})
    runs = view.of("supervisor_ran")
    assert [r.get("run") for r in runs] == list(range(1, len(runs) + 1))
    assert all(r.get("why") and r.get("saw") and r.get("decided") for r in runs)
    assert any("passing reason" in r.get("why") for r in runs)
