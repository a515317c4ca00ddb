"""What every store must guarantee, checked on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from steadyhand import Client, open_store
from steadyhand.core.errors import StoreError
from steadyhand.core.records import NewFact, Task
from steadyhand.engine.engine import Engine
from steadyhand.store import Store
from steadyhand.store.base import BatchWrite
from steadyhand.store.clock import store_clock
from steadyhand.store.migrations import latest_version, migrations
from tests.apps.scripted import app


def _started(store: Store, tmp_path: Path) -> str:
    return Client(app, store).start("trip", {"ledger": str(tmp_path / "l.db")}).workflow_id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE facts SET kind = 'workflow_completed'",
        "DELETE FROM facts",
        "UPDATE workflows SET name = 'other'",
        "DELETE FROM workflows",
    ],
)
def test_the_database_refuses_to_change_history(
    store: Store, tmp_path: Path, statement: str
) -> None:
    workflow_id = _started(store, tmp_path)
    with store.snapshot() as tx:
        before = tx.read_facts(workflow_id)
    with pytest.raises(StoreError, match="append-only"), store.transaction() as tx:
        tx._conn.execute(statement)  # type: ignore[attr-defined]
    with store.snapshot() as tx:
        assert tx.read_facts(workflow_id) == before
        assert tx.get_workflow(workflow_id) is not None


def test_a_second_attempt_with_the_same_number_is_impossible(store: Store, tmp_path: Path) -> None:
    workflow_id = _started(store, tmp_path)
    with store.transaction() as tx:
        first = tx.read_facts(workflow_id)
        scheduled = next(f for f in first if f.kind == "attempt_scheduled")
        duplicate = NewFact("attempt_scheduled", scheduled.step, 1, scheduled.slot, {})
        assert tx.append_fact(workflow_id, first[-1].seq + 1, duplicate, time.time()) is False
    # Even raw SQL that bypasses the engine's ON CONFLICT is refused by the unique index.
    with pytest.raises(StoreError), store.transaction() as tx:
        tx._conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO facts (workflow_id, seq, kind, step, attempt, slot, data, at) "
            f"VALUES ('{workflow_id}', 999, 'attempt_scheduled', 'flight', 1, "
            f"'{scheduled.slot}', '{{}}', 0)"
        )


def test_racing_supervisors_never_schedule_an_attempt_twice(store_url: str, tmp_path: Path) -> None:
    """Many threads (each with its own store and connections) supervise one workflow at once."""
    setup = open_store(store_url)
    workflow_id = _started(setup, tmp_path)
    stores = [open_store(store_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def race(s: Store) -> None:
        engine = Engine(s, app.supervisors)
        barrier.wait()
        try:
            for _ in range(5):
                fake = Task(-1, workflow_id, "supervise", None, None, 0.0, {})
                engine.supervise(fake)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    with setup.snapshot() as tx:
        facts = tx.read_facts(workflow_id)
    scheduled = [(f.step, f.attempt) for f in facts if f.kind == "attempt_scheduled"]
    assert scheduled == [("flight", 1)]
    assert sum(1 for f in facts if f.kind == "supervisor_ran") == 31
    with setup.snapshot() as tx:
        tasks = tx.workflow_tasks(workflow_id)
    assert [(t.kind, t.step, t.attempt) for t in tasks] == [("action", "flight", 1)]
    for s in [*stores, setup]:
        s.close()


def test_wakeups_coalesce_into_one_pending_supervise_task(store: Store, tmp_path: Path) -> None:
    workflow_id = _started(store, tmp_path)
    now = time.time()
    with store.transaction() as tx:
        tx.wake_supervisor(workflow_id, now + 10, now)
        tx.wake_supervisor(workflow_id, now + 5, now)
        tx.wake_supervisor(workflow_id, now + 20, now)
    with store.snapshot() as tx:
        supervise = [t for t in tx.workflow_tasks(workflow_id) if t.kind == "supervise"]
    assert len(supervise) == 1
    assert supervise[0].due_at == pytest.approx(now + 5)


def test_leases_are_exclusive_and_expire(store_url: str, tmp_path: Path) -> None:
    a, b = open_store(store_url), open_store(store_url)
    for _ in range(5):
        _started(a, tmp_path)
    now = store_clock(a).now()  # the store's clock, which stamped the calls due
    got_a = a.lease_tasks("a", 3, now, now + 0.2)
    got_b = b.lease_tasks("b", 10, now, now + 0.2)
    assert len(got_a) == 3 and len(got_b) == 2
    assert not {t.id for t in got_a} & {t.id for t in got_b}
    assert a.renew_leases("a", [t.id for t in got_a], now + 60) == 3
    assert a.renew_leases("b", [t.id for t in got_a], now + 60) == 0, "only the owner renews"
    with a.snapshot() as tx:
        expired = tx.expired_leases(now + 1, 100)
    assert {t.id for t in expired} == {t.id for t in got_b}
    a.close()
    b.close()


def test_schema_is_versioned_and_migrate_is_idempotent(store: Store) -> None:
    dialect = "sqlite" if store.dialect == "sqlite" else "postgres"
    latest = latest_version(dialect)
    assert store.migrate() == latest
    assert store.migrate() == latest
    with store.snapshot() as tx:
        versions = [r[0] for r in tx.query("SELECT version FROM steadyhand_schema").fetchall()]
    assert sorted(versions) == [v for v, _, _ in migrations(dialect)]


def _fact_row(workflow_id: str, seq: int) -> dict[str, object]:
    return {"id": workflow_id, "seq": seq, "kind": "note", "step": None, "attempt": None,
            "slot": None, "data": {"n": seq}, "at": time.time(), "service": None}  # fmt: skip


def test_a_batch_write_is_read_back_and_refused_whole(store: Store, tmp_path: Path) -> None:
    """PostgreSQL sends a batch write on with what follows it to the COMMIT: a statement
    that reads after it sees it, and a refused batch takes the whole transaction with it."""
    workflow_id = _started(store, tmp_path)
    with store.snapshot() as tx:
        last = tx.read_facts(workflow_id)[-1].seq
    with store.transaction() as tx:
        tx.lock_workflow(workflow_id)
        tx.write_batch(BatchWrite(facts=[_fact_row(workflow_id, last + 1)]))
        assert tx.read_facts(workflow_id)[-1].seq == last + 1, "read after the batch"
        tx.write_batch(BatchWrite(facts=[_fact_row(workflow_id, last + 2)]))
    with pytest.raises(StoreError), store.transaction() as tx:
        tx.lock_workflow(workflow_id)
        tx.write_batch(BatchWrite(facts=[_fact_row(workflow_id, last + 3)]))
        tx.write_batch(BatchWrite(facts=[_fact_row(workflow_id, last + 1)]))  # seq taken
        tx.execute_many("wake_supervisor", [{"id": workflow_id, "due_at": 0.0, "now": 0.0}])
    with store.snapshot() as tx:
        assert [f.seq for f in tx.read_facts(workflow_id)][-1] == last + 2, "nothing of it"
        assert all(t.kind != "supervise" for t in tx.workflow_tasks(workflow_id))
