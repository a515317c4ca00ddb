"""Checks made when a store is opened by a command that only reads: a store nobody created
is reported ("no store at …") instead of being created. (PostgreSQL connection errors that
waiting cannot cure are said at once by `pg_errors`.)"""

from __future__ import annotations

import re

from steadyhand.core.errors import StoreError, StoreUnavailable
from steadyhand.store.base import Store


def redacted(url: str) -> str:
    """`url` without a password, for messages."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def check_exists(store: Store) -> None:
    """Raise `StoreError` ("no store at …") unless a steadyhand schema is in place; used
    by read-only commands, which never create or migrate one."""
    try:
        with store.snapshot() as tx:
            tx.execute("schema_version").fetchone()
    except StoreUnavailable:
        raise
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(
            f"no store at {redacted(store.url)}: nothing has created one there ({detail}). "
            "Check --db / $STEADYHAND_DB; a worker or `steadyhand migrate` creates it."
        ) from None
