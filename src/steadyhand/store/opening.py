"""Checks made when a store is opened by a command that only reads: a store nobody created
is reported ("no store at …") instead of being created. (PostgreSQL connection errors that
waiting cannot cure are said at once by `pg_errors`.)"""

from __future__ import annotations

import re

from steadyhand.core.errors import StoreError
from steadyhand.store.base import Store


def redacted(url: str) -> str:
    """`url` without a password, for messages."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


EXISTS_SQL = {
    "postgresql": "SELECT to_regclass('steadyhand_schema') IS NOT NULL",
    "sqlite": "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'steadyhand_schema'",
}
"""Whether the schema table is there, without an error when it is not (so a missing store
is told apart from an unreachable one)."""


def check_exists(store: Store) -> None:
    """Raise `StoreError` ("no store at …") unless a steadyhand schema is in place; used
    by read-only commands, which never create or migrate one."""
    with store.snapshot() as tx:
        found = tx.query(EXISTS_SQL[store.dialect]).fetchone()
    if not (found and found[0]):
        raise StoreError(
            f"no store at {redacted(store.url)}: nothing has created one there. Check --db / "
            "$STEADYHAND_DB; a worker or `steadyhand migrate` creates it."
        )
