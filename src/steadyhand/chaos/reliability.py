"""The figures of a chaos run, as a Markdown section of docs/RELIABILITY.md (one section per
backend, replaced in place by the next run on that backend) with the machine and command.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sqlite3
from pathlib import Path

from steadyhand.chaos.harness import ChaosResult
from steadyhand.store.pg_admin import server_version

HEADER = """# Reliability: chaos runs

`make chaos` runs the long chaos experiment once per backend and rewrites the sections below
with its figures. Each run books 2,000 trips (code-first: a flight, then hotel and car side
by side in a `wf.gather`; 10 started per second) against the demo's three services with
**hostile** faults (transient 503s, outages, hangs, lost confirmations, sold-out refusals),
on 4 worker processes with 3 s leases, while the harness (`src/steadyhand/chaos/`,
`steadyhand chaos --help`):

- SIGKILLs a worker process every ~1.5 s and starts a new one (every other kill waits up to
  2 s for a worker holding one branch of a trip's gather while the other is open: mid-gather);
- on PostgreSQL, terminates every connection to the database with `pg_terminate_backend`
  a few times and restarts the server once (`pg_ctlcluster … restart`, then `pg_isready`);
- on SQLite, holds the write lock (`BEGIN IMMEDIATE`) from another process for 2-5 s a few
  times;
- disrupts single workers: one with its wall clock 40 s fast and one 40 s slow (libfaketime)
  beside the fleet, one SIGSTOPped for longer than its lease then continued, and (on
  PostgreSQL) one whose database traffic a proxy stalls for longer than its lease;
- snapshots a sha256 digest of every workflow's facts before each disruption;

and at the end checks, against the store and the services' own ledgers:

1. every workflow ended, with exactly one terminal fact in its current round;
2. no double booking, no half-done trip, completed trips hold exactly their bookings and
   compensated trips none (the demo's audit);
3. every booking a service holds is explained by the facts: an `attempt_succeeded`, a probe
   that answered `done`, or an unknown outcome followed by a compensation of that step;
4. every `supervisor_ran` fact carries run, saw, decided and why, numbered 1..n per round;
5. facts are append-only: each workflow's history at a snapshot is a byte-identical prefix of
   its history at the end, and seq numbers run 1..n without gaps.

Workers ride out the store going away: on PostgreSQL they retry store calls with backoff
("store calls retried" counts their log lines); on SQLite they wait on the busy timeout
(15 s), so a held lock costs no retry at all. Invariant violations must be 0. `failed`
trips (a compensation that could not be done) are an honest outcome, counted apart; one
that still held bookings would count as half-done.
A short version (40 trips, one disruption) runs in `make test` (`tests/chaos/`).
"""


def _begin(backend: str) -> str:
    return f"<!-- chaos:{backend}:begin -->"


def _end(backend: str) -> str:
    return f"<!-- chaos:{backend}:end -->"


def machine(result: ChaosResult) -> str:
    """Cores, CPU, Python, SQLite and (when reachable) PostgreSQL versions."""
    cpu = platform.processor() or platform.machine()
    with_name = Path("/proc/cpuinfo")
    if with_name.exists():
        for line in with_name.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    parts = [
        f"{os.cpu_count()} cores ({cpu})",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if result.options.dialect == "postgresql":
        version = server_version(result.db_url)
        if version is not None:
            parts.append(f"PostgreSQL {version}")
        else:
            parts.append("PostgreSQL (unreachable when the report was written)")
    return ", ".join(parts)


def section(result: ChaosResult, command: str, when: dt.datetime | None = None) -> str:
    """The Markdown section of one run."""
    backend = result.options.dialect
    figures = result.to_json()
    counts = result.disruption_counts()
    stamp = (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    title = "PostgreSQL" if backend == "postgresql" else "SQLite"
    if backend == "postgresql":
        disruptions = (
            f"{counts['terminate']} x `pg_terminate_backend` of every connection, "
            f"{counts['restart']} x server restart"
        )
    else:
        disruptions = f"{counts['lock']} x write lock held by another process"
    rows = [
        ("workflows", f"{figures['workflows']}"),
        (
            "ended completed / compensated / failed",
            f"{figures['completed']} / {figures['compensated']} / {figures['failed']}",
        ),
        ("unfinished", f"{figures['unfinished']}"),
        ("workers SIGKILLed", f"{figures['kills']} (of {figures['workers_started']} started)"),
        (
            "of them mid-gather (holding a branch of a trip's `wf.gather`, its sibling open)",
            f"{figures.get('kills_mid_gather', 0)}",
        ),
        ("workers that exited by themselves", f"{figures['workers_exited_by_themselves']}"),
        ("database disruptions", disruptions),
        (
            "worker disruptions",
            f"{counts['skew_fast'] + counts['skew_slow']} x clock 40 s off, "
            f"{counts['pause']} x SIGSTOP past the lease, {counts['partition']} x partition",
        ),
        ("store calls retried by workers (log lines)", f"{figures['store_retries_logged']}"),
        ("agent calls scheduled", f"{figures['attempts']}"),
        ("retries (attempts after the first)", f"{figures['retries']}"),
        ("probes (outcome unknown, asked the service)", f"{figures['probes']}"),
        ("compensations (bookings undone)", f"{figures['compensations']}"),
        ("calls lost with a killed worker", f"{figures['calls_lost']}"),
        (
            "calls timed out / cut off",
            f"{figures['calls_timed_out']} / {figures['calls_uncertain']}",
        ),
        ("history snapshots compared", f"{figures['history_snapshots']}"),
        ("**invariant violations**", f"**{figures['invariant_violations']}**"),
        ("duration", f"{figures['duration_s']:.0f} s"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    checks = "\n".join(
        f"- {c.name}: {len(c.problems)} violation{'' if len(c.problems) == 1 else 's'}"
        for c in result.verdict.checks
    )
    timeline = (
        "\n".join(f"- at {d.at:.0f} s: {d.kind} — {d.detail}" for d in result.disruptions)
        or "- none"
    )
    faults = ", ".join(f"{k} {v}" for k, v in result.faults_injected.items()) or "none"
    return f"""{_begin(backend)}
## {title}

{stamp}; {machine(result)}.

```sh
{command}
```

| figure | value |
| --- | --- |
{table}

Faults the services injected: {faults}.

Disruptions:
{timeline}

Checks:
{checks}
{_end(backend)}
"""


def update(path: Path, result: ChaosResult, command: str) -> None:
    """Write this run's section into `path`, replacing the previous one for its backend."""
    backend = result.options.dialect
    text = path.read_text() if path.exists() else HEADER
    new = section(result, command).rstrip("\n")
    begin, end = _begin(backend), _end(backend)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + new + tail
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
