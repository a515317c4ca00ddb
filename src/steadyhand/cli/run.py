"""Commands that run things or act on one workflow: worker, serve, migrate, start, cancel,
retry."""

from __future__ import annotations

import sys

import click

from steadyhand.cli.options import (
    EXIT_NOT_APPLICABLE,
    app_option,
    cli_store,
    client_for,
    db_option,
    guarded,
    load_app,
    open_store_patiently,
    url_option,
)
from steadyhand.core import jsoncodec
from steadyhand.core.actions import ENDED, ActionStatus
from steadyhand.core.errors import InputError
from steadyhand.core.redact import redact_url
from steadyhand.define.client import Client
from steadyhand.ops.timetext import parse_duration
from steadyhand.runtime.worker import Worker, WorkerOptions
from steadyhand.store import open_store, resolve_url


@click.command()
@app_option(required=True)
@db_option
@click.option(
    "--concurrency",
    default=32,
    show_default=True,
    help="Tasks in progress at once; calls that finish together share one commit.",
)
@click.option("--lease", "lease_seconds", default=15.0, show_default=True, help="Lease seconds.")
@click.option("--poll", "poll_interval", type=float, default=None, help="Poll interval (s).")
@click.option("--watchdog", "watchdog_interval", default=2.0, show_default=True)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics here.")
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Bind /metrics to (it has no auth: open it wider only behind your own access control).",
)
@click.option(
    "--slow-decision",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Warn (and count) when a supervisor takes longer than this many seconds to decide.",
)
@guarded
def worker(
    app_ref: str,
    db: str | None,
    concurrency: int,
    lease_seconds: float,
    poll_interval: float | None,
    watchdog_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    slow_decision: float,
) -> None:
    """Run a worker: lease tasks, call agents, supervise. SIGTERM/SIGINT stop it gracefully."""
    app = load_app(app_ref)
    store = open_store_patiently(db)
    options = WorkerOptions(
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
        watchdog_interval=watchdog_interval,
        slow_decision=slow_decision,
    )
    metrics = None
    if metrics_port is not None:
        from steadyhand.ops.metrics import WorkerMetrics

        metrics = WorkerMetrics()
        metrics.serve(metrics_port, metrics_host)
    try:
        Worker(app, store, options, metrics).run()
    finally:
        store.close()


@click.command()
@app_option(required=True)
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True)
@click.option(
    "--secret-file",
    "secret_files",
    multiple=True,
    help="source=path: the sender's secret is in that file (repeatable).",
)
@click.option(
    "--sources",
    "sources_file",
    default=None,
    help="JSON file: per source its secret_file/secret_env and the events and workflows "
    "it may send and start (see docs/SECURITY.md).",
)
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    help="source=secret (visible in ps: prefer --secret-file or $STEADYHAND_INGRESS_SECRETS).",
)
@click.option(
    "--allowed-host",
    "allowed",
    multiple=True,
    help="A Host name senders use (repeatable; default: the bound address).",
)
@guarded
def serve(
    app_ref: str,
    db: str | None,
    host: str,
    port: int,
    secret_files: tuple[str, ...],
    sources_file: str | None,
    secrets: tuple[str, ...],
    allowed: tuple[str, ...],
) -> None:
    """Accept signed events over HTTP (POST /events/<source>)."""
    from steadyhand.cli.secrets import secrets_from_files, warn_argument
    from steadyhand.web.hosts import allowed_hosts
    from steadyhand.web.ingress import create_ingress, secrets_from_env
    from steadyhand.web.serving import serve as serve_app
    from steadyhand.web.sources import Source, sources_from_file

    if secrets:
        warn_argument("--secret", "--secret-file or $STEADYHAND_INGRESS_SECRETS")
    keys: dict[str, str | Source] = {}
    keys.update(secrets_from_env())
    keys.update(secrets_from_env(",".join(secrets)))
    keys.update(secrets_from_files(secret_files))
    if sources_file:
        keys.update(sources_from_file(sources_file))
    client = Client(load_app(app_ref), cli_store(db))
    ingress = create_ingress(client, keys, allowed_hosts=allowed_hosts(host, allowed))
    click.echo(f"steadyhand ingress on http://{host}:{port}/events/<source>", err=True)
    serve_app(ingress, host, port)


@click.command()
@url_option
@guarded
def migrate(db: str | None) -> None:
    """Create or upgrade the store's schema (other commands do it too, unless told
    `--no-migrate`; none of them attempts DDL when the schema is already current)."""
    store = open_store(db, migrate=False)
    try:
        version = store.migrate()
    finally:
        store.close()
    click.echo(f"{redact_url(resolve_url(db))}: schema version {version}")


@click.command()
@click.argument("name")
@click.option("--input", "input_text", default="null", help="Workflow input as JSON.")
@click.option("--key", default=None, help="Idempotency key: starting twice returns the first.")
@click.option(
    "--deadline", default=None, help="Roll back if not ended within this long: 90s, 2h, 1d."
)
@click.option("--priority", type=click.IntRange(0, 9), default=0, help="0..9, higher first.")
@click.option("--fairness-key", default=None, help="Calls of different keys take turns.")
@app_option(required=True)
@db_option
@guarded
def start(
    name: str,
    input_text: str,
    key: str | None,
    deadline: str | None,
    priority: int,
    fairness_key: str | None,
    app_ref: str,
    db: str | None,
) -> None:
    """Start workflow NAME and print its id."""
    seconds = None if deadline is None else parse_duration(deadline)
    try:
        value = jsoncodec.loads(input_text)
    except jsoncodec.JSONDecodeError as exc:
        raise InputError(
            f"--input is not valid JSON ({exc}); quote it, e.g. '{{\"a\": 1}}'"
        ) from None
    with client_for(db, app_ref) as client:
        started = client.start(
            name, value, key=key, deadline=seconds, priority=priority, fairness_key=fairness_key
        )
    click.echo(started.workflow_id)


@click.command()
@click.argument("workflow_id")
@click.option("--reason", default="", help="Why (kept with the cancel fact).")
@db_option
@guarded
def cancel(workflow_id: str, reason: str, db: str | None) -> None:
    """Cancel a running or failed workflow: it compensates what took effect and ends
    compensated. A workflow that already ended completed or compensated: exit 5."""
    with client_for(db) as client:
        answer = client.cancel(workflow_id, reason)
    if answer.result == ENDED:
        click.echo(f"error: {workflow_id}: {answer.message}", err=True)
        sys.exit(EXIT_NOT_APPLICABLE)
    click.echo(_answered(workflow_id, answer))


@click.command()
@click.argument("workflow_id")
@click.option("--reason", default="", help="Why (kept with the retry fact).")
@db_option
@guarded
def retry(workflow_id: str, reason: str, db: str | None) -> None:
    """Resume a failed workflow with a new round of attempts."""
    with client_for(db) as client:
        try:
            answer = client.retry(workflow_id, reason)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NOT_APPLICABLE)
    click.echo(_answered(workflow_id, answer))


def _answered(workflow_id: str, answer: ActionStatus) -> str:
    """`<id>: <state>`, and what happened when this call changed nothing."""
    return f"{workflow_id}: {answer.state}" + ("" if answer.applied else f" ({answer.message})")
