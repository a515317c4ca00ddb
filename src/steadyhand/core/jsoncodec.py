"""JSON, the one module that speaks it: every other module encodes and decodes through here.

Four policies, each for a reason:

- `dumps` / `loads`: the engine's hot path (every fact a batch reads, every row it writes)
  and anything else machine-read. orjson encodes about 15 times and decodes about 5 times
  faster than the standard library (measured on a batch's rows: 96 facts, 0.44 ms with
  `json.dumps` against 0.03 ms), a tenth of a worker's CPU per step. What orjson refuses
  (integers beyond 64 bits, keys that are not strings, `Infinity`) falls back to the
  standard library, so anything `json` accepted still works.
- `encode`: a user's value where it enters (workflow input, event payload, agent result):
  strictly JSON (no NaN, no objects), within a size limit, or an `InputError` that says why.
- `dumps_plan`: a plan or an input as the root row keeps it: the standard library's text,
  which keeps an unbounded backoff cap (`float("inf")`) as `Infinity`.
- `pretty`: indented, for people (`--json` output); anything unknown is shown as text.
- `dumps_stable`: text whose bytes are hashed and must not change between versions (sealed
  archives): the standard library's compact form, UTF-8 kept as is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from steadyhand.core.errors import InputError
from steadyhand.core.limits import MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES

JSONDecodeError = json.JSONDecodeError
"""What `loads` raises for text that is not JSON (a `ValueError`)."""


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text of `value` (`default` converts what JSON cannot hold)."""
    try:
        return orjson.dumps(value, default=default).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"), default=default)


def loads(text: str | bytes) -> Any:
    """The value of JSON `text`; raises `JSONDecodeError` when it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # e.g. an integer beyond 64 bits; raises if really invalid


def dumps_plan(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON of a definition (a plan, a policy, a schedule) or an input as stored
    (keeps `Infinity`); raises `TypeError`/`ValueError` for what JSON cannot hold."""
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys)


def pretty(value: Any, *, sort_keys: bool = False) -> str:
    """Indented JSON for people; values JSON cannot hold are shown as their text."""
    return json.dumps(value, indent=2, default=str, sort_keys=sort_keys)


def dumps_stable(value: Any) -> str:
    """Compact JSON whose exact text is hashed (see the module docstring); keys keep their
    order, non-ASCII text is kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode(value: Any, what: str, limit: int = MAX_PAYLOAD_BYTES) -> str:
    """Encode `value` as compact JSON, or say clearly why it cannot be stored."""

    def refuse(obj: object) -> Any:
        raise TypeError(f"object of type {type(obj).__name__} is not JSON-serialisable")

    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=refuse)
    except RecursionError:
        raise InputError(
            f"{what} is nested more than {MAX_JSON_DEPTH} levels deep; flatten it"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{what} must be JSON data (dict, list, str, int, float, bool, None): {exc}. "
            "Convert it (e.g. dates to ISO strings, Decimals to strings) before passing it."
        ) from None
    if len(text) > limit:
        raise InputError(
            f"{what} is {len(text)} bytes of JSON; the limit is {limit}. "
            "Store large payloads elsewhere and pass a reference."
        )
    # Nesting cannot exceed the number of brackets: most values skip the walk.
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_JSON_DEPTH and json_depth(value) > MAX_JSON_DEPTH:
        raise InputError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep; flatten it")
    return text


def json_depth(value: Any) -> int:
    """How many levels below the top the deepest value sits (a scalar or `[]` is 0, `[1]`
    is 1): the measure `MAX_JSON_DEPTH` limits. Iterative, so no input can overflow it."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            todo += [(child, level + 1) for child in item.values()]
        elif isinstance(item, list | tuple):
            todo += [(child, level + 1) for child in item]
    return deepest


UNDECODABLE = "__steadyhand_undecodable__"
"""The key of the stand-in for a stored value that cannot be decoded (see `loads_stored`)."""


def loads_stored(text: str | bytes) -> Any:
    """The value of JSON read back from the store, or, if it cannot be decoded (nested too
    deep for the decoder, written before the limits held), a stand-in
    `{UNDECODABLE: reason}` so that the workflow can still be shown, and ended `failed` with
    that reason, instead of every read raising."""
    try:
        return loads(text)
    except RecursionError:
        reason = "nested too deeply to decode"
    except ValueError as exc:
        reason = f"not valid JSON ({str(exc)[:200]})"
    return {UNDECODABLE: f"a stored value is {reason} ({len(text)} bytes)"}


def undecodable(value: Any) -> str | None:
    """The reason if `value` is the stand-in `loads_stored` returns, else None."""
    if isinstance(value, dict) and len(value) == 1 and UNDECODABLE in value:
        return str(value[UNDECODABLE])
    return None
