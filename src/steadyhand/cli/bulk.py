"""`steadyhand cancel` and `steadyhand retry`: of one workflow (`cancel ID`), or of every
workflow a selection names (`cancel --state failed --name trip --since 2h`), listed first
with `--dry-run`, then acted on in paced waves under one batch id (`ops.bulk`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from steadyhand.cli import run
from steadyhand.cli.options import client_for, db_option, guarded
from steadyhand.core.actions import ActionStatus
from steadyhand.core.errors import InputError
from steadyhand.ops import bulk
from steadyhand.ops.reports import FILTERS, Listing
from steadyhand.ops.settings import stuck_rule
from steadyhand.ops.timetext import parse_since


def _bulk_command(action: str, single: click.Command, help_text: str) -> click.Command:
    @click.command(action, help=help_text)
    @click.argument("workflow_id", required=False)
    @click.option("--state", type=click.Choice(FILTERS), default=None, help="Select this state.")
    @click.option("--name", default=None, help="Select workflows of this name.")
    @click.option(
        "--since", default=None, help="Started (ended, for ended states) since: 2h, 1d, ISO."
    )
    @click.option("--reason", default="", help="Why (kept with every operator fact).")
    @click.option("--dry-run", is_flag=True, help="List what would be touched; change nothing.")
    @click.option(
        "--rate",
        default=bulk.DEFAULT_RATE,
        show_default=True,
        help="At most this many workflows per second (50/s) or minute (600/m).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @db_option
    @click.pass_context
    @guarded
    def command(
        ctx: click.Context,
        workflow_id: str | None,
        state: str | None,
        name: str | None,
        since: str | None,
        reason: str,
        dry_run: bool,
        rate: str,
        as_json: bool,
        db: str | None,
    ) -> None:
        selecting = state is not None or name is not None or since is not None
        if workflow_id is not None:
            if selecting or dry_run:
                raise InputError(
                    f"name one workflow ({action} ID) or select several (--state, --name, "
                    "--since, --dry-run), not both"
                )
            ctx.invoke(single, workflow_id=workflow_id, reason=reason, db=db)
            return
        if not selecting:
            raise InputError(
                f"{action} what? name a workflow ID, or select with --state, --name or "
                f"--since (e.g. {action} --state failed --name trip --since 2h --dry-run)"
            )
        pace = bulk.Pace(bulk.parse_rate(rate))
        now = time.time()
        listing = Listing(
            state=state or ("failed" if action == "retry" else None),
            name=name,
            since=None if since is None else parse_since(since, now),
        )
        with client_for(db) as client:
            rows = bulk.select(client, listing, now, stuck_rule(None))
            if dry_run:
                _print_selection(action, rows, as_json)
                return
            echo: Callable[[ActionStatus], None] | None = None if as_json else _echo_answer
            ids = [row.id for row in rows]
            result = bulk.act(client, action, ids, reason, pace, on_answer=echo)
        if as_json:
            from steadyhand.cli.render import dumps

            click.echo(dumps(result.to_json()))
        else:
            click.echo(result.summary())

    return command


def _print_selection(action: str, rows: list[Any], as_json: bool) -> None:
    if as_json:
        from steadyhand.cli.render import dumps

        click.echo(dumps({"action": action, "dry_run": True, "workflows": [r.id for r in rows]}))
        return
    for row in rows:
        click.echo(f"{row.id}  {row.name}  {row.state}")
    click.echo(f"dry run: {action} would touch {len(rows)} workflow(s); nothing was changed")


def _echo_answer(answer: ActionStatus) -> None:
    note = "" if answer.applied else f" ({answer.result}: {answer.message})"
    click.echo(f"{answer.workflow_id}: {answer.state}{note}")


cancel = _bulk_command(
    "cancel",
    run.cancel,
    "Cancel workflow ID (it compensates what took effect and ends compensated), or every "
    "workflow selected by --state/--name/--since, in paced waves under one batch id. One "
    "ID that already ended completed or compensated: exit 5.",
)
retry = _bulk_command(
    "retry",
    run.retry,
    "Resume failed workflow ID with a new round of attempts, or every failed workflow "
    "selected by --name/--since (--state defaults to failed), in paced waves under one batch id.",
)
