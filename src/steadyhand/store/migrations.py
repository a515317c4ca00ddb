"""Schema migrations: numbered SQL files per dialect, applied in order, recorded in a table.

Add `NNN_what.sql` to both `migrations/sqlite/` and `migrations/postgres/`; the store applies
every file newer than its recorded version inside one locked transaction, and refuses to
run against a store newer than the code.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from steadyhand.core.errors import StoreError

if TYPE_CHECKING:
    from steadyhand.store.base import Store


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, script) for every migration of `dialect`, oldest first."""
    folder = resources.files("steadyhand.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def latest_version(dialect: str) -> int:
    return max(version for version, _, _ in migrations(dialect))


def require_current(store: Store) -> None:
    """Refuse (StoreError) a store whose schema is not this code's, saying how to fix it:
    for commands told not to migrate (`--no-migrate`, least-privilege roles)."""
    target = latest_version("postgres" if store.dialect == "postgresql" else store.dialect)
    current = store.schema_version()
    if current != target:
        what = "has no steadyhand schema" if current == 0 else f"is at version {current}"
        raise StoreError(
            f"the store {store.safe_url} {what}; this steadyhand needs version {target}. "
            "Run `steadyhand migrate` as the database owner, then try again."
        )
