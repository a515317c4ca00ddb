"""The cost of one workflow with a very long history (issue 15 §13): what one more event
costs, how long `explain` takes and how large the dashboard's page is, with 10 events of
history and with N (100,000 by default).

    .venv/bin/python -m bench.flood --backend sqlite --events 100000
    .venv/bin/python -m bench.flood --backend postgres --pg postgresql://postgres@127.0.0.1/db

The history is written in bulk through the store (the setup is not what is measured);
then each figure is the median of `--repeat` runs. Ratios (long/short) are the point: the
absolute figures move with the machine's load.
"""

from __future__ import annotations

import argparse
import io
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from rich.console import Console
from starlette.testclient import TestClient

from steadyhand import App, Client, Step, open_store
from steadyhand.core.status import derive_status
from steadyhand.core.stuck import StuckRule
from steadyhand.ops.reports import inspect_workflow
from steadyhand.ops.story import tell
from steadyhand.store import Store
from steadyhand.web import DashboardOptions, create_app

APP = App()
APP.workflow("flooded", [Step("wait", wait_for="never", deadline=86_400.0)])
TOKEN = "bench-token-0123456789abcdef"


def flooded(store: Store, events: int) -> str:
    """A workflow with `events` events in its history, written in bulk."""
    client = Client(APP, store)
    workflow_id = client.start("flooded", {}).workflow_id
    seq = len(client.view(workflow_id).facts)
    rows = []
    now = time.time()
    for i in range(events):
        seq += 1
        rows.append(
            {"id": workflow_id, "seq": seq, "kind": "event_received", "step": f"ping{i % 50}",
             "attempt": None, "slot": None, "data": {"payload": i}, "at": now, "service": None}
        )  # fmt: skip
        if len(rows) == 5000 or i == events - 1:
            with store.transaction() as tx:
                tx.execute_many("insert_fact", rows)
            rows = []
    return workflow_id


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(store: Store, workflow_id: str, repeat: int) -> dict[str, float]:
    client = Client(APP, store)
    rule = StuckRule()

    def signal() -> None:
        client.signal("ping", None, workflow_id=workflow_id)

    def explain(everything: bool) -> Callable[[], None]:
        def run() -> None:
            from steadyhand.cli.render import print_explain

            view, tasks, stuck = inspect_workflow(store, workflow_id, time.time(), rule)
            story = tell(view, derive_status(view, tasks), stuck, limit=None if everything else 500)
            print_explain(story, Console(file=io.StringIO(), width=160))

        return run

    with TestClient(create_app(store, DashboardOptions(token=TOKEN))) as http:
        page = http.get(f"/workflows/{workflow_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    return {
        "signal_ms": 1000 * median_seconds(signal, repeat * 10),
        "explain_s": median_seconds(explain(False), repeat),
        "explain_all_s": median_seconds(explain(True), 1),
        "page_kb": len(page.content) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        schema = f"flood_{secrets.token_hex(4)}"
        url = (
            f"sqlite:///{Path(folder) / 'flood.db'}"
            if args.backend == "sqlite"
            else f"{args.pg}{'&' if '?' in args.pg else '?'}schema={schema}"
        )
        store = open_store(url)
        try:
            results = {n: measure(store, flooded(store, n), args.repeat) for n in (10, args.events)}
        finally:
            store.close()
            if args.backend == "postgres":
                with psycopg.connect(args.pg, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]
    short, long = results[10], results[args.events]
    print(f"backend {args.backend}; history of 10 vs {args.events:,} events")
    print(f"{'figure':<28}{'10':>12}{args.events:>12,}{'ratio':>10}")
    for key, label in (
        ("signal_ms", "one more event (ms)"),
        ("explain_s", "explain, first page (s)"),
        ("explain_all_s", "explain --all (s)"),
        ("page_kb", "dashboard page (KiB)"),
    ):
        ratio = long[key] / short[key] if short[key] else float("nan")
        print(f"{label:<28}{short[key]:>12.3f}{long[key]:>12.3f}{ratio:>10.2f}")


if __name__ == "__main__":
    main()
