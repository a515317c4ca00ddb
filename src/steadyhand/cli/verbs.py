"""The verbs users of other workflow tools expect: `signal` an event to a workflow, `watch`
one live, and what `start --wait` shares with them: waiting for the end, printing the
result, and an exit code that says how it ended.

Exit codes of a finished wait: 0 completed, 3 compensated (rolled back), 6 failed (a person
must look), 7 still running when --timeout passed.
"""

from __future__ import annotations

import sys
import time

import click

from steadyhand.cli.jsonarg import read_json_arg
from steadyhand.cli.options import app_option, client_for, db_option, guarded
from steadyhand.core.errors import InputError
from steadyhand.core.status import Status
from steadyhand.define.client import Client
from steadyhand.ops.settings import stuck_rule

EXIT_COMPENSATED, EXIT_FAILED, EXIT_STILL_RUNNING = 3, 6, 7
EXIT_OF_STATE = {"completed": 0, "compensated": EXIT_COMPENSATED, "failed": EXIT_FAILED}


def report_end(status: Status) -> int:
    """Print how a workflow ended (result on stdout, the rest on stderr); its exit code."""
    from steadyhand.cli.render import dumps

    if status.state == "completed":
        click.echo(dumps(status.result))
    elif status.done:
        click.echo(f"{status.id}: {status.state}: {status.reason or ''}".rstrip(": "), err=True)
    else:
        click.echo(f"{status.id}: still {status.state} (waited long enough)", err=True)
    return EXIT_OF_STATE.get(status.state, EXIT_STILL_RUNNING)


def wait_and_exit(client: Client, workflow_id: str, timeout: float | None) -> None:
    """Wait for the workflow to end (or `timeout`), print how, and exit with its code."""
    try:
        status = client.wait(workflow_id, timeout=timeout if timeout else 10**9)
    except TimeoutError:
        status = client.status(workflow_id)
    sys.exit(report_end(status))


@click.command()
@click.argument("event")
@click.option("--key", default=None, help="The workflow's idempotency key.")
@click.option("--id", "workflow_id", default=None, help="The workflow's id.")
@click.option(
    "--payload", default="null", help="The event's payload: JSON, @file.json, or - for stdin."
)
@click.option(
    "--dedupe-key", default=None, help="Deliver at most once: a repeat with it changes nothing."
)
@db_option
@guarded
def signal(
    event: str,
    key: str | None,
    workflow_id: str | None,
    payload: str,
    dedupe_key: str | None,
    db: str | None,
) -> None:
    """Send EVENT to a workflow named by --key or --id, and wake it."""
    if (key is None) == (workflow_id is None):
        raise InputError("name the workflow with exactly one of --key K or --id ID")
    value = read_json_arg(payload, "--payload")
    with client_for(db) as client:
        answer = client.signal(
            event, value, workflow_id=workflow_id, key=key, dedupe_key=dedupe_key, source="cli"
        )
    what = "recorded" if answer.recorded else "already recorded (same --dedupe-key); unchanged"
    click.echo(f"{answer.workflow_id}: {event} {what}")


@click.command()
@click.argument("workflow_id")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between looks.")
@click.option("--timeout", type=float, default=None, help="Stop watching after this long.")
@app_option(required=False)
@db_option
@guarded
def watch(
    workflow_id: str,
    interval: float,
    timeout: float | None,
    app_ref: str | None,
    db: str | None,
) -> None:
    """Follow a workflow live: each fact and supervisor decision as it lands, until it ends.

    Exits like `start --wait`: 0 completed, 3 compensated, 6 failed, 7 still running.
    """
    from steadyhand.core.status import derive_status
    from steadyhand.ops.reports import inspect_workflow
    from steadyhand.ops.story import tell
    from steadyhand.ops.timetext import when

    rule = stuck_rule()

    if interval <= 0:
        raise InputError("--interval must be more than 0 seconds")
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    with client_for(db, app_ref) as client:
        while True:
            # One snapshot for the facts and the state: an ending is never seen before its facts.
            view, tasks, _ = inspect_workflow(client.store, workflow_id, time.time(), rule)
            status = derive_status(view, tasks)
            if seen == 0:
                click.echo(f"{workflow_id} ({view.name}), started {when(view.created_at)}")
            for entry in tell(view, status).entries:
                if entry.seq <= seen:
                    continue
                seen = entry.seq
                where = f" [{entry.step}#{entry.attempt}]" if entry.step else ""
                click.echo(f"{when(entry.at)} +{entry.offset:7.2f}s{where} {entry.text}")
                if entry.why:
                    click.echo(f"{'':24}why: {entry.why}")
            if status.done or (deadline is not None and time.monotonic() >= deadline):
                sys.exit(report_end(status))
            time.sleep(interval)
