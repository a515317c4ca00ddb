"""Archive throughput (issue 17): `python -m bench.archive [--facts 1000000]`.

A store per backend is seeded with finished workflows (10 facts each, as in `bench.scale`),
then `steadyhand archive` moves all of them to files and removes them. Reported: facts/s
archived end to end (read, write, fsync, verify-able manifest, remove), the archive's size,
and whether workers would stall: while the archive runs, a client starts a workflow every
20 ms and the slowest start is compared with the slowest start before the archive ran
(each removal batch is one short transaction, so the ratio should stay small).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from .common import DEFAULT_PG, fresh_schema_url, machine_info, scratch_database, sqlite_url
from .scale import seed_history

RESULTS_FILE = Path(__file__).with_name("RESULTS.md")


def _starts_while(url: str, stop: threading.Event, took: list[float]) -> None:
    from steadyhand import Client, open_store

    from .workload import app

    store = open_store(url)
    try:
        client = Client(app, store)
        while not stop.is_set():
            started = time.perf_counter()
            client.start("one", None)
            took.append(time.perf_counter() - started)
            stop.wait(0.02)
    finally:
        store.close()


def measure(url: str, facts: int, out: Path) -> dict[str, float]:
    from steadyhand import open_store
    from steadyhand.ops.archive import archive, verify

    open_store(url).close()  # create the schema
    seed_history(url, facts)
    baseline: list[float] = []
    stop = threading.Event()
    probe = threading.Thread(target=_starts_while, args=(url, stop, baseline))
    probe.start()
    time.sleep(2)
    stop.set()
    probe.join()
    during: list[float] = []
    stop = threading.Event()
    probe = threading.Thread(target=_starts_while, args=(url, stop, during))
    store = open_store(url)
    probe.start()
    try:
        report = archive(store, ended_before=time.time(), to=out, name="bench")
    finally:
        stop.set()
        probe.join()
        store.close()
    started = time.perf_counter()
    problems = verify(report.directory)
    verify_s = time.perf_counter() - started
    size = sum(p.stat().st_size for p in report.directory.iterdir())
    return {
        "facts": report.facts,
        "seconds": report.seconds,
        "facts_per_s": report.facts / report.seconds,
        "mb": size / 1e6,
        "verify_s": verify_s,
        "ok": float(not problems),
        "start_p50_before_ms": statistics.median(baseline) * 1000,
        "start_max_before_ms": max(baseline) * 1000,
        "start_p50_during_ms": statistics.median(during) * 1000,
        "start_max_during_ms": max(during) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__)
    p.add_argument("--facts", type=int, default=1_000_000)
    p.add_argument("--pg", default=DEFAULT_PG)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sh-archive-") as tmp:
        with scratch_database(args.pg, "sharchive") as db:
            rows.append(("postgres", measure(fresh_schema_url(db), args.facts, Path(tmp) / "pg")))
        url = sqlite_url(Path(tmp), "archive.db")
        rows.append(("sqlite", measure(url, args.facts, Path(tmp) / "sqlite")))
    info = machine_info(args.pg)
    lines = [
        f"## Archive throughput - {info['date']}",
        "",
        f"`python -m bench.archive --facts {args.facts}` · cores {info['cores']}, "
        f"load {info['load']}, postgresql {info.get('postgresql', '?')}, sqlite {info['sqlite']}",
        "",
        "| backend | facts | seconds | facts/s | archive MB | verify s | start p50 / max "
        "before (ms) | start p50 / max during (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for backend, r in rows:
        lines.append(
            f"| {backend} | {r['facts']:,.0f} | {r['seconds']:.1f} | {r['facts_per_s']:,.0f} "
            f"| {r['mb']:.1f} | {r['verify_s']:.1f} | {r['start_p50_before_ms']:.1f} / "
            f"{r['start_max_before_ms']:.1f} | {r['start_p50_during_ms']:.1f} / "
            f"{r['start_max_during_ms']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with RESULTS_FILE.open("a") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
