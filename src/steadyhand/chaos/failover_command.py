"""`steadyhand failover`: lose the PostgreSQL primary mid-run (see `chaos.failover`), print
the figures, and optionally write them into docs/RELIABILITY.md (its own section). Exit code
0 when nothing was lost or doubled and every invariant held, 3 otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from steadyhand.chaos.options import ChaosOptions
from steadyhand.core import jsoncodec
from steadyhand.demo.command import sigterm_as_ctrl_c
from steadyhand.demo.options import PROFILE_NAMES, DemoError

if TYPE_CHECKING:
    from steadyhand.chaos.failover import FailoverResult

EXIT_VIOLATIONS = 3
BEGIN, END = "<!-- failover:begin -->", "<!-- failover:end -->"


@click.command()
@click.option("--workflows", default=600, show_default=True, help="Trips.")
@click.option("--rate", default=10.0, show_default=True, help="Trips started per second.")
@click.option("--workers", default=4, show_default=True, help="Worker processes.")
@click.option("--concurrency", default=16, show_default=True)
@click.option("--seed", default=1, show_default=True, help="Seeds faults and kills.")
@click.option("--faults", type=click.Choice(PROFILE_NAMES), default="hostile", show_default=True)
@click.option(
    "--failovers", default=3, show_default=True, help="Primaries lost, spread over the run."
)
@click.option("--kill-every", default=3.0, show_default=True, help="Mean s between worker kills.")
@click.option("--port", type=int, default=None, help="Primary's port (standby: +1); default free.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("steadyhand-failover"),
    show_default=True,
)
@click.option("--timeout", default=900.0, show_default=True, help="Seconds.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the figures into this Markdown file (e.g. docs/RELIABILITY.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary.")
def failover(
    workflows: int,
    rate: float,
    workers: int,
    concurrency: int,
    seed: int,
    faults: str,
    failovers: int,
    kill_every: float,
    port: int | None,
    workdir: Path,
    timeout: float,
    report: Path | None,
    as_json: bool,
) -> None:
    """Run trips on a throwaway primary + synchronous standby, SIGKILL the primary halfway
    through, promote the standby, and check that nothing was lost or done twice.

    Builds both clusters with initdb / pg_basebackup in a temp directory on two free
    loopback ports (never the server on :5432) and stops them at the end.
    """
    try:
        options = ChaosOptions(
            workflows=workflows,
            rate=rate,
            workers=workers,
            concurrency=concurrency,
            seed=seed,
            faults=faults,
            failovers=failovers,
            kill_every=kill_every,
            min_kills=0,
            disruptions=0,
            restarts=0,
            terminate_scope="run",
            workdir=workdir,
            timeout=timeout,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    from steadyhand.chaos.cluster import ClusterError
    from steadyhand.chaos.failover import run_failover
    from steadyhand.demo.service_process import ServiceStartError

    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # broken connections are the point
    with sigterm_as_ctrl_c():
        say = None if as_json else (lambda message: click.echo(message, err=True))
        try:
            result = run_failover(options, port, say)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: every process the run started is stopped", err=True)
            sys.exit(130)
        except (DemoError, ServiceStartError, ClusterError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    summary = result.to_json()
    if as_json:
        click.echo(jsoncodec.pretty(summary))
    else:
        for key, value in summary.items():
            if key != "chaos":
                click.echo(f"{key:>28}: {value}")
        for problem in result.chaos.to_json()["problems"]:
            click.echo(f"VIOLATION {problem}")
    if report is not None:
        update(report, result, "steadyhand " + shlex.join(sys.argv[1:]))
        click.echo(f"wrote the figures to {report}", err=True)
    if not result.ok:
        sys.exit(EXIT_VIOLATIONS)


def section(result: FailoverResult, command: str) -> str:
    """The Markdown section of one failover run."""
    figures = result.to_json()
    chaos = result.chaos.to_json()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, " + (
        f"Python {platform.python_version()}, {result.server}"
    )
    lost = f"{figures['starts_acknowledged']} / **{figures['starts_lost']}**"
    signals = f"{figures['signals_answered']} / **{figures['signals_lost']}**"
    recovered = ", ".join(f"{v} s" for v in figures["kill_to_first_decision_s"])
    writable = ", ".join(f"{v} s" for v in figures["kill_to_standby_writable_s"])
    rows = [
        ("workflows", chaos["workflows"]),
        (
            "ended completed / compensated / failed",
            f"{chaos['completed']} / {chaos['compensated']} / {chaos['failed']}",
        ),
        ("unfinished", chaos["unfinished"]),
        ("primaries SIGKILLed, standbys promoted", figures["failovers"]),
        ("kill → standby accepts writes", writable),
        ("**kill → first decision on the new primary**", f"**{recovered}**"),
        ("workers SIGKILLed as well", f"{chaos['kills']} (of {chaos['workers_started']} started)"),
        ("workers that exited by themselves", chaos["workers_exited_by_themselves"]),
        ("store calls retried by workers (log lines)", chaos["store_retries_logged"]),
        ("starts acknowledged / **lost**", lost),
        ("signals answered / **lost**", signals),
        ("facts seen before the kill, changed or lost", f"**{figures['facts_changed_or_lost']}**"),
        ("**effects doubled** (bookings under one key twice)", f"**{figures['effects_doubled']}**"),
        ("**invariant violations**", f"**{chaos['invariant_violations']}**"),
        ("duration", f"{chaos['duration_s']:.0f} s"),
    ]  # fmt: skip
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    events = "\n".join(f"- {event}" for event in result.events)
    return f"""{BEGIN}
## PostgreSQL failover (primary lost, standby promoted)

{stamp}; {machine}.

Two throwaway clusters on loopback (initdb + pg_basebackup, synchronous
replication, `synchronous_commit = on`); workers, the harness and a signalling client all use
`postgresql://127.0.0.1:P1,127.0.0.1:P2/steadyhand?target_session_attrs=read-write`. The
primary and all its processes are SIGKILLed (spread over the arrivals), the standby is
promoted with `pg_ctl promote`, and the lost node comes back as the new primary's
synchronous standby (a fresh `pg_basebackup`) before the next strike. Nobody restarts a
worker for the switch; workers are SIGKILLed as well, as in `make chaos`.

```sh
{command}
```

| figure | value |
| --- | --- |
{table}

What happened:
{events}
{END}
"""


def update(path: Path, result: FailoverResult, command: str) -> None:
    """Write this run's section into `path`, replacing the previous failover section."""
    text = path.read_text() if path.exists() else "# Reliability\n"
    new = section(result, command).rstrip("\n")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + new + tail
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
