"""One vocabulary: fact kinds as a StrEnum, each with its meaning; call kinds by rule; slot
names from one module; a step written in code and its plan form kept in step."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re

import pytest

from steadyhand import RetryPolicy, Step
from steadyhand.core import facts, jsoncodec, slots
from steadyhand.core.circuit import FAILURE_KINDS, OUTCOME_KINDS
from steadyhand.core.errors import InputError
from steadyhand.core.facts import (
    CALL_OUTCOME_KINDS,
    CALL_SUFFIXES,
    OUTCOMES,
    PHASE_PREFIX,
    TERMINAL_KINDS,
    FactKind,
    call_kind,
)
from steadyhand.core.plans import StepSpec


def test_every_fact_kind_says_what_it_means_on_its_line() -> None:
    source = inspect.getsource(FactKind)
    lines = source.splitlines()
    cls = ast.parse(source).body[0]
    assert isinstance(cls, ast.ClassDef)
    members = [n for n in cls.body if isinstance(n, ast.Assign)]
    assert len(members) == len(FactKind)
    for node in members:
        line = lines[node.lineno - 1]
        assert "  # " in line and len(line.split("  # ", 1)[1]) > 10, line.strip()


def test_kinds_are_their_own_text_and_the_old_names_are_aliases() -> None:
    for kind in FactKind:
        assert kind == kind.value and kind.value == kind.name.lower()
        if hasattr(facts, kind.name):
            assert getattr(facts, kind.name) is kind


def test_call_kinds_follow_the_rule_both_ways() -> None:
    made = {call_kind(phase, s) for phase in PHASE_PREFIX for s in CALL_SUFFIXES}
    prefixes = tuple(f"{p}_" for p in PHASE_PREFIX.values())
    by_rule = {k for k in FactKind if k.startswith(prefixes) and not k.endswith(("_began",))}
    assert made == by_rule - {FactKind.ATTEMPT_DEFERRED}
    with pytest.raises(ValueError):
        call_kind("action", "vanished")


def test_outcome_lists_are_derived_and_agree() -> None:
    assert set(FAILURE_KINDS) < set(OUTCOME_KINDS) < set(CALL_OUTCOME_KINDS)
    assert FactKind.ATTEMPT_LOST not in OUTCOME_KINDS  # a lost call says nothing of a service
    assert all(isinstance(k, FactKind) for k in (*OUTCOME_KINDS, *TERMINAL_KINDS))
    assert len(CALL_OUTCOME_KINDS) == len(PHASE_PREFIX) * len(OUTCOMES)


def test_slot_names_come_from_one_module() -> None:
    assert facts.call_slot is slots.call_slot and facts.terminal_slot is slots.terminal_slot
    assert slots.call_slot("action", "hotel", 2, "outcome") == "action:hotel:2:outcome"
    assert slots.terminal_slot(1) == "terminal:1" and slots.retry_slot(1) == "retry:1"
    assert slots.child_slot("kid") == "child:kid"
    assert slots.event_slot("k") == "event:k"


def test_step_and_its_plan_form_have_the_same_fields_and_defaults() -> None:
    def shape(cls: type) -> list[tuple[str, object]]:
        out = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append((f.name, default))
        return out

    assert shape(Step) == shape(StepSpec)


def test_a_step_becomes_its_spec_field_by_field() -> None:
    from steadyhand import App

    app = App()

    @app.agent()
    def act(ctx: object) -> None: ...

    retry = RetryPolicy(max_attempts=2)
    step = Step("s", act, retry=retry, timeout=3.0, on_give_up="fail")
    spec = app.workflow("w", [step]).steps[0]
    assert spec == StepSpec("s", "act", retry=retry, timeout=3.0, on_give_up="fail")


def test_json_policies() -> None:
    assert jsoncodec.dumps({"a": [1, 2]}) == '{"a":[1,2]}'
    assert jsoncodec.loads(jsoncodec.dumps({"big": 2**70})) == {"big": 2**70}
    assert math.isinf(jsoncodec.loads(jsoncodec.dumps_plan({"cap": math.inf}))["cap"])
    with pytest.raises(InputError, match="must be JSON data"):
        jsoncodec.encode({"x": float("nan")}, "input")
    with pytest.raises(InputError, match="the limit is 10"):
        jsoncodec.encode("x" * 20, "input", limit=10)
    with pytest.raises(jsoncodec.JSONDecodeError):
        jsoncodec.loads("{nope")


def _slot_texts(tree: ast.AST) -> list[ast.expr]:
    """The expressions a module uses as slot names: `slot=...`, `.slot(...)`, `slot = ...`,
    and the slot argument of `NewFact(...)` / `RecordFact(...)` given by position."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += [k.value for k in node.keywords if k.arg == "slot"]
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            name = node.func.id if isinstance(node.func, ast.Name) else name
            if name == "slot" and node.args:
                found.append(node.args[0])
            if name in ("NewFact", "RecordFact"):
                found += node.args[3:4]
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "slot" for t in node.targets
        ):
            found.append(node.value)
    return found


def test_no_slot_is_spelled_outside_core_slots() -> None:
    """A slot name written as text (an f-string or a literal with a colon) anywhere else is
    a second spelling that can drift."""
    from tests.unit.test_layers import modules, parsed, rel

    found = []
    for _, path in modules():
        if rel(path) == "core/slots.py":
            continue
        for expr in _slot_texts(parsed(path)):
            for node in ast.walk(expr):
                text = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else node
                if isinstance(text, ast.Constant) and re.match(r"[a-z_]+:", str(text.value)):
                    found.append(f"{rel(path)}:{expr.lineno}: {ast.unparse(expr)}")
                    break
    assert not found, "build slot names in core/slots.py:\n" + "\n".join(found)


def test_the_slot_finder_finds_slots() -> None:
    tree = ast.parse('NewFact(K, slot=f"retry:{n}")\nRecordFact(K, {}, s, "wait:x:began")')
    assert len(_slot_texts(tree)) == 2
