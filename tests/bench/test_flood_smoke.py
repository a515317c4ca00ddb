"""A smoke run of `bench/flood.py` with a tiny history on both backends (no timing asserted:
benchmarks are not tests)."""

from __future__ import annotations

from bench.flood import flooded, measure

from steadyhand.store import Store


def test_flood_measures_on_both_backends(store: Store) -> None:
    workflow_id = flooded(store, 30)
    figures = measure(store, workflow_id, repeat=1)
    assert set(figures) == {"signal_ms", "explain_s", "explain_all_s", "page_kb"}
    assert all(value > 0 for value in figures.values())
