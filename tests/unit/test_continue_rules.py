"""Continue-as-new, the pure parts: run ids and what a decision may carry."""

from __future__ import annotations

from steadyhand.core.decisions import Complete, Decision
from steadyhand.core.validate import problems
from steadyhand.engine.apply import next_run_id


def test_run_ids_count_up_from_the_first() -> None:
    assert next_run_id("abc") == "abc~2"
    assert next_run_id("abc~2") == "abc~3"
    assert next_run_id("abc~9") == "abc~10"
    assert next_run_id("a~b") == "a~b~2", "only a number after ~ is a run number"


def test_the_next_input_must_be_json() -> None:
    good = Decision((Complete(continue_as_new=True, next_input={"month": 2}),), "next")
    bad = Decision((Complete(continue_as_new=True, next_input={1, 2}),), "next")
    assert not problems(good)
    assert any("next_input" in p for p in problems(bad))
