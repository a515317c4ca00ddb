"""`AgentThreads` runs sync agents: it reuses an idle thread (starting one costs about as
much as a no-op step), never makes a job wait behind a hung one, and lets idle threads go.

Every wait here is bounded, so a regression fails the test instead of hanging the run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from steadyhand.runtime.calls import AgentThreads
from tests.waiting import eventually

WAIT = 10.0  # seconds: generous bound for anything that should happen "at once"
_names = itertools.count()


@pytest.fixture
def name() -> Iterator[str]:
    """A thread name no other test uses, so counting live threads by name is exact."""
    yield f"agent-test-{next(_names)}-{time.monotonic_ns()}"


def live(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == name)


def idle(threads: AgentThreads) -> int:
    # The only way to know a thread has finished its job and is waiting for another.
    return threads._idle


def run(threads: AgentThreads, name: str) -> int:
    """Submit one job and wait for it; the id of the thread that ran it."""
    ran: list[int] = []
    done = threading.Event()

    def job() -> None:
        ran.append(threading.get_ident())
        done.set()

    threads.submit(job, name=name)
    assert done.wait(WAIT), "the job did not run"
    return ran[0]


def test_submitted_jobs_run(name: str) -> None:
    threads = AgentThreads(idle_seconds=5.0)
    results: list[int] = []
    done = threading.Barrier(4)  # three jobs and this test

    def job(value: int) -> Callable[[], None]:
        def work() -> None:
            results.append(value)
            done.wait(WAIT)

        return work

    for value in range(3):
        threads.submit(job(value), name=name)
    done.wait(WAIT)
    assert sorted(results) == [0, 1, 2]


def test_an_idle_thread_is_reused(name: str) -> None:
    """Jobs run one after another (each submitted once the thread before is idle again)
    all run on the same thread: no new thread per call."""
    threads = AgentThreads(idle_seconds=5.0)
    idents = []
    for _ in range(5):
        idents.append(run(threads, name))
        eventually(lambda: idle(threads) == 1, WAIT, 0.005, "the thread becoming idle")
    assert len(set(idents)) == 1
    assert live(name) == 1


def test_a_blocked_job_does_not_delay_the_next(name: str) -> None:
    """A hung agent keeps its thread; the next call gets another one instead of queueing
    behind it (a fixed pool would starve once enough calls hang)."""
    threads = AgentThreads(idle_seconds=5.0)
    release = threading.Event()
    blocked_started = threading.Event()
    second_ran = threading.Event()
    idents: dict[str, int] = {}

    def blocked() -> None:
        idents["blocked"] = threading.get_ident()
        blocked_started.set()
        release.wait(WAIT)

    def second() -> None:
        idents["second"] = threading.get_ident()
        second_ran.set()

    threads.submit(blocked, name=name)
    try:
        assert blocked_started.wait(WAIT)
        threads.submit(second, name=name)
        assert second_ran.wait(WAIT), "the second job waited behind the blocked one"
        assert not release.is_set()
        assert idents["second"] != idents["blocked"]
    finally:
        release.set()


def test_an_idle_thread_is_reused_even_after_another_thread_hung(name: str) -> None:
    """Once the hung job ends, both threads are idle and the next jobs reuse them."""
    threads = AgentThreads(idle_seconds=5.0)
    release = threading.Event()
    started = threading.Event()

    def blocked() -> None:
        started.set()
        release.wait(WAIT)

    threads.submit(blocked, name=name)
    assert started.wait(WAIT)
    run(threads, name)
    release.set()
    eventually(lambda: idle(threads) == 2, WAIT, 0.005, "two idle threads")
    run(threads, name)
    run(threads, name)
    assert live(name) == 2, "no third thread was started"


def test_idle_threads_exit_after_idle_seconds(name: str) -> None:
    threads = AgentThreads(idle_seconds=0.05)
    release = threading.Event()
    started = threading.Barrier(4)  # three jobs and this test

    def job() -> None:
        started.wait(WAIT)
        release.wait(WAIT)

    for _ in range(3):
        threads.submit(job, name=name)
    started.wait(WAIT)  # all three run at once: three threads
    assert live(name) == 3
    release.set()
    eventually(lambda: live(name) == 0, WAIT, 0.005, "idle threads exiting")
    assert idle(threads) == 0

    # After they left, a new job still runs (on a new thread).
    run(threads, name)
