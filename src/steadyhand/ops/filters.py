"""The `--input KEY=VALUE` filters of a listing, parsed and checked (the SQL they become is
the store's: `store.listing_filters`)."""

from __future__ import annotations

import re
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.errors import InputError

_PATH_PART = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


def parse_input_filter(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` (KEY may be a dotted path; VALUE is JSON when it parses, else a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f'--input {text!r}: expected KEY=VALUE, e.g. customer=42 or a.b="x"')
    try:
        value: Any = jsoncodec.loads(raw)
    except jsoncodec.JSONDecodeError:
        value = raw
    check_path(key)
    return key, value


def check_path(key: str) -> list[str]:
    parts = key.split(".")
    for part in parts:
        if not _PATH_PART.match(part):
            raise InputError(
                f"input key {key!r}: use letters, digits, '_' or '-', with '.' between levels"
            )
    return parts
