"""Stores: where facts and the queue live. `open_store(url)` picks the backend by URL."""

from __future__ import annotations

import os

from steadyhand.core.errors import InputError
from steadyhand.core.records import NewFact, Task, WorkflowRow
from steadyhand.core.redact import redact_url
from steadyhand.store.base import Store, Tx

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


def open_store(url: str | None = None, **options: object) -> Store:
    """Open (and, where needed, create or upgrade) the store at `url`."""
    resolved = resolve_url(url)
    if resolved.startswith(("postgresql://", "postgres://")):
        try:
            from steadyhand.store.postgres import PostgresStore
        except ImportError as exc:
            raise InputError(
                f"a postgresql:// store needs psycopg and libpq ({exc}); install them with: "
                "pip install 'steadyhand[postgres]'"
            ) from None

        return PostgresStore(resolved, **options)  # type: ignore[arg-type]
    if resolved.startswith("sqlite:") or "://" not in resolved:
        from steadyhand.store.sqlite import SqliteStore

        return SqliteStore(resolved, **options)  # type: ignore[arg-type]
    raise InputError(
        f"unsupported store URL {redact_url(resolved)!r}: use sqlite:///path/to/file.db or "
        "postgresql://user@host:port/database"
    )


def open_reader(url: str) -> Store:
    """Open a store only to read it (`--read-db`): never migrated, and on PostgreSQL a
    session that refuses writes and, given several hosts, prefers a standby."""
    if url.startswith(("postgresql://", "postgres://")):
        from steadyhand.store.postgres import PostgresStore

        return PostgresStore(url, read_only=True)
    return open_store(url, migrate=False)
