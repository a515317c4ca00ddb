"""Starting in batches, on both backends: `Client.start_many` answers exactly as starting
each request in turn would (keys repeated within a batch and across batches, conflicting
input, all or nothing), and concurrent `Client.start` calls, which share transactions,
each get their own answer: one key started from many threads creates one workflow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from steadyhand import App, Client, Context, IdempotencyConflict, Step
from steadyhand.core import jsoncodec
from steadyhand.engine.answers import Started
from steadyhand.engine.starting import StartCoalescer, StartRequest
from steadyhand.store import Store
from tests.conftest import running_worker
from tests.waiting import eventually

app = App()


@app.agent("noop")
def noop(ctx: Context) -> None:
    return None


app.workflow("pair", [Step("a", noop), Step("b", noop)])
app.workflow("single", [Step("only", noop)])


def _kinds(client: Client, workflow_id: str) -> list[str]:
    return [fact.kind for fact in client.view(workflow_id).facts]


def _count(store: Store) -> int:
    with store.snapshot() as tx:
        return int(tx.query("SELECT count(*) FROM workflows").fetchone()[0])


def test_a_batch_starts_each_as_a_single_start_does(store: Store) -> None:
    client = Client(app, store)
    alone = client.start("pair", {"n": 0}, key="alone")
    batch = client.start_many(
        [("pair", {"n": 1}, "b-1"), ("single", {"n": 2}, None), ("pair", {"n": 3}, "b-3")]
    )
    assert [s.created for s in batch] == [True, True, True]
    assert len({s.workflow_id for s in batch} | {alone.workflow_id}) == 4
    shape = _kinds(client, alone.workflow_id)
    assert shape == ["workflow_started", "supervisor_ran", "attempt_scheduled"]
    assert [_kinds(client, s.workflow_id) for s in batch] == [shape] * 3
    for started, step in zip(batch, ["a", "only", "a"], strict=True):
        found = client.engine.read(started.workflow_id)
        assert found is not None
        assert [(t.kind, t.step) for t in found[1]] == [("action", step)]
    assert client.view(batch[1].workflow_id).input == {"n": 2}
    assert client.status(batch[2].workflow_id).state == "running"


def test_a_key_repeated_within_a_batch_returns_the_first(store: Store) -> None:
    client = Client(app, store)
    first, again, other, third = client.start_many(
        [
            ("pair", {"n": 1}, "k"),
            ("pair", {"n": 1}, "k"),
            ("pair", {"n": 2}, None),
            ("pair", {"n": 1}, "k"),
        ]
    )
    assert (first.created, again.created, other.created, third.created) == (
        True,
        False,
        True,
        False,
    )
    assert again.workflow_id == third.workflow_id == first.workflow_id
    assert other.workflow_id != first.workflow_id
    assert _count(store) == 2


def test_a_key_repeated_across_batches_is_found(store: Store) -> None:
    client = Client(app, store)
    [before] = client.start_many([("pair", {"n": 1}, "k")])
    single = client.start("pair", {"n": 5}, key="s")
    found, new, found_single = client.start_many(
        [("pair", {"n": 1}, "k"), ("pair", {"n": 2}, "k2"), ("pair", {"n": 5}, "s")]
    )
    assert not found.created and found.workflow_id == before.workflow_id
    assert new.created
    assert not found_single.created and found_single.workflow_id == single.workflow_id
    assert not client.start("pair", {"n": 2}, key="k2").created
    assert _count(store) == 3


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("pair", {"n": 9}, "new"), ("pair", {"n": 2}, "taken")], "different input"),
        ([("pair", {"n": 9}, "new"), ("single", {"n": 1}, "taken")], "different workflow name"),
        ([("pair", {"n": 9}, "new"), ("pair", {"n": 8}, "new")], "different input"),
        ([("single", {"n": 9}, "new"), ("pair", {"n": 9}, "new")], "different workflow name"),
    ],
)
def test_a_conflicting_request_fails_the_whole_batch(
    store: Store, items: list[tuple[str, Any, str]], message: str
) -> None:
    client = Client(app, store)
    client.start("pair", {"n": 1}, key="taken")
    with pytest.raises(IdempotencyConflict, match=message):
        client.start_many([("pair", {"n": 0}, None), *items])
    assert _count(store) == 1  # nothing of the batch was written
    assert client.list(key="new").rows == []


def test_an_empty_batch_starts_nothing(store: Store) -> None:
    client = Client(app, store)
    assert client.start_many([]) == []
    assert _count(store) == 0


def test_a_repeated_id_within_a_batch_is_found_like_a_key(store: Store) -> None:
    client = Client(app, store)
    plan = app.plan("pair")
    text = jsoncodec.dumps({"n": 1})
    request = ("wf-fixed", plan, {"n": 1}, text, None, None)
    first, again = client.engine.start_many([request, request])
    assert first == Started("wf-fixed", True) and again == Started("wf-fixed", False)
    assert client.engine.start("wf-fixed", plan, {"n": 1}, text, None) == again
    keyed = ("wf-keyed", plan, {"n": 1}, text, "k1", None)
    unkeyed = ("wf-keyed", plan, {"n": 1}, text, None, None)
    assert client.engine.start_many([keyed, unkeyed]) == [
        Started("wf-keyed", True),
        Started("wf-keyed", False),
    ]
    other_key = ("wf-other", plan, {"n": 1}, text, "k2", None)
    with pytest.raises(IdempotencyConflict, match="wf-other is already taken"):
        client.engine.start_many([other_key, (*other_key[:4], "k3", None)])
    assert _count(store) == 2


def test_a_batch_takes_its_options(store: Store) -> None:
    client = Client(app, store)
    low = client.start("pair", {}).workflow_id
    high = [s.workflow_id for s in client.start_many([("pair", {}, None)] * 2, priority=9)]
    now = time.time()
    leased = [t.workflow_id for _ in range(3) for t in store.lease_tasks("w", 1, now, now + 30)]
    assert sorted(leased[:2]) == sorted(high) and leased[2] == low  # priority 9 first
    [timed] = client.start_many([("pair", {}, "d")], deadline=60)
    started = client.view(timed.workflow_id).facts[0]
    assert started.data["deadline_at"] == pytest.approx(started.at + 60)


def test_workflows_started_in_a_batch_run_to_the_end(store: Store) -> None:
    client = Client(app, store)
    started = client.start_many([("pair", {"n": i}, f"run-{i}") for i in range(20)])
    with running_worker(app, store):
        for s in started:
            assert client.wait(s.workflow_id, timeout=30).state == "completed"


def test_one_key_from_many_threads_creates_one_workflow(store_url: str) -> None:
    # Two clients: each coalesces its own threads' starts, and their transactions race.
    clients = [app.connect(store_url), app.connect(store_url)]
    answers: list[Started] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start(client: Client) -> None:
        barrier.wait()
        try:
            answers.append(client.start("pair", {"n": 1}, key="same"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(clients[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert sum(a.created for a in answers) == 1 and len(answers) == 8
        assert len({a.workflow_id for a in answers}) == 1
        assert len(clients[0].list(key="same").rows) == 1
    finally:
        for client in clients:
            client.close()


class _HeldFirstBatch:
    """The engine's own `start_batch`, except that the first call waits until `queued`
    callers are waiting behind it: the next batch then holds all of them, for certain."""

    def __init__(self, client: Client, queued: int) -> None:
        self.client = client
        self.queued = queued
        self.coalescer = StartCoalescer(self)
        self.sizes: list[int] = []
        self.release = threading.Event()

    def __call__(self, requests: Sequence[StartRequest]) -> list[Started]:
        self.sizes.append(len(requests))
        if len(self.sizes) == 1:
            assert self.release.wait(30), "the other callers never queued"
        return self.client.engine.start_batch(requests)


def _in_threads(calls: list[Callable[[], Started]]) -> list[Started | BaseException]:
    results: list[Started | BaseException] = [RuntimeError("no answer")] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_starts_share_a_batch_and_each_gets_its_own_answer(store: Store) -> None:
    client = Client(app, store)
    held = _HeldFirstBatch(client, queued=3)
    client._starts = held.coalescer
    first = threading.Thread(target=lambda: client.start("pair", {"n": 0}, key="lead"))
    first.start()
    eventually(lambda: held.sizes, what="the first batch began")
    followers = [
        lambda: client.start("pair", {"n": 1}, key="x"),
        lambda: client.start("pair", {"n": 1}, key="x"),
        lambda: client.start("single", {"n": 2}),
    ]
    results: list[Started | BaseException] = []
    runner = threading.Thread(target=lambda: results.extend(_in_threads(followers)))
    runner.start()
    eventually(lambda: len(held.coalescer._queue) == 3, what="three starts queued")
    held.release.set()
    first.join(60)
    runner.join(60)
    assert held.sizes == [1, 3]  # one commit for the three queued starts
    x1, x2, other = results
    assert isinstance(x1, Started) and isinstance(x2, Started) and isinstance(other, Started)
    assert {x1.created, x2.created} == {True, False}  # one key: one workflow
    assert x1.workflow_id == x2.workflow_id != other.workflow_id and other.created
    assert _count(store) == 3


def test_an_error_in_a_shared_batch_fails_only_its_own_start(store: Store) -> None:
    client = Client(app, store)
    client.start("pair", {"n": 1}, key="taken")
    held = _HeldFirstBatch(client, queued=3)
    client._starts = held.coalescer
    first = threading.Thread(target=lambda: client.start("pair", {"n": 0}))
    first.start()
    eventually(lambda: held.sizes, what="the first batch began")
    followers = [
        lambda: client.start("pair", {"n": 1}, key="fresh"),
        lambda: client.start("pair", {"n": 2}, key="taken"),  # conflicts
        lambda: client.start("pair", {"n": 1}, key="taken"),  # finds it
    ]
    results: list[Started | BaseException] = []
    runner = threading.Thread(target=lambda: results.extend(_in_threads(followers)))
    runner.start()
    eventually(lambda: len(held.coalescer._queue) == 3, what="three starts queued")
    held.release.set()
    first.join(60)
    runner.join(60)
    fresh, conflict, found = results
    assert held.sizes[:2] == [1, 3] and sorted(held.sizes[2:]) == [1, 1, 1]  # then alone
    assert isinstance(fresh, Started) and fresh.created
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(found, Started) and not found.created
    assert found.workflow_id == client.list(key="taken").rows[0].id
    assert _count(store) == 3


def test_a_big_batch_answers_as_small_ones_do(store: Store) -> None:
    # Over CHUNK requests: decided in chunks (on PostgreSQL written behind on a helper thread).
    client = Client(app, store)
    before = client.start("pair", {"n": 7}, key="k-7")
    items = [("pair", {"n": n % 600}, f"k-{n % 600}") for n in range(700)]  # 100 repeats
    answers = client.start_many(items)
    assert sum(a.created for a in answers) == 599  # k-7 was there already
    assert answers[7] == Started(before.workflow_id, False)
    assert all(answers[n + 600] == Started(answers[n].workflow_id, False) for n in range(100))
    assert _count(store) == 600
    with pytest.raises(IdempotencyConflict, match="different input"):
        client.start_many([*items, ("pair", {"n": -1}, "k-650"), ("pair", {"n": 1}, "k-650")])
    assert _count(store) == 600
    done = client.start_many([("single", {"n": n}, None) for n in range(300)])
    assert all(a.created for a in done) and _count(store) == 900
    assert {_kinds(client, a.workflow_id)[-1] for a in done[::50]} == {"attempt_scheduled"}
