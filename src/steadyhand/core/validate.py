"""Checking a decision before the engine applies it, and turning a supervisor's failure
(it raised, or returned something that cannot be applied) into a decision that ends the
workflow `failed` with the reason, recorded once as a fact.

Pure: a supervisor is user code, so anything it returns is checked here (a NaN wake-up
time, a result that is not JSON, `None` instead of a `Decision`) before any write; applying
an invalid decision would raise inside the transaction and loop silently.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping
from typing import Any

from steadyhand.core.decisions import (
    CallAgent,
    CancelChild,
    Complete,
    Decision,
    EndCompensated,
    Fail,
    RecordFact,
    StartChild,
    WaitUntil,
)
from steadyhand.core.facts import (
    DECISION_REFUSED,
    OUTCOMES,
    PHASE_PREFIX,
    SCHEDULED,
    SUPERVISOR_RAISED,
    TERMINAL_KINDS,
    WITHDRAWN,
)
from steadyhand.core.limits import MAX_PAYLOAD_BYTES

_MAX_DEPTH = 500  # deeper JSON than this is refused where inputs enter, too
_TEXT_LIMIT = 2000  # characters of an exception's message kept in a fact
_TRACE_LIMIT = 20_000  # characters of a traceback kept in a fact
_RESERVED = frozenset(
    {*TERMINAL_KINDS}
    | {f"{prefix}_{suffix}" for prefix in PHASE_PREFIX.values()
       for suffix in (*OUTCOMES, SCHEDULED, WITHDRAWN)}
)  # fmt: skip


def problems(decision: object) -> list[str]:
    """What is wrong with `decision`, one line per problem; empty when it can be applied."""
    if not isinstance(decision, Decision):
        return [f"the supervisor returned {_shown(decision)}, not a Decision"]
    if not isinstance(decision.commands, tuple | list):
        return [f"Decision.commands is {_shown(decision.commands)}, not a tuple of commands"]
    found: list[str] = []
    for field_name in ("why", "saw"):
        if not isinstance(getattr(decision, field_name), str):
            found.append(f"Decision.{field_name} must be a string")
    terminals = 0
    for index, command in enumerate(decision.commands):
        label = f"command {index + 1} ({type(command).__name__})"
        wrong = _command_problem(command)
        if wrong is not None:
            found.append(f"{label}: {wrong}")
        if isinstance(command, Complete | EndCompensated | Fail):
            terminals += 1
    if terminals > 1:
        found.append(f"{terminals} commands end the workflow; a decision may end it once")
    return found


def _command_problem(command: object) -> str | None:
    if isinstance(command, CallAgent):
        for name in ("step", "agent"):
            if not _name(getattr(command, name)):
                return f"{name} must be a non-empty string"
        if not _number(command.attempt) or not isinstance(command.attempt, int):
            return f"attempt must be an integer from 1, not {_shown(command.attempt)}"
        if not _number(command.timeout) or command.timeout <= 0:
            return f"timeout must be a finite number of seconds above 0, not {command.timeout!r}"
        beat = command.heartbeat_timeout
        if beat is not None and (not _number(beat) or beat <= 0):
            return f"heartbeat_timeout must be None or seconds above 0, not {beat!r}"
        return _json_problem(dict(command.args) if isinstance(command.args, Mapping) else
                             command.args, "args")  # fmt: skip
    if isinstance(command, WaitUntil):
        if not _number(command.at):
            return f"at must be a finite time in seconds since the epoch, not {command.at!r}"
        return None
    if isinstance(command, RecordFact):
        if not _name(command.kind):
            return "kind must be a non-empty string"
        if command.kind in _RESERVED:
            return f"kind {command.kind!r} is the engine's own; use Complete/Fail or a new kind"
        if command.step is not None and not _name(command.step):
            return "step must be a non-empty string or None"
        if command.slot is not None and not _name(command.slot):
            return "slot must be a non-empty string or None"
        if not isinstance(command.data, Mapping):
            return f"data must be a mapping, not {_shown(command.data)}"
        return _json_problem(dict(command.data), "data")
    if isinstance(command, Complete):
        if command.continue_as_new:
            return _json_problem(command.next_input, "next_input")
        return _json_problem(command.result, "result")
    if isinstance(command, EndCompensated | Fail):
        return None if isinstance(command.reason, str) else "reason must be a string"
    if isinstance(command, StartChild):
        if not _name(command.step) or not _name(command.workflow):
            return "step and workflow must be non-empty strings"
        return _json_problem(command.input, "input")
    if isinstance(command, CancelChild):
        return None if _name(command.step) else "step must be a non-empty string"
    return f"{_shown(command)} is not a command (CallAgent, WaitUntil, RecordFact, ...)"


def _json_problem(value: Any, what: str) -> str | None:
    """What keeps `value` from being stored as JSON, or None. A walk over the values, not
    an encoding: a long string costs one type check (measured in bench/validation.py)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    size = 0
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return f"{what} is nested deeper than {_MAX_DEPTH} levels"
        if isinstance(item, str):
            size += len(item)
        elif item is None or isinstance(item, bool | int):
            size += 4
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{what} must be JSON data: {item!r} is not a JSON number"
            size += 8
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            for key, v in item.items():
                if not isinstance(key, str | int | float | bool) and key is not None:
                    return f"{what} must be JSON data: a key of type {type(key).__name__}"
                size += len(str(key))
                stack.append((v, depth + 1))
        else:
            return f"{what} must be JSON data: object of type {type(item).__name__}"
        if size > MAX_PAYLOAD_BYTES:
            return f"{what} is over {MAX_PAYLOAD_BYTES} bytes of JSON; pass a reference"
    return None


def _name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: object) -> str:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{type(value).__name__} {text}" if value is not None else "None"


def raised(exc: BaseException, supervisor: str) -> Decision:
    """The decision for a supervisor that raised: record it (with the traceback and the line
    that raised) and end the workflow `failed`; nothing is compensated automatically."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f"{last.filename}:{last.lineno} in {last.name}"
    message = str(exc)[:_TEXT_LIMIT]
    error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    reason = (
        f"supervisor {supervisor!r} raised {error}" + (f" at {where}" if where else "") + ". "
        "This is a bug in supervisor code: deploy a fix, then `steadyhand retry` this "
        "workflow (or cancel it to roll back)."
    )
    data = {
        "supervisor": supervisor,
        "error": error,
        "type": type(exc).__name__,
        "where": where,
        "traceback": trace[-_TRACE_LIMIT:],
    }
    return Decision((RecordFact(SUPERVISOR_RAISED, data), Fail(reason)), reason)


def refused(decision: object, found: list[str], supervisor: str) -> Decision:
    """The decision for one that cannot be applied: say which command and what is wrong."""
    what = "; ".join(found)
    reason = (
        f"supervisor {supervisor!r} returned a decision that cannot be applied: {what}. "
        "Fix the supervisor, then `steadyhand retry` this workflow (or cancel it to roll back)."
    )
    data = {"supervisor": supervisor, "problems": found, "decided": _described(decision)}
    return Decision((RecordFact(DECISION_REFUSED, data), Fail(reason)), reason)


def _described(decision: object) -> list[str]:
    if not isinstance(decision, Decision) or not isinstance(decision.commands, tuple | list):
        return [_shown(decision)]
    lines = []
    for command in decision.commands:
        try:
            lines.append(str(command.describe())[:200])
        except Exception:
            lines.append(_shown(command))
    return lines
