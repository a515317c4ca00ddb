"""Which schedule ticks are due (pure): catch-up modes, cron in a time zone, and clear
errors for a bad declaration."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from steadyhand.core.errors import DefinitionError
from steadyhand.core.schedules import (
    MAX_TICKS_PER_PASS,
    ScheduleSpec,
    due_ticks,
    next_tick,
    tick_key,
)

T0 = 1_800_000_000.0  # a multiple of 10 and 60: ticks of every=10 fall on it


def spec(**kw: object) -> ScheduleSpec:
    return ScheduleSpec(**{"name": "s", "workflow": "w", "every": 10.0, **kw})  # type: ignore[arg-type]


def test_nothing_is_due_before_the_next_tick() -> None:
    assert due_ticks(spec(), T0 + 10, T0 + 5) == ([], T0 + 10)


def test_a_tick_on_time_is_started_in_every_mode() -> None:
    for mode in ("all", "latest", "none"):
        assert due_ticks(spec(catch_up=mode), T0, T0 + 0.5) == ([T0], T0 + 10)


def test_after_an_outage_all_starts_every_missed_tick_latest_one_none_nothing() -> None:
    now = T0 + 35  # ticks T0, +10, +20, +30 passed while no worker ran
    assert due_ticks(spec(catch_up="all"), T0, now) == ([T0, T0 + 10, T0 + 20, T0 + 30], T0 + 40)
    assert due_ticks(spec(catch_up="latest"), T0, now) == ([T0 + 30], T0 + 40)
    assert due_ticks(spec(catch_up="none"), T0, now) == ([T0 + 30], T0 + 40)  # 5 s late: ok
    late = T0 + 39  # the newest tick is 9 s late: more than half a period
    assert due_ticks(spec(catch_up="none"), T0, late) == ([], T0 + 40)


def test_a_long_outage_is_caught_up_over_several_passes() -> None:
    ticks, following = due_ticks(spec(catch_up="all"), T0, T0 + 10 * 500)
    assert len(ticks) == MAX_TICKS_PER_PASS
    assert following == ticks[-1] + 10, "the next pass goes on where this one stopped"


def test_cron_ticks_follow_the_time_zone() -> None:
    nightly = spec(every=None, cron="0 2 * * *", timezone="Europe/Paris")
    start = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    tick = next_tick(nightly, start)
    assert datetime.fromtimestamp(tick, ZoneInfo("Europe/Paris")).hour == 2
    assert datetime.fromtimestamp(tick, ZoneInfo("UTC")).hour == 0  # CEST is UTC+2
    assert next_tick(nightly, tick) - tick == 86400


def test_tick_keys_name_the_schedule_and_the_tick() -> None:
    assert tick_key(spec(), T0) == "schedule:s:2027-01-15T08:00:00Z"
    assert tick_key(spec(), T0) != tick_key(spec(), T0 + 10)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cron": "0 2 * * *"}, "exactly one of cron= or every="),
        ({"every": None}, "exactly one of cron= or every="),
        ({"every": None, "cron": "61 * * * *"}, "not a cron expression"),
        ({"every": 0.5}, "at least 1 second"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"overlap": "queue"}, "overlap must be one of"),
        ({"catch_up": "some"}, "catch_up must be one of"),
        ({"input": {1, 2}}, "input must be JSON"),
    ],
)
def test_a_bad_declaration_says_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        spec(**changes)
