"""Pure pieces of the operator tools: durations, the stuck rule's words, and fact sentences."""

from __future__ import annotations

import pytest

from steadyhand.core.errors import InputError
from steadyhand.core.facts import Fact
from steadyhand.core.stuck import StuckRule, ago, why_stuck
from steadyhand.ops.reports import decode_cursor, encode_cursor
from steadyhand.ops.settings import stuck_rule
from steadyhand.ops.story import sentence
from steadyhand.ops.timetext import parse_duration, parse_since
from steadyhand.store.reporting import named_params


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_since_accepts_durations_iso_times_and_epochs() -> None:
    now = 2_000_000_000.0
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1700000000", now) == 1_700_000_000
    assert parse_since("2024-05-01T02:00:00+00:00", now) == 1_714_528_800
    with pytest.raises(InputError, match="duration ago"):
        parse_since("yesterday-ish", now)


def test_the_stuck_rule_comes_from_a_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEADYHAND_STUCK_AFTER", "42")
    assert stuck_rule().after == 42
    assert stuck_rule(7).after == 7
    monkeypatch.setenv("STEADYHAND_STUCK_AFTER", "soon")
    with pytest.raises(InputError, match="not a number"):
        stuck_rule()
    with pytest.raises(InputError, match="positive"):
        StuckRule(0)


def test_stuck_reasons_say_which_part_of_the_rule_applies() -> None:
    now = 10_000.0
    assert "due for 10m and no worker took it" in why_stuck(now, now - 900, now - 600, None, 0)
    assert "lease expired 6m ago" in why_stuck(now, now - 900, None, now - 360, 0)
    silent = why_stuck(now, now - 900, None, None, 1)
    assert silent.startswith("no fact for 15m and no wake-up planned") and "still running" in silent
    assert [ago(s) for s in (0.4, 45, 720, 3600, 11100, 3 * 86400)] == [
        "0.4s",
        "45s",
        "12m",
        "1h",
        "3h05m",
        "3d",
    ]


def test_cursors_and_parameter_names_round_trip() -> None:
    assert decode_cursor(encode_cursor(1714528800.123456, "abc")) == (1714528800.123456, "abc")
    with pytest.raises(InputError):
        decode_cursor("nonsense")
    sql, params = named_params("id", list(range(28)))
    assert sql.startswith(":id_a, :id_b") and ":id_ab" in sql and len(params) == 28
    assert not any(ch.isdigit() for ch in sql)  # PostgreSQL's rewrite takes letters only


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("attempt_failed", {"error": "503", "permanent": False}, "failed for a passing reason"),
        ("attempt_failed", {"error": "no", "permanent": True}, "failed permanently"),
        ("attempt_timed_out", {"error": "no answer within 1s"}, "outcome is unknown"),
        ("attempt_lost", {"error": "worker w stopped"}, "lost: worker w stopped"),
        ("probe_succeeded", {"answer": "done"}, "probe 2 of hotel answered done"),
        ("compensation_succeeded", {"result": None}, "compensation 2 of hotel succeeded"),
        ("retry_requested", {"reason": "fixed", "by": "ann"}, "retry requested by ann: fixed"),
        ("workflow_failed", {"reason": "boom"}, "ended FAILED: boom"),
        ("something_new", {"x": 1}, "something new: x=1"),
    ],
)
def test_every_fact_reads_as_a_sentence(kind: str, data: dict[str, object], expected: str) -> None:
    assert expected in sentence(Fact(3, kind, 0.0, "hotel", 2, None, data))
