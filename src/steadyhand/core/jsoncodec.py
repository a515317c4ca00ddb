"""JSON on the engine's hot path: every fact a batch reads, and every row it writes.

orjson encodes about 15 times and decodes about 5 times faster than the standard library
(measured on a batch's rows: 96 facts, 0.44 ms with `json.dumps` against 0.03 ms), which is
a tenth of a worker's CPU per step. What orjson refuses (integers beyond 64 bits, keys
that are not strings) falls back to the standard library, so anything `json` accepted
still works. Values are validated with the standard library where they enter
(`model.encode_json`), so NaN and non-JSON types never reach this module.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    """Compact JSON text of `value`."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """The value of JSON `text`."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # e.g. an integer beyond 64 bits; raises if really invalid
