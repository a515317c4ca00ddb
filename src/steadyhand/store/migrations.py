"""Schema migrations: numbered SQL files per dialect, applied in order, recorded in a table.

Add `NNN_what.sql` to both `migrations/sqlite/` and `migrations/postgres/`; the store applies
every file newer than its recorded version inside one locked transaction, and refuses to
run against a store newer than the code.
"""

from __future__ import annotations

from importlib import resources


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
