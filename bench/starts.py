"""Starting workflows: `Client.start_many` in batches of 1,000 and single `Client.start`
from 4 threads, on SQLite and PostgreSQL (issue 16 targets: start_many >= 10,000/s on both
stores, 4-thread start >= 2,500/s on PostgreSQL). Nothing runs the workflows; this is the
client's side only.

    python -m bench.starts --n 10000 [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from bench.common import DEFAULT_PG, drop_schema, fresh_schema_url, pg_reachable, sqlite_url
from bench.workload import app

BATCH = 1000
THREADS = 4


def many(url: str, n: int) -> float:
    """Workflows per second started by `start_many` in batches of `BATCH`."""
    client = app.connect(url)
    try:
        client.start_many([("three", {"i": -1}, None)])  # warm: schema, pool, plan
        began = time.perf_counter()
        for at in range(0, n, BATCH):
            client.start_many([("three", {"i": i}, None) for i in range(at, min(n, at + BATCH))])
        return n / (time.perf_counter() - began)
    finally:
        client.close()


def threaded(url: str, n: int) -> float:
    """Workflows per second started by single `start` calls from `THREADS` threads."""
    client = app.connect(url)
    try:
        client.start("three", {"i": -1})
        share = n // THREADS

        def run() -> None:
            for i in range(share):
                client.start("three", {"i": i})

        threads = [threading.Thread(target=run) for _ in range(THREADS)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return share * THREADS / (time.perf_counter() - began)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--pg", default=DEFAULT_PG)
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for how, fn, target in (("start_many", many, 10000.0), ("start x4", threaded, 0.0)):
            rows.append(("SQLite", how, fn(sqlite_url(Path(tmp), f"{how}.db"), args.n), target))
    if pg_reachable(args.pg):
        for how, fn, target in (("start_many", many, 10000.0), ("start x4", threaded, 2500.0)):
            url = fresh_schema_url(args.pg)
            try:
                rows.append(("PostgreSQL", how, fn(url, args.n), target))
            finally:
                drop_schema(url)
    print("| store | how | workflows/s | target | verdict |\n| --- | --- | --- | --- | --- |")
    for store, how, rate, target in rows:
        verdict = "-" if not target else "met" if rate >= target else f"missed x{target / rate:.1f}"
        goal = f"{target:,.0f}" if target else "-"
        print(f"| {store} | {how} | {rate:,.0f} | {goal} | {verdict} |")


if __name__ == "__main__":
    main()
