"""The `steadyhand` command: run workers, start workflows, and look after them.

Exit codes: 0 success; 1 the store could not be reached; 2 bad usage or input;
4 no such workflow; 5 the requested action does not apply (e.g. retry of a running one).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import logs
from .app import App, Client
from .errors import InputError, NotFoundError, StoreError, StoreUnavailable
from .store import Store, open_store, resolve_url
from .worker import Worker, WorkerOptions

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("steadyhand.cli")

EXIT_UNAVAILABLE, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_APPLICABLE = 1, 2, 4, 5


def load_app(ref: str) -> App:
    """Import `module:attribute` (the current directory is importable) and check it is an App."""
    module_name, _, attr = ref.partition(":")
    if not module_name:
        raise click.UsageError(
            f"--app {ref!r}: expected module:attribute, e.g. myproject.flows:app"
        )
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"--app {ref!r}: cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise click.UsageError(f"--app {ref!r}: {attr or 'app'} is not a steadyhand App")
    return app


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        envvar="STEADYHAND_DB",
        default=None,
        help="Store URL: sqlite:///file.db or postgresql://… (default: $STEADYHAND_DB, "
        "else sqlite:///steadyhand.db).",
    )(fn)


def app_option(required: bool) -> Callable[[F], F]:
    return click.option(
        "--app",
        "app_ref",
        envvar="STEADYHAND_APP",
        required=required,
        default=None,
        help="Where your App lives, as module:attribute ($STEADYHAND_APP).",
    )


def open_store_patiently(db: str | None, max_delay: float = 10.0) -> Store:
    """Open the store, waiting with backoff while it is unreachable (a worker that starts
    during a database restart waits for it instead of exiting)."""
    delay = 0.5
    while True:
        try:
            return open_store(db)
        except StoreUnavailable as exc:
            log.warning("store unavailable at start (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)


def client_for(db: str | None, app_ref: str | None = None) -> Client:
    app = load_app(app_ref) if app_ref else App()
    return Client(app, open_store(db))


def guarded(fn: F) -> F:
    """Turn steadyhand errors into one clear line and a meaningful exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreUnavailable as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)
        except NotFoundError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NOT_FOUND)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="steadyhand")
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING…")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
def main(log_level: str, log_json: bool) -> None:
    """Durable sagas across unreliable remote services."""
    logs.configure(log_level, log_json)


@main.command()
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
@click.option("--metrics-host", default="0.0.0.0", show_default=True, help="Bind /metrics to.")
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
) -> None:
    """Run a worker: lease tasks, call agents, supervise. SIGTERM/SIGINT stop it gracefully."""
    app = load_app(app_ref)
    store = open_store_patiently(db)
    options = WorkerOptions(
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
        watchdog_interval=watchdog_interval,
    )
    metrics = None
    if metrics_port is not None:
        from .metrics import WorkerMetrics

        metrics = WorkerMetrics()
        metrics.serve(metrics_port, metrics_host)
    try:
        Worker(app, store, options, metrics).run()
    finally:
        store.close()


@main.command()
@app_option(required=True)
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True)
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    help="source=secret for one sender (repeatable; also $STEADYHAND_INGRESS_SECRETS).",
)
@guarded
def serve(app_ref: str, db: str | None, host: str, port: int, secrets: tuple[str, ...]) -> None:
    """Accept signed events over HTTP (POST /events/<source>)."""
    import uvicorn

    from .ingress import create_ingress, secrets_from_env

    keys = secrets_from_env()
    keys.update(secrets_from_env(",".join(secrets)))
    client = Client(load_app(app_ref), open_store(db))
    uvicorn.run(create_ingress(client, keys), host=host, port=port, log_level="warning")


@main.command()
@db_option
@guarded
def migrate(db: str | None) -> None:
    """Create or upgrade the store's schema (also done automatically on first use)."""
    store = open_store(db, migrate=False)
    try:
        version = store.migrate()
    finally:
        store.close()
    click.echo(f"{resolve_url(db)}: schema version {version}")


@main.command()
@click.argument("name")
@click.option("--input", "input_text", default="null", help="Workflow input as JSON.")
@click.option("--key", default=None, help="Idempotency key: starting twice returns the first.")
@app_option(required=True)
@db_option
@guarded
def start(name: str, input_text: str, key: str | None, app_ref: str, db: str | None) -> None:
    """Start workflow NAME and print its id."""
    try:
        value = json.loads(input_text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--input is not valid JSON ({exc}); quote it, e.g. '{{\"a\": 1}}'"
        ) from None
    with client_for(db, app_ref) as client:
        started = client.start(name, value, key=key)
    click.echo(started.workflow_id)


@main.command()
@click.argument("workflow_id")
@click.option("--reason", default="", help="Why (kept with the cancel fact).")
@db_option
@guarded
def cancel(workflow_id: str, reason: str, db: str | None) -> None:
    """Cancel a running workflow: it compensates what was done and ends compensated."""
    with client_for(db) as client:
        current = client.cancel(workflow_id, reason)
    click.echo(f"{workflow_id}: {current.state}")


@main.command()
@click.argument("workflow_id")
@click.option("--reason", default="", help="Why (kept with the retry fact).")
@db_option
@guarded
def retry(workflow_id: str, reason: str, db: str | None) -> None:
    """Resume a failed workflow with a new round of attempts."""
    with client_for(db) as client:
        try:
            current = client.retry(workflow_id, reason)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NOT_APPLICABLE)
    click.echo(f"{workflow_id}: {current.state}")


# list, status, explain, stats and dashboard live in ops_cli.py and register themselves here.
from . import ops_cli  # noqa: E402, F401
from .demo.command import demo  # noqa: E402  (registered last: the demo builds on the rest)

main.add_command(demo)
from .chaos.command import chaos  # noqa: E402  (after the demo, whose parts it reuses)

main.add_command(chaos)
