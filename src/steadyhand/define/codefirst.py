"""Declaring code-first workflows: what `@app.workflow()` does with an `async def`.

The function is registered under its name, and a plan is written for it like for any
workflow (published to the store, frozen into each run) whose supervisor is `code`: the
replay of the function. Its steps are not listed in the plan; the replay discovers them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from steadyhand.core.codefirst import SUPERVISOR, CodeWorkflow
from steadyhand.core.errors import DefinitionError
from steadyhand.core.plans import Plan, check_name
from steadyhand.define.typed import build, typed_parameter


def code_workflow(fn: Callable[..., Any], name: str | None) -> CodeWorkflow:
    """Check that `fn` can be a code-first workflow and describe how to call it."""
    if not inspect.iscoroutinefunction(fn):
        raise DefinitionError(
            f"@app.workflow() decorates an `async def` taking the Workflow handle (and the "
            f"input), e.g. `async def trip(wf: Workflow, order: dict)`; "
            f"{getattr(fn, '__qualname__', fn)!r} is not one"
        )
    key = check_name(name or getattr(fn, "__name__", ""), "workflow name")
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params or len(params) > 2:
        raise DefinitionError(
            f"workflow {key!r} must take the Workflow handle and optionally the input "
            f"(`async def {key}(wf, input)`), not {len(params)} positional parameter(s)"
        )
    takes_input = len(params) == 2
    tp = typed_parameter(fn, 1) if takes_input else None
    if tp is None:
        return CodeWorkflow(key, fn, takes_input=takes_input)
    what = f"the input of workflow {key!r}"
    return CodeWorkflow(key, fn, takes_input=True, typed=lambda value: build(tp, value, what))


def code_plan(name: str, runs: int, services: Mapping[str, str]) -> Plan:
    """The plan of a code-first workflow: no listed steps, the `code` supervisor, and the
    services of every registered agent (the replay may call any of them)."""
    options: dict[str, Any] = {"code_first": True}
    if services:
        options["services"] = dict(services)
    return Plan(name, (), SUPERVISOR, runs, options)
