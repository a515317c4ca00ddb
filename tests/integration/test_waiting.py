"""`Client.wait` and `AsyncClient.wait` wake on the workflow's end, on both stores, through
one listener per store object (`Store.endings`): not by their poll, with one listening
connection (or socket) however many wait, back after its connection is cut, and gone when
the store closes. A missed notification costs a poll interval, never the wait.

The waits here poll every 30 s: one that returns within the test's bound was woken.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

import steadyhand.store.endings
from steadyhand import AsyncClient, Client, WorkflowStillRunning, open_store
from steadyhand.core.status import Status
from steadyhand.store import Store
from steadyhand.store.endings import Endings
from steadyhand.store.pg_endings import endings_channel
from steadyhand.store.sqlite import sqlite_path
from steadyhand.store.wakeup import ENDED, channel_dir
from tests.apps.shop import app
from tests.conftest import application_name, pg_base, running_worker
from tests.waiting import eventually

LONG_POLL = 30.0
BOUND = 10.0  # well under LONG_POLL: a wait that returns within it was woken


@pytest.fixture
def worker_store(store_url: str) -> Iterator[Store]:
    """The worker's own store object: the waiting client's store hears ends as another
    process's would."""
    store = open_store(store_url)
    with running_worker(app, store):
        yield store
    store.close()


def hub(store: Store) -> Endings:
    endings = store.endings()
    assert endings is not None, "both stores can say when a workflow ended"
    return endings


def listeners(store_url: str, store: Store) -> int:
    """How many listening connections (PostgreSQL) or sockets (SQLite) wait for ends."""
    if store.dialect == "sqlite":
        return len(list(channel_dir(sqlite_path(store_url)).glob(f"*{ENDED}")))
    channel = endings_channel(store.schema)  # type: ignore[attr-defined]
    base = pg_base()
    assert base is not None
    with psycopg.connect(base, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s",
            (application_name(store_url), f'LISTEN "{channel}"%'),
        ).fetchone()
    assert row is not None
    return int(row[0])


def approvals(client: Client, n: int) -> list[str]:
    """`n` workflows that wait for an `approved` event: they end when the test says."""
    started = client.start_many([("approval", {}, None)] * n)
    return [s.workflow_id for s in started]


@contextmanager
def waiting_in_threads(client: Client, ids: list[str]) -> Iterator[dict[str, Status]]:
    """Wait for each id on a thread of its own (polling every 30 s) while the block runs;
    after it, every wait has returned within the bound."""
    done: dict[str, Status] = {}

    def wait(workflow_id: str) -> None:
        done[workflow_id] = client.wait(workflow_id, timeout=60, poll=LONG_POLL)

    threads = [threading.Thread(target=wait, args=(wid,), daemon=True) for wid in ids]
    for thread in threads:
        thread.start()
    endings = hub(client.store)
    eventually(lambda: endings.waiting() == len(ids) and endings.hearing, what="all waiting")
    began = time.monotonic()
    yield done
    for thread in threads:
        thread.join(BOUND)
    assert time.monotonic() - began < BOUND, "woken by the end, not by the 30 s poll"
    assert len(done) == len(ids)


def test_wait_returns_on_the_end_not_on_its_poll(store_url: str, worker_store: Store) -> None:
    with Client(app, open_store(store_url)) as client:
        [wid] = approvals(client, 1)
        with waiting_in_threads(client, [wid]) as done:
            client.signal("approved", workflow_id=wid)
        assert done[wid].state == "completed"
        assert hub(client.store).waiting() == 0


def test_an_async_wait_returns_on_the_end_not_on_its_poll(
    store_url: str, worker_store: Store
) -> None:
    async def scenario(client: AsyncClient) -> tuple[str, float]:
        [started] = await client.start_many([("approval", {}, None)])
        wid = started.workflow_id
        waiter = asyncio.create_task(client.wait(wid, timeout=60, poll=LONG_POLL))
        endings = hub(client.store)
        while not (endings.waiting() == 1 and endings.hearing):
            await asyncio.sleep(0.01)
        began = time.monotonic()
        await client.signal("approved", workflow_id=wid)
        final = await waiter
        return final.state, time.monotonic() - began

    client = AsyncClient(app, open_store(store_url))
    try:
        state, took = asyncio.run(scenario(client))
    finally:
        client.store.close()
    assert state == "completed" and took < BOUND


def test_waiting_for_a_workflow_that_has_ended_opens_no_listener(
    store_url: str, worker_store: Store
) -> None:
    with Client(app, open_store(store_url)) as client:
        [wid] = approvals(client, 1)
        client.cancel(wid, "not needed")
        eventually(lambda: client.status(wid).done)
        assert client.wait(wid, timeout=10, poll=LONG_POLL).state == "compensated"
        assert not hub(client.store).threads() and listeners(store_url, client.store) == 0


def test_a_wait_that_times_out_still_raises_and_leaves_nothing(
    store_url: str, worker_store: Store
) -> None:
    with Client(app, open_store(store_url)) as client:
        [wid] = approvals(client, 1)
        with pytest.raises(WorkflowStillRunning, match=r"still waiting after 0\.3s") as raised:
            client.wait(wid, timeout=0.3, poll=LONG_POLL)
        assert raised.value.status.state == "waiting"

        async def waits() -> None:
            with pytest.raises(WorkflowStillRunning):
                await AsyncClient(app, client.store).wait(wid, timeout=0.3, poll=LONG_POLL)

        asyncio.run(waits())
        assert hub(client.store).waiting() == 0


def test_many_waiters_share_one_listener(store_url: str, worker_store: Store) -> None:
    """200 threads and 2,000 asyncio tasks wait on one store: one listening connection."""
    with Client(app, open_store(store_url)) as client:
        ids = approvals(client, 200)
        with waiting_in_threads(client, ids) as done:
            assert listeners(store_url, client.store) == 1
            for wid in ids[:100]:
                client.signal("approved", workflow_id=wid)
            for wid in ids[100:]:
                client.cancel(wid, "not needed")
        assert {s.state for s in done.values()} == {"completed", "compensated"}

        async def scenario() -> tuple[int, set[str]]:
            aclient = AsyncClient(app, client.store, recheck=LONG_POLL)
            wids = [s.workflow_id for s in await aclient.start_many([("approval", {}, None)] * 20)]
            waits = [aclient.wait(wids[i % 20], timeout=60) for i in range(2000)]
            tasks = [asyncio.create_task(wait) for wait in waits]
            endings = hub(client.store)
            while not (endings.waiting() == 2000 and endings.hearing):
                await asyncio.sleep(0.02)
            count = await asyncio.to_thread(listeners, store_url, client.store)
            for wid in wids:
                await aclient.signal("approved", workflow_id=wid)
            finals = await asyncio.wait_for(asyncio.gather(*tasks), BOUND * 3)
            return count, {s.state for s in finals}

        count, states = asyncio.run(scenario())
        assert count == 1 and states == {"completed"}


def test_a_lost_listener_reconnects_and_a_missed_end_costs_only_the_poll(
    store_url: str, worker_store: Store
) -> None:
    with Client(app, open_store(store_url)) as client:
        store, endings = client.store, hub(client.store)
        [first, second] = approvals(client, 2)
        with waiting_in_threads(client, [first]) as done:
            cut_listener(store_url, store)  # the connection (or socket) is taken away
            eventually(lambda: endings.hearing and listeners(store_url, store) == 1)
            client.signal("approved", workflow_id=first)
        assert done[first].state == "completed"
        # An end nobody hears: only the poll finds it, and it does.
        with unheard_ends(store_url, store):
            waiter = threading.Thread(target=client.wait, args=(second, 60, 0.2))
            waiter.start()
            eventually(lambda: endings.waiting() == 1 and endings.hearing)
            client.signal("approved", workflow_id=second)
            waiter.join(BOUND)
            assert not waiter.is_alive(), "the poll found the end"
        assert client.status(second).state == "completed"


def cut_listener(store_url: str, store: Store) -> None:
    """End the listener's PostgreSQL session (SQLite's socket cannot be cut from outside;
    `unheard_ends` takes its file away)."""
    if store.dialect == "postgresql":
        base = pg_base()
        assert base is not None
        channel = endings_channel(store.schema)  # type: ignore[attr-defined]
        with psycopg.connect(base, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND query LIKE %s",
                (application_name(store_url), f'LISTEN "{channel}"%'),
            ).fetchone()
        assert row is not None and row[0] == 1


@contextmanager
def unheard_ends(store_url: str, store: Store) -> Iterator[None]:
    """Ends are recorded but not announced while the block runs: PostgreSQL's trigger is
    disabled; SQLite's listening socket's file is removed (sends find nobody)."""
    if store.dialect == "sqlite":
        eventually(lambda: listeners(store_url, store) == 1)
        for path in channel_dir(sqlite_path(store_url)).glob(f"*{ENDED}"):
            path.unlink()
        yield
        return
    base = pg_base()
    assert base is not None
    schema = store.schema  # type: ignore[attr-defined]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {schema}.facts DISABLE TRIGGER facts_notify_ended")
        try:
            yield
        finally:
            conn.execute(f"ALTER TABLE {schema}.facts ENABLE TRIGGER facts_notify_ended")


def test_closing_the_store_leaves_no_listener(store_url: str, worker_store: Store) -> None:
    client = Client(app, open_store(store_url))
    endings = hub(client.store)
    [wid] = approvals(client, 1)
    with waiting_in_threads(client, [wid]):
        client.signal("approved", workflow_id=wid)
    assert endings.threads(), "the listener outlives a wait by a while"
    client.close()
    assert not endings.threads()
    assert not [t for t in threading.enumerate() if t.name.endswith(" endings")]
    eventually(lambda: listeners(store_url, client.store) == 0, what="no listener left")


def test_an_idle_listener_lets_go_and_comes_back(
    store_url: str, worker_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steadyhand.store.endings, "IDLE_AFTER", 0.2)
    with Client(app, open_store(store_url)) as client:
        endings = hub(client.store)
        for _ in range(2):
            [wid] = approvals(client, 1)
            with waiting_in_threads(client, [wid]):
                client.signal("approved", workflow_id=wid)
            eventually(lambda: not endings.threads(), what="the idle listener stopped")
            eventually(lambda: listeners(store_url, client.store) == 0)
