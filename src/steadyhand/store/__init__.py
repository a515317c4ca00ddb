"""Stores: where facts and the queue live. `open_store(url)` picks the backend by URL."""

from __future__ import annotations

import os

from steadyhand.core.errors import InputError
from steadyhand.core.records import NewFact, Task, WorkflowRow
from steadyhand.core.redact import redact_url
from steadyhand.store.base import Store, Tx
from steadyhand.store.opening import check_exists

DEFAULT_URL = "sqlite:///steadyhand.db"

__all__ = [
    "DEFAULT_URL",
    "NewFact",
    "Store",
    "Task",
    "Tx",
    "WorkflowRow",
    "open_reader",
    "open_store",
    "resolve_url",
]


def resolve_url(url: str | None) -> str:
    """The store URL to use: the argument, else $STEADYHAND_DB, else ./steadyhand.db."""
    return url or os.environ.get("STEADYHAND_DB") or DEFAULT_URL


ACCEPTED_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "or postgresql://user@host:port/database"
)


def open_store(url: str | None = None, *, create: bool = True, **options: object) -> Store:
    """Open (and, where needed, create or upgrade) the store at `url`.

    With `create=False` (what read-only commands use) nothing is created or migrated: a
    store that does not exist yet is a `StoreError` ("no store at …").
    """
    resolved = resolve_url(url)
    if not create:
        options["migrate"] = False
    if resolved.startswith(("postgresql://", "postgres://")):
        try:
            from steadyhand.store.postgres import PostgresStore
        except ImportError as exc:
            raise InputError(
                f"a postgresql:// store needs psycopg and libpq ({exc}); install them with: "
                "pip install 'steadyhand[postgres]'"
            ) from None

        store: Store = PostgresStore(resolved, **options)  # type: ignore[arg-type]
    elif resolved.startswith("sqlite:///"):
        from steadyhand.store.sqlite import SqliteStore

        if not create:
            options["must_exist"] = True
        store = SqliteStore(resolved, **options)  # type: ignore[arg-type]
    else:
        raise InputError(
            f"unsupported store URL {redact_url(resolved)!r}: --db takes {ACCEPTED_FORMS}"
        )
    if not create:
        try:
            check_exists(store)
        except BaseException:
            store.close()
            raise
    return store


def open_reader(url: str) -> Store:
    """Open a store only to read it (`--read-db`): never migrated or created, and on
    PostgreSQL a session that refuses writes and, given several hosts, prefers a standby."""
    if url.startswith(("postgresql://", "postgres://")):
        from steadyhand.store.postgres import PostgresStore

        return PostgresStore(url, read_only=True)
    return open_store(url, create=False)
