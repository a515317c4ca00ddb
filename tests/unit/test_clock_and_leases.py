"""The store's clock as a process reads it, and a worker's own judgement of its leases:
both run on injected clocks here, so time is pinned instead of slept through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from steadyhand import App
from steadyhand.ops.metrics import WorkerMetrics
from steadyhand.runtime.duties import Duties
from steadyhand.runtime.leases import LeaseKeeper
from steadyhand.runtime.options import WorkerOptions
from steadyhand.store.clock import ClockReading, StoreClock


class Ticking:
    """A monotonic clock that moves `step` seconds every time it is read."""

    def __init__(self, start: float, step: float) -> None:
        self.value, self.step = start, step

    def __call__(self) -> float:
        self.value += self.step
        return self.value


def test_the_store_clock_is_monotonic_plus_the_measured_offset_and_skew_is_reported() -> None:
    mono = Ticking(50.0, 0.001)
    clock = StoreClock(
        lambda: mono.value + 1000.0,  # the store is 1000 s ahead of this monotonic clock
        monotonic=mono,
        wall=lambda: mono.value + 1040.0,  # this machine's wall clock is 40 s fast
        resync_after=None,
    )
    reading = clock.sync()
    assert abs(reading.skew - 40.0) < 0.01
    assert abs(clock.now() - (mono.value + 1000.0)) < 0.01
    mono.value += 3600  # an hour later, no sync: still the store's time
    assert abs(clock.now() - (mono.value + 1000.0)) < 0.01


def test_the_fastest_sample_wins() -> None:
    steps = iter([0.0, 0.5, 0.0, 0.01, 0.0, 0.3])  # round trips of 0.5, 0.01 and 0.3 s
    now = [0.0]

    def mono() -> float:
        now[0] += next(steps, 0.0)
        return now[0]

    clock = StoreClock(lambda: now[0] + 7.0, monotonic=mono, wall=lambda: 0.0, resync_after=None)
    assert abs(clock.sync().round_trip - 0.01) < 1e-9


class FakeCalls:
    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class FakeStore:
    def __init__(self, renews: Sequence[int]) -> None:
        self.renews = list(renews)
        self.asked: list[tuple[str, list[int], float]] = []

    def renew_leases_of(self, owner: str, ids: Sequence[int], until: float) -> list[int]:
        self.asked.append((owner, list(ids), until))
        return [i for i in ids if i in self.renews]


def test_a_lease_unrenewed_for_its_period_is_given_up_on_the_monotonic_clock() -> None:
    now = [0.0]
    lost: list[int] = []
    store = FakeStore(renews=[1])  # task 2's renewals do not land (taken over, or stalled)
    keeper = LeaseKeeper(
        store=store,  # type: ignore[arg-type]
        calls=FakeCalls(),  # type: ignore[arg-type]
        clock=lambda: 5000.0,  # the store's clock: only used to stamp `until`
        worker_id="w",
        lease_seconds=3.0,
        on_lost=lost.append,
        monotonic=lambda: now[0],
    )
    keeper.hold(1, 0.0)
    keeper.hold(2, 0.0)
    now[0] = 1.0
    asyncio.run(keeper.renew_once())
    assert store.asked == [("w", [1, 2], 5003.0)]
    now[0] = 2.99
    assert keeper.fence_expired() == [] and lost == []
    now[0] = 3.0
    assert keeper.fence_expired() == [2] and lost == [2]
    now[0] = 3.99  # task 1 was renewed by a request sent at 1.0: its lease runs to 4.0
    assert keeper.fence_expired() == []
    now[0] = 4.0
    assert keeper.fence_expired() == [1] and keeper.held() == []


def test_a_measured_offset_is_exported_and_warned_beyond_the_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = WorkerMetrics()
    duties = Duties(
        app=App(), store=None, engine=None, calls=None,  # type: ignore[arg-type]
        options=WorkerOptions(clock_skew_warning=2.0), clock=lambda: 0.0,
        worker_id="w", leased_ids=list, poll=1.0, kick=lambda: None, metrics=metrics,
    )  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger="steadyhand.worker"):
        duties.clock_measured(ClockReading(1000.0, 5.0, 0.004, skew=1.5))
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        duties.clock_measured(ClockReading(1000.0, 5.0, 0.004, skew=-40.0))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "-40.000s off the store's clock" in warned[0]
    registry = metrics.registry
    assert registry.get_sample_value("steadyhand_worker_clock_offset_seconds") == -40.0
    assert registry.get_sample_value("steadyhand_worker_clock_round_trip_seconds") == 0.004
