"""What priorities cost when leasing (issue 17): `lease_tasks` with the priority order
(eleven index range scans) against the plain oldest-first order it replaced, on queues of
N tasks, and what the trigger that copies a workflow's priority costs per task insert.

    .venv/bin/python -m bench.leasing --pg postgresql://postgres@127.0.0.1:5432/sh_x --n 20000

Scenarios: `due` (N due tasks of priority 0), `waiting` (N tasks due in an hour, 64 due
now: many workflows waiting for events), `flood` (N due tasks of priority 9, 64 of
priority 0). Each lease takes 32 tasks and gives them back (outside the timing).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from steadyhand.store import Store, open_store
from steadyhand.store.priorities import AGE_BOOST

OLD_LEASE = """
    UPDATE tasks SET lease_owner = :owner, lease_expires_at = :until
    WHERE id IN (
        SELECT id FROM tasks WHERE lease_owner IS NULL AND due_at <= :now AND service IS NULL
        ORDER BY due_at LIMIT :limit {lock}
    )
    RETURNING id
"""
INSERT = """
    INSERT INTO tasks (workflow_id, kind, step, attempt, due_at, payload, created_at, priority)
    VALUES (:id, 'action', 's', 1, :due_at, '{}', :now, :priority)
"""


def _fill(store: Store, rows: list[dict[str, Any]]) -> float:
    began = time.perf_counter()
    with store.transaction() as tx:
        for row in rows:
            tx.query(INSERT, row)
    return (time.perf_counter() - began) / max(1, len(rows))


def _rows(n: int, due: float, priority: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"w{secrets.token_hex(6)}",
            "due_at": due + i * 1e-6,
            "now": due,
            "priority": priority,
        }
        for i in range(n)
    ]


def _lease_ms(store: Store, old: bool, rounds: int = 100) -> float:
    lock = "FOR UPDATE SKIP LOCKED" if store.dialect == "postgresql" else ""
    times = []
    for _ in range(rounds):
        now = time.time()
        began = time.perf_counter()
        if old:
            with store.transaction() as tx:
                params = {"owner": "b", "until": now + 30, "now": now, "limit": 32}
                ids = [r[0] for r in tx.query(OLD_LEASE.format(lock=lock), params).fetchall()]
        else:
            ids = [t.id for t in store.lease_tasks("b", 32, now, now + 30)]
        times.append((time.perf_counter() - began) * 1000)
        store.release_leases("b", ids)
    return statistics.median(times)


def scenario(url: str, name: str, n: int) -> dict[str, float]:
    store = open_store(url)
    try:
        now = time.time() - AGE_BOOST / 2  # due, but not yet aged
        if name == "due":
            insert = _fill(store, _rows(n, now, 0))
        elif name == "waiting":
            insert = _fill(store, _rows(n, now + 3600, 0))
            _fill(store, _rows(64, now, 0))
        else:
            insert = _fill(store, _rows(n, now, 9))
            _fill(store, _rows(64, now - 1, 0))
        return {
            "insert_us": insert * 1e6,
            "old_ms": _lease_ms(store, old=True),
            "new_ms": _lease_ms(store, old=False),
        }
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", default=None, help="A PostgreSQL database to use (a schema).")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'backend':10} {'scenario':8} {'N':>7} {'insert µs':>10} {'old ms':>7} {'new ms':>7}")
    for backend in ("sqlite", "postgres") if args.pg else ("sqlite",):
        for name in ("due", "waiting", "flood"):
            with tempfile.TemporaryDirectory() as folder:
                schema = f"bench_{secrets.token_hex(4)}"
                url = (
                    f"sqlite:///{Path(folder) / 'b.db'}"
                    if backend == "sqlite"
                    else f"{args.pg}?schema={schema}"
                )
                try:
                    r = scenario(url, name, args.n)
                finally:
                    if backend == "postgres":
                        with psycopg.connect(args.pg, autocommit=True) as conn:
                            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            print(
                f"{backend:10} {name:8} {args.n:>7} {r['insert_us']:>10.1f} "
                f"{r['old_ms']:>7.2f} {r['new_ms']:>7.2f}"
            )


if __name__ == "__main__":
    main()
