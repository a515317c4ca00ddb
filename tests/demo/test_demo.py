"""The travel-booking demo end to end (hostile faults, workers SIGKILLed) on both backends,
the audit's own honesty on hand-made ledgers, and the command's JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from steadyhand.demo.audit import COMPENSATED, COMPLETED, DOUBLE, FAILED, HALF_DONE, STRAY, audit
from steadyhand.demo.command import EXIT_AUDIT_FAILED, demo
from steadyhand.demo.faults import PROFILES
from steadyhand.demo.options import PROFILE_NAMES, DemoOptions
from steadyhand.demo.report import Trip, TripRecord
from steadyhand.demo.run import run_demo

JSON_KEYS = {"trips", "completed", "compensated", "failed", "half_done", "double_bookings"}


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_small_hostile_demo_with_kills_passes_its_audit(store_url: str, tmp_path: Path) -> None:
    options = DemoOptions(
        trips=8,
        rate=2.0,  # spread over 4 s, so the kills land while calls are in flight
        workers=2,
        concurrency=8,
        seed=5,
        db=store_url,
        faults="hostile",
        kill_workers=True,
        kill_every=1.5,
        workdir=tmp_path / "demo",
        timeout=60.0,
    )
    result = run_demo(options)
    failures = [(c.name, p) for c in result.audit.checks for p in c.problems]
    assert result.ok, failures
    assert result.tally.trips == 8
    assert all(r.state in ("completed", "compensated") for r in result.records)
    assert result.workers_killed >= 1
    assert result.workers_started == 2 + result.workers_killed
    assert result.tally.attempts >= 8
    summary = result.to_json()
    assert JSON_KEYS | {"duration_s"} <= set(summary)
    assert (summary["half_done"], summary["double_bookings"]) == (0, 0)
    assert summary["completed"] + summary["compensated"] == 8


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_command_prints_only_json(tmp_path: Path) -> None:
    args = ["--json", "--trips", "3", "--rate", "0", "--faults", "none", "--no-kill-workers"]
    answer = CliRunner().invoke(demo, [*args, "--workdir", str(tmp_path)])
    assert answer.exit_code == 0, answer.output
    summary = json.loads(answer.stdout)
    assert summary["trips"] == summary["completed"] == 3
    assert summary["ok"] is True and summary["workers_killed"] == 0
    assert (tmp_path / "demo.db").exists(), "the store is kept for status and explain"


def test_profile_names_match_the_services() -> None:
    assert set(PROFILE_NAMES) == set(PROFILES)
    assert EXIT_AUDIT_FAILED not in (0, 1, 2)


# -- the audit itself, on hand-made ledgers --------------------------------------------------


def booking(trip: str, step: str, status: str = "booked", key: str | None = None) -> dict[str, Any]:
    return {
        "key": key or f"{trip}:{step}",
        "trip": trip,
        "booking_id": f"{step[:2].upper()}-{trip}",
        "status": status,
    }


def completed(trip: str) -> TripRecord:
    result = {s: {"booking_id": f"{s[:2].upper()}-{trip}"} for s in ("flight", "hotel", "car")}
    return TripRecord(Trip(trip, f"label-{trip}"), "completed", result=result)


def ledgers(*rows: tuple[str, dict[str, Any]], double: tuple[str, ...] = ()) -> dict[str, Any]:
    books: dict[str, Any] = {
        k: {"bookings": [], "double_booked": []} for k in KINDS_BY_STEP.values()
    }
    for step, row in rows:
        books[KINDS_BY_STEP[step]]["bookings"].append(row)
    for key in double:
        books["hotels"]["double_booked"].append(key)
    return books


KINDS_BY_STEP = {"flight": "flights", "hotel": "hotels", "car": "cars"}


def full(trip: str) -> list[tuple[str, dict[str, Any]]]:
    return [(step, booking(trip, step)) for step in KINDS_BY_STEP]


def broken(result: Any) -> dict[str, list[str]]:
    return {c.name: [p.workflow_id for p in c.problems] for c in result.checks if c.problems}


def test_audit_passes_a_clean_run() -> None:
    rolled_back = TripRecord(Trip("b", "label-b"), "compensated", reason="hotels: sold out")
    rows = [*full("a"), ("flight", booking("b", "flight", status="cancelled"))]
    result = audit([completed("a"), rolled_back], ledgers(*rows))
    assert result.ok and broken(result) == {}
    assert (result.half_done, result.double_bookings) == (0, 0)


def test_audit_names_each_kind_of_broken_trip() -> None:
    records = [
        completed("missing-car"),
        completed("wrong-id"),
        TripRecord(Trip("kept", "label-kept"), "compensated", reason="sold out"),
        TripRecord(Trip("stuck", "label-stuck"), "running"),
        TripRecord(Trip("gave-up", "label-gave-up"), "failed", reason="could not cancel"),
        completed("twice"),
    ]
    rows = [
        *full("missing-car")[:2],
        *full("wrong-id")[:2],
        ("car", {**booking("wrong-id", "car"), "booking_id": "CA-other"}),
        ("flight", booking("kept", "flight")),
        ("flight", booking("gave-up", "flight")),
        *full("twice"),
        ("hotel", booking("twice", "hotel", key="twice:hotel-again")),
        ("car", booking("nobody", "car")),
    ]
    result = audit(records, ledgers(*rows, double=("twice:hotel",)))
    assert not result.ok
    found = broken(result)
    assert found[COMPLETED] == ["missing-car", "wrong-id", "twice"]
    assert found[COMPENSATED] == ["kept"]
    assert found[HALF_DONE] == ["missing-car", "kept", "stuck", "gave-up"]
    assert found[FAILED] == ["gave-up"]
    assert found[DOUBLE] == ["twice", "twice"]
    assert found[STRAY] == ["twice", "nobody"]
    assert result.half_done == 4 and result.double_bookings == 2
    assert result.broken()[:3] == ["missing-car", "wrong-id", "twice"]
