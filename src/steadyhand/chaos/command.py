"""`steadyhand chaos`: the chaos experiment from the command line, with a progress line every
few seconds, a JSON summary or a short verdict, and optionally its section of
docs/RELIABILITY.md. Exit code 0 when every invariant held, 3 when one did not.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import click

from steadyhand.chaos.options import DEFAULT_PG, TERMINATE_SCOPES, ChaosOptions
from steadyhand.core import jsoncodec
from steadyhand.demo.command import sigterm_as_ctrl_c
from steadyhand.demo.options import PROFILE_NAMES, DemoError

EXIT_VIOLATIONS = 3
EXIT_INTERRUPTED = 130
_DEFAULTS = ChaosOptions()


def _cluster(value: str) -> tuple[str, str]:
    version, _, name = value.partition("/")
    if not version or not name:
        raise click.BadParameter("expected VERSION/NAME, e.g. 15/main")
    return version, name


@click.command()
@click.option("--workflows", default=_DEFAULTS.workflows, show_default=True, help="Trips.")
@click.option("--rate", default=_DEFAULTS.rate, show_default=True, help="Trips started per second.")
@click.option("--workers", default=_DEFAULTS.workers, show_default=True, help="Worker processes.")
@click.option("--concurrency", default=_DEFAULTS.concurrency, show_default=True)
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, help="Seeds faults and kills.")
@click.option(
    "--backend",
    type=click.Choice(["sqlite", "postgresql"]),
    default=_DEFAULTS.backend,
    show_default=True,
    help="Without --db: a fresh SQLite file, or the schema steadyhand_chaos of --pg-url.",
)
@click.option("--db", default=None, help="Use this store as it is (not reset) instead.")
@click.option("--pg-url", default=DEFAULT_PG, show_default=True, help="PostgreSQL server.")
@click.option(
    "--faults", type=click.Choice(PROFILE_NAMES), default=_DEFAULTS.faults, show_default=True
)
@click.option("--kill-every", default=_DEFAULTS.kill_every, show_default=True, help="Mean s.")
@click.option(
    "--min-kills",
    default=_DEFAULTS.min_kills,
    show_default=True,
    help="Fail the run if fewer workers were killed.",
)
@click.option(
    "--disruptions",
    default=_DEFAULTS.disruptions,
    show_default=True,
    help="Connection terminations (PostgreSQL) or write-lock holds (SQLite).",
)
@click.option(
    "--restarts",
    default=_DEFAULTS.restarts,
    show_default=True,
    help="PostgreSQL server restarts (pg_ctlcluster; needs root).",
)
@click.option(
    "--terminate-scope",
    type=click.Choice(TERMINATE_SCOPES),
    default=_DEFAULTS.terminate_scope,
    show_default=True,
    help="Terminate every connection to the database, or only this run's.",
)
@click.option("--pg-cluster", default="15/main", show_default=True, help="For pg_ctlcluster.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_DEFAULTS.workdir,
    show_default=True,
)
@click.option("--timeout", default=_DEFAULTS.timeout, show_default=True, help="Seconds.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the figures into this Markdown file (e.g. docs/RELIABILITY.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary.")
def chaos(
    workflows: int,
    rate: float,
    workers: int,
    concurrency: int,
    seed: int,
    backend: str,
    db: str | None,
    pg_url: str,
    faults: str,
    kill_every: float,
    min_kills: int,
    disruptions: int,
    restarts: int,
    terminate_scope: str,
    pg_cluster: str,
    workdir: Path,
    timeout: float,
    report: Path | None,
    as_json: bool,
) -> None:
    """Run trips under hostile faults while workers are killed and the store is disrupted.

    Then check every invariant against the services' ledgers and the facts, print the
    figures, and (with --report) write them to docs/RELIABILITY.md. Exits 3 naming the
    workflows if any invariant broke, or if fewer than --min-kills workers were killed.
    """
    try:
        options = ChaosOptions(
            workflows=workflows,
            rate=rate,
            workers=workers,
            concurrency=concurrency,
            seed=seed,
            backend=backend,
            db=db,
            pg_url=pg_url,
            faults=faults,
            kill_every=kill_every,
            min_kills=min_kills,
            disruptions=disruptions,
            restarts=restarts,
            terminate_scope=terminate_scope,
            pg_cluster=_cluster(pg_cluster),
            workdir=workdir,
            timeout=timeout,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    from steadyhand.chaos.harness import run_chaos
    from steadyhand.chaos.reliability import update
    from steadyhand.demo.service_process import ServiceStartError

    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # broken connections are the point
    with sigterm_as_ctrl_c():
        say = None if as_json else (lambda message: click.echo(message, err=True))
        try:
            result = run_chaos(options, say)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: every process the run started is stopped", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (DemoError, ServiceStartError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    summary = result.to_json()
    if as_json:
        click.echo(jsoncodec.pretty(summary))
    else:
        _print(summary)
    if report is not None:
        update(report, result, "steadyhand " + shlex.join(sys.argv[1:]))
        click.echo(f"wrote the figures to {report}", err=True)
    if not result.ok:
        sys.exit(EXIT_VIOLATIONS)
    if result.workers_killed < options.min_kills:
        click.echo(f"only {result.workers_killed} kills (--min-kills {min_kills})", err=True)
        sys.exit(EXIT_VIOLATIONS)


def _print(summary: dict[str, object]) -> None:
    skip = {"checks", "problems", "failed_trips", "disruptions", "faults_injected"}
    for key, value in summary.items():
        if key not in skip:
            click.echo(f"{key:>30}: {value}")
    for problem in summary["problems"]:  # type: ignore[attr-defined]
        click.echo(f"VIOLATION {problem}")
