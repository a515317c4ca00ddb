"""The named statements themselves (no database needed): PostgreSQL's overrides of the
shared text fail loudly when that text changes, and lists of fact kinds in SQL agree with
the vocabulary in `core.facts` and with the migrations' partial indexes."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from steadyhand.core.circuit import OUTCOME_KINDS
from steadyhand.core.facts import TERMINAL_KINDS, FactKind
from steadyhand.store import pg_statements, queries
from steadyhand.store.queries import SHARED
from steadyhand.store.reporting import ACTIVITY_KINDS, REPORTS


def test_an_override_of_text_that_changed_fails_loudly() -> None:
    shared = {"lease": "SELECT id FROM tasks ORDER BY due_at LIMIT :limit"}
    assert queries.override(shared, "lease", "LIMIT :limit", "LIMIT :limit FOR UPDATE").endswith(
        "FOR UPDATE"
    )
    with pytest.raises(AssertionError, match="expected 'ORDER BY id' once"):
        queries.override(shared, "lease", "ORDER BY id", "ORDER BY id DESC")
    with pytest.raises(AssertionError, match="not a plain SELECT"):
        queries.locking({"gone": "DELETE FROM tasks"}, "gone")


def test_every_override_names_a_shared_statement() -> None:
    for name in pg_statements.OVERRIDES:
        assert name in SHARED or name == "notify", name


def _index_kinds(migration: str, index: str) -> list[str]:
    folder = resources.files("steadyhand.store") / "migrations" / "sqlite"
    text = next(f for f in folder.iterdir() if f.name.startswith(migration)).read_text()
    body = text[text.index(f"INDEX IF NOT EXISTS {index}") :]
    start = body.index("IN (")
    listed = body[start : body.index(")", start)]
    return re.findall(r"'([a-z_]+)'", listed)


def test_report_kind_lists_repeat_the_partial_indexes_exactly() -> None:
    # SQLite uses a partial index only when the query repeats its WHERE term.
    assert _index_kinds("002", "facts_activity") == list(ACTIVITY_KINDS)
    assert _index_kinds("001", "facts_terminal") == list(TERMINAL_KINDS)


def test_kind_lists_in_sql_are_real_fact_kinds() -> None:
    kinds = {k.value for k in FactKind}
    for name, text in {**SHARED, **REPORTS}.items():
        for quoted in re.findall(r"'([a-z]+_[a-z_]+)'", text):
            assert quoted in kinds, f"{name} names {quoted!r}, which is no fact kind"
    # The circuit counts no lost call (a lost call never carries its service).
    assert FactKind.ATTEMPT_LOST not in OUTCOME_KINDS
    assert "attempt_lost" not in SHARED["recent_service_outcomes"]
