"""Commands for the person on call: `list`, `status`, `explain`, `stats` and `dashboard`.

Rich tables for people, `--json` for scripts, and the exit codes of `cli.py`. They register
themselves on the `steadyhand` group, which imports this module.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from steadyhand.cli.options import (
    EXIT_USAGE,
    cli_store,
    db_option,
    guarded,
    open_for_reading,
    read_db_option,
)
from steadyhand.cli.search import search_options
from steadyhand.core.errors import InputError
from steadyhand.core.records import Task
from steadyhand.core.status import derive_status
from steadyhand.core.stuck import STUCK_AFTER_ENV, StuckRule
from steadyhand.ops.discovered import discovered, in_progress, is_code_first
from steadyhand.ops.filters import parse_input_filter
from steadyhand.ops.reports import FILTERS, inspect_workflow, list_workflows, rows_json
from steadyhand.ops.search import make_listing
from steadyhand.ops.settings import stuck_rule
from steadyhand.ops.stats import collect
from steadyhand.ops.story import TIMELINE_PAGE, tell
from steadyhand.ops.timetext import parse_duration

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_ENV = "STEADYHAND_DASHBOARD_TOKEN"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def stuck_option(fn: F) -> F:
    return click.option(
        "--stuck-after",
        default=None,
        help=f"Report a workflow stuck after this long without progress (default "
        f"${STUCK_AFTER_ENV}, else 5m).",
    )(fn)


def _rule(stuck_after: str | None) -> StuckRule:
    return stuck_rule(None if stuck_after is None else parse_duration(stuck_after))


@click.command("list")
@click.option("--state", type=click.Choice(FILTERS), default=None, help="Only this state.")
@click.option("--name", default=None, help="Only workflows of this name.")
@click.option(
    "--since",
    default=None,
    help="Started since (for completed/compensated/failed: ended since): 2h, 1d, an ISO time.",
)
@click.option("--limit", default=50, show_default=True, help="Rows per page (at most 500).")
@click.option("--cursor", default=None, help="Continue after the page that printed it.")
@search_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--wide", is_flag=True, help="Print every column whole (rows may be long).")
@stuck_option
@db_option
@read_db_option
@guarded
def list_command(
    state: str | None,
    name: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
    key: str | None,
    id_prefix: str | None,
    service: str | None,
    input_filters: tuple[str, ...],
    as_json: bool,
    wide: bool,
    stuck_after: str | None,
    db: str | None,
    read_db: str | None,
) -> None:
    """List workflows, newest first (ended ones by when they ended), a page at a time."""
    from steadyhand.cli.render import dumps, print_list

    now = time.time()
    rule = _rule(stuck_after)
    listing = make_listing(
        state=state,
        name=name,
        key=key,
        id_prefix=id_prefix,
        service=service,
        input=dict(parse_input_filter(text) for text in input_filters),
        since=since,
        limit=limit,
        cursor=cursor,
        now=now,
    )
    store = open_for_reading(db, read_db)
    try:
        page = list_workflows(store, listing, now, rule)
    finally:
        store.close()
    if as_json:
        click.echo(dumps({"workflows": rows_json(page.rows), "next_cursor": page.next_cursor}))
    else:
        print_list(page.rows, page.next_cursor, wide=wide)


@click.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stuck_option
@db_option
@read_db_option
@guarded
def status(
    workflow_id: str, as_json: bool, stuck_after: str | None, db: str | None, read_db: str | None
) -> None:
    """Show a workflow's state, current step and attempt, next check, and result or reason."""
    from steadyhand.cli.render import dumps, print_status

    store = open_for_reading(db, read_db)
    try:
        view, tasks, stuck = inspect_workflow(store, workflow_id, time.time(), _rule(stuck_after))
    finally:
        store.close()
    current = derive_status(view, tasks)
    extra: dict[str, Any] = {}
    if is_code_first(view):  # steps as its replays discovered them; what is open now
        lines = discovered(view)
        extra = {"steps": lines, "in_progress": in_progress(lines) if not current.done else ""}
    if as_json:
        click.echo(dumps({**current.to_json(), "stuck": stuck, **extra}))
    else:
        print_status(current, stuck=stuck, doing=extra.get("in_progress"))


@click.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help="Print the story and every fact as JSON.")
@click.option(
    "--archive",
    "archive_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read the workflow from this archive (`steadyhand archive`) instead of the store.",
)
@click.option("--after", default=0, show_default=True, help="Start the timeline after fact #N.")
@click.option("--limit", default=TIMELINE_PAGE, show_default=True, help="Facts per page.")
@click.option("--all", "everything", is_flag=True, help="The whole timeline in one page.")
@stuck_option
@db_option
@read_db_option
@guarded
def explain(
    workflow_id: str,
    as_json: bool,
    archive_dir: Path | None,
    after: int,
    limit: int,
    everything: bool,
    stuck_after: str | None,
    db: str | None,
    read_db: str | None,
) -> None:
    """Tell the story: the plan, the facts (a page at a time), each decision and why."""
    from steadyhand.cli.render import dumps, print_explain, story_json

    if limit < 1 or after < 0:
        raise InputError("--limit must be at least 1 and --after at least 0")
    if archive_dir is not None:
        from steadyhand.ops.archive import find, view_of

        view = view_of(find(archive_dir, workflow_id))
        tasks: list[Task] = []  # an archived workflow has ended: nothing is queued
        stuck: str | None = None
    else:
        store = open_for_reading(db, read_db)
        try:
            view, tasks, stuck = inspect_workflow(
                store, workflow_id, time.time(), _rule(stuck_after)
            )
        finally:
            store.close()
    story = tell(
        view, derive_status(view, tasks), stuck, after=after, limit=None if everything else limit
    )
    if as_json:
        click.echo(dumps(story_json(story, view)))
    else:
        print_explain(story)


@click.command()
@click.option("--window", default="1h", show_default=True, help="Recent window: 15m, 1h, 1d…")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@stuck_option
@db_option
@read_db_option
@guarded
def stats(
    window: str, as_json: bool, stuck_after: str | None, db: str | None, read_db: str | None
) -> None:
    """Counts by state, throughput, queue depth and lag, calls by step and outcome."""
    from steadyhand.cli.render import dumps, print_stats

    seconds = parse_duration(window)
    if seconds <= 0:
        raise InputError("--window must be longer than 0s")
    store = open_for_reading(db, read_db)
    try:
        result = collect(store, time.time(), _rule(stuck_after), seconds)
    finally:
        store.close()
    if as_json:
        click.echo(dumps(result.to_json()))
    else:
        print_stats(result)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@click.option("--token-file", default=None, help="Read the access token from this file.")
@click.option("--token", default=None, help=f"Access token (prefer --token-file or ${TOKEN_ENV}).")
@click.option("--no-auth", is_flag=True, help="Serve without a token (only on 127.0.0.1).")
@click.option("--read-only", is_flag=True, help="Show everything; refuse retry and cancel.")
@click.option("--refresh", default=5.0, show_default=True, help="Seconds between refreshes.")
@click.option("--session-hours", default=12.0, show_default=True, help="A login lasts this long.")
@click.option(
    "--allowed-host",
    "allowed",
    multiple=True,
    help="A Host name browsers use to reach it (repeatable; default: the bound address).",
)
@stuck_option
@db_option
@read_db_option
@guarded
def dashboard(
    host: str,
    port: int,
    token_file: str | None,
    token: str | None,
    no_auth: bool,
    read_only: bool,
    refresh: float,
    session_hours: float,
    allowed: tuple[str, ...],
    stuck_after: str | None,
    db: str | None,
    read_db: str | None,
) -> None:
    """Serve the web dashboard (overview, workflows, explain, retry/cancel) and /metrics."""
    from steadyhand.cli.secrets import token_from
    from steadyhand.web import DashboardOptions, create_app
    from steadyhand.web.hosts import allowed_hosts
    from steadyhand.web.serving import serve

    token = token_from(token, token_file, os.environ.get(TOKEN_ENV))
    problem = check_access(host, token, no_auth)
    if problem:
        click.echo(f"error: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    if session_hours <= 0:
        raise InputError("--session-hours must be more than 0")
    store = open_for_reading(db, read_db)
    # Pages and /metrics read the replica; retry and cancel write to the primary.
    primary = None if read_db is None or read_only else cli_store(db)
    options = DashboardOptions(
        token=token,
        read_only=read_only,
        refresh=refresh,
        stuck=_rule(stuck_after),
        session_seconds=session_hours * 3600,
        allowed_hosts=allowed_hosts(host, allowed),
    )
    try:
        access = "token required" if token else "NO AUTH (local only)"
        click.echo(f"steadyhand dashboard on http://{host}:{port}/ ({access})", err=True)
        serve(create_app(store, options, primary), host, port)
    finally:
        store.close()
        if primary is not None:
            primary.close()


MIN_TOKEN_CHARS = 24  # off loopback: a token guessable in a weekend is no token


def check_access(host: str, token: str | None, no_auth: bool) -> str | None:
    """Why the dashboard must not start with these settings, or None when it may."""
    if token and no_auth:
        return "--no-auth and a token exclude each other; drop one"
    if token and host not in LOCAL_HOSTS and len(token) < MIN_TOKEN_CHARS:
        return (
            f"a dashboard bound to {host} needs a token of at least {MIN_TOKEN_CHARS} "
            "characters; make one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
        )
    if token:
        return None
    if not no_auth:
        return (
            f"the dashboard needs a token: pass --token or set ${TOKEN_ENV} (or, on "
            "127.0.0.1 only, --no-auth)"
        )
    if host not in LOCAL_HOSTS:
        return f"--no-auth is only allowed on 127.0.0.1, not {host}; set a token instead"
    return None
