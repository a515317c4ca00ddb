"""`steadyhand archive`: move ended workflows into sealed files, check them, list the runs.

    steadyhand archive --ended-before 30d --to /backups/steadyhand [--name N] [--dry-run]
    steadyhand archive verify /backups/steadyhand/archive-20261201T020000Z
    steadyhand archive runs

Exit codes: 0 done (or the archive is whole), 1 the store could not be reached or the
archive is damaged (each damaged file is named), 2 bad input.
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path

import click

from steadyhand.cli.options import EXIT_UNAVAILABLE, cli_store, db_option, guarded
from steadyhand.ops import archive as archives
from steadyhand.ops.timetext import parse_since, when
from steadyhand.store import archiving


@click.group(invoke_without_command=True)
@click.option("--ended-before", help="Archive workflows that ended before this: 30d, 2026-11-01…")
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path), help="Directory.")
@click.option("--name", default=None, help="Name of this archive (default: archive-<UTC time>).")
@click.option("--dry-run", is_flag=True, help="Say what would be archived; change nothing.")
@click.option("--batch", default=200, show_default=True, help="Workflows removed per transaction.")
@click.option(
    "--limit", default=1_000_000, show_default=True, help="Most workflows per run (run again)."
)
@db_option
@click.pass_context
@guarded
def archive(
    ctx: click.Context,
    ended_before: str | None,
    to: Path | None,
    name: str | None,
    dry_run: bool,
    batch: int,
    limit: int,
    db: str | None,
) -> None:
    """Write ended workflows to sealed files, then remove them from the store."""
    if ctx.invoked_subcommand is not None:
        return
    if not ended_before or (to is None and not dry_run):
        raise click.UsageError("give --ended-before (e.g. 30d) and --to DIR (or --dry-run)")
    cutoff = parse_since(ended_before, time.time())
    store = cli_store(db)
    try:
        report = archives.archive(
            store,
            ended_before=cutoff,
            to=to or Path("."),
            name=name,
            dry_run=dry_run,
            by=getpass.getuser(),
            batch=batch,
            limit=limit,
            progress=lambda line: click.echo(line, err=True),
        )
    finally:
        store.close()
    if not report.workflows:
        click.echo(f"nothing ended before {when(cutoff)}; nothing to archive")
        return
    span = f"ended {when(report.first_ended or 0)} … {when(report.last_ended or 0)}"
    if report.dry_run:
        click.echo(f"would archive {report.workflows:,} workflows ({span}); nothing changed")
        return
    rate = report.facts / report.seconds if report.seconds else 0
    click.echo(
        f"archived {report.workflows:,} workflows and {report.facts:,} facts ({span}) "
        f"to {report.directory} in {report.seconds:.1f}s ({rate:,.0f} facts/s); "
        f"removed {report.removed_facts:,} facts from the store"
    )


@archive.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def verify(directory: Path) -> None:
    """Check an archive's manifest, file hashes and hash chain; name anything changed."""
    problems = archives.verify(directory)
    if problems:
        for problem in problems:
            click.echo(f"damaged: {problem}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    manifest = archives.load_manifest(directory)
    counts = manifest["counts"]
    click.echo(
        f"ok: {directory} holds {counts['workflows']:,} workflows and {counts['facts']:,} "
        f"facts; every hash and the chain match"
    )


@archive.command()
@db_option
@guarded
def runs(db: str | None) -> None:
    """List the archive runs recorded in the store."""
    store = cli_store(db)
    try:
        recorded = archiving.runs(store)
    finally:
        store.close()
    if not recorded:
        click.echo("no archive runs recorded")
    for run in recorded:
        click.echo(
            f"{when(run['at'])}  {run['name']}  {run['workflows']:,} workflows, "
            f"{run['facts']:,} facts  {run['directory']}"
        )
