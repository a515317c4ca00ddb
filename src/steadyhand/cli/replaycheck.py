"""`steadyhand replay-check`: before a deploy, replay recorded histories (`steadyhand explain
<id> --json` saved to files) against the code about to ship, and fail if any workflow in
that state would stop because its code changed under it. Built on `steadyhand.testing`."""

from __future__ import annotations

import sys

import click

from steadyhand.cli.options import EXIT_USAGE, app_option, load_app
from steadyhand.core.errors import UnknownWorkflowError
from steadyhand.testing import load_history, replay_history

EXIT_WOULD_BREAK = 3


@click.command("replay-check")
@app_option(required=True)
@click.argument("histories", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--verbose", "-v", is_flag=True, help="Also list where the new code decides otherwise."
)
def replay_check(app_ref: str, histories: tuple[str, ...], verbose: bool) -> None:
    """Replay each HISTORY (explain --json output) with the app's code; exit 3 if any breaks."""
    app = load_app(app_ref)
    broken = 0
    for path in histories:
        try:
            report = replay_history(app, load_history(path))
        except (OSError, ValueError, KeyError, UnknownWorkflowError) as exc:
            click.echo(f"error: {path}: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        if report.ok:
            click.echo(f"ok      {report.workflow_id} ({report.runs} runs replayed) {path}")
        else:
            broken += 1
            click.echo(f"BREAKS  {report.workflow_id} {path}")
            for problem in report.problems:
                click.echo(f"  - {problem}")
        if verbose:
            for difference in report.differences:
                click.echo(f"  note: {difference}")
    if broken:
        click.echo(f"{broken} of {len(histories)} workflow(s) would not replay on this code")
        sys.exit(EXIT_WOULD_BREAK)
