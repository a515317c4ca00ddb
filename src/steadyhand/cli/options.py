"""What every command shares: exit codes, the --db and --app options, loading the user's
App, opening the store, and turning steadyhand errors into one line and an exit code."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from steadyhand.core.errors import InputError, NotFoundError, StoreError, StoreUnavailable
from steadyhand.core.redact import redact
from steadyhand.define.app import App
from steadyhand.define.client import Client
from steadyhand.store import Store, open_reader, open_store
from steadyhand.store.migrations import require_current

EXIT_UNAVAILABLE, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_APPLICABLE = 1, 2, 4, 5

F = TypeVar("F", bound=Callable[..., Any])


log = logging.getLogger("steadyhand.cli")


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


NO_MIGRATE_ENV = "STEADYHAND_NO_MIGRATE"
_NO_MIGRATE = "steadyhand.no_migrate"


def _remember_no_migrate(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_NO_MIGRATE] = True


def db_option(fn: F) -> F:
    """`--db`, and `--no-migrate` for roles that may not (or must not) change the schema."""
    fn = click.option(
        "--no-migrate",
        is_flag=True,
        envvar=NO_MIGRATE_ENV,
        expose_value=False,
        callback=_remember_no_migrate,
        help="Never change the schema; refuse a store that is not current "
        f"(${NO_MIGRATE_ENV}=1). Only `steadyhand migrate` upgrades it then.",
    )(fn)
    return url_option(fn)


def url_option(fn: F) -> F:
    """`--db` alone (for `migrate`, which changes the schema by definition)."""
    return click.option(
        "--db",
        envvar="STEADYHAND_DB",
        default=None,
        help="Store URL: sqlite:///file.db or postgresql://… (default: $STEADYHAND_DB, "
        "else sqlite:///steadyhand.db).",
    )(fn)


def read_db_option(fn: F) -> F:
    return click.option(
        "--read-db",
        envvar="STEADYHAND_READ_DB",
        default=None,
        help="Read from this replica instead of --db (a PostgreSQL standby; with several "
        "hosts, a standby is preferred). Says how far behind it is ($STEADYHAND_READ_DB).",
    )(fn)


def open_for_reading(db: str | None, read_db: str | None) -> Store:
    """The store a read-only command reads: the replica when given (telling, on stderr, how
    stale it may be), else the store itself."""
    if read_db is None:
        return open_store(db, create=False)  # never creates nor migrates a store
    store = open_reader(read_db)
    try:
        lag = store.replica_lag()
    except StoreError:
        store.close()
        raise
    if lag is not None:
        click.echo(
            f"reading a replica: {lag:.1f}s behind the primary (0 = it has applied all it "
            "received)",
            err=True,
        )
    return store


def cli_store(db: str | None) -> Store:
    """Open the store for a command. A current schema is never touched (no DDL at all);
    an older one is upgraded, unless `--no-migrate` says to refuse it instead."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_NO_MIGRATE):
        store = open_store(db, migrate=False)
        try:
            require_current(store)
        except BaseException:
            store.close()
            raise
        return store
    return open_store(db)


def app_option(required: bool) -> Callable[[F], F]:
    return click.option(
        "--app",
        "app_ref",
        envvar="STEADYHAND_APP",
        required=required,
        help="Where your App lives, as module:attribute ($STEADYHAND_APP).",
    )


def open_store_patiently(db: str | None, max_delay: float = 10.0) -> Store:
    """Open the store, waiting with backoff while it is unreachable (a worker that starts
    during a database restart waits for it instead of exiting)."""
    delay = 0.5
    while True:
        try:
            return cli_store(db)
        except StoreUnavailable as exc:
            problem = redact(str(exc))
            log.warning("store unavailable at start (%s); retrying in %.1fs", problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)


def client_for(db: str | None, app_ref: str | None = None) -> Client:
    app = load_app(app_ref) if app_ref else App()
    return Client(app, cli_store(db))


EXTRA_OF_MODULE = {
    "starlette": "web",
    "uvicorn": "web",
    "jinja2": "web",
    "httpx": "web",
    "opentelemetry": "otel",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
}


def missing_extra(exc: ImportError) -> str | None:
    """The packaging extra that brings the module `exc` could not import, if one does."""
    top = (exc.name or "").partition(".")[0]
    return EXTRA_OF_MODULE.get(top)


def guarded(fn: F) -> F:
    """Turn steadyhand errors into one clear line and a meaningful exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreUnavailable as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(EXIT_UNAVAILABLE)
        except NotFoundError as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(EXIT_NOT_FOUND)
        except InputError as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(EXIT_USAGE)
        except StoreError as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(EXIT_UNAVAILABLE)
        except ImportError as exc:
            extra = missing_extra(exc)
            if extra is None:
                raise
            click.echo(
                f"error: {exc}; install it with: pip install 'steadyhand[{extra}]'", err=True
            )
            sys.exit(EXIT_USAGE)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]
