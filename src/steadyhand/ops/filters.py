"""Filters a listing adds on a workflow's root row: idempotency key, id prefix, a remote
service its plan calls, and values in its input (JSON containment on PostgreSQL, `json_extract`
on SQLite). Each returns SQL on the alias `w` (the workflows table) and its parameters, so
`reports` can apply them to open, ended or all workflows alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from steadyhand.core.errors import InputError

MAX_INPUT_FILTERS = 8
SERVICE_SQL = {
    "postgresql": "EXISTS (SELECT 1 FROM jsonb_each_text(CAST(w.plan AS JSONB) -> 'options' "
    "-> 'services') s WHERE s.value = :service)",
    "sqlite": "EXISTS (SELECT 1 FROM json_each(w.plan, '$.options.services') s "
    "WHERE s.value = :service)",
}
_PATH_PART = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


def parse_input_filter(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` (KEY may be a dotted path; VALUE is JSON when it parses, else a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f'--input {text!r}: expected KEY=VALUE, e.g. customer=42 or a.b="x"')
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
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


def workflow_conditions(
    dialect: str,
    *,
    name: str | None = None,
    key: str | None = None,
    id_prefix: str | None = None,
    service: str | None = None,
    input: Mapping[str, Any] | Sequence[tuple[str, Any]] = (),
) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions on `w` and their parameters, for the filters that are set."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if name:
        conds.append("w.name = :name")
        params["name"] = name
    if key is not None:
        conds.append("w.idempotency_key = :key")
        params["key"] = key
    if id_prefix:
        escaped = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append("w.id LIKE :id_prefix ESCAPE '\\'")
        params["id_prefix"] = escaped + "%"
    if service:  # the plan frozen at start maps each agent to its service
        conds.append(SERVICE_SQL[dialect])
        params["service"] = service
    pairs = list(input.items()) if isinstance(input, Mapping) else list(input)
    if len(pairs) > MAX_INPUT_FILTERS:
        raise InputError(f"at most {MAX_INPUT_FILTERS} input filters at once")
    for index, (path, value) in enumerate(pairs):
        parts = check_path(path)
        name_ = f"input_{'abcdefgh'[index]}"
        if dialect == "postgresql":
            nested: Any = value
            for part in reversed(parts):
                nested = {part: nested}
            conds.append(f"CAST(w.input AS JSONB) @> CAST(:{name_} AS JSONB)")
            params[name_] = json.dumps(nested)
        else:
            json_path = "$" + "".join(f'."{p}"' for p in parts)
            if isinstance(value, (dict, list)):
                conds.append(f"json_extract(w.input, '{json_path}') = json(:{name_})")
                params[name_] = json.dumps(value)
            elif value is None:
                conds.append(f"json_type(w.input, '{json_path}') = 'null'")
            else:
                conds.append(
                    f"json_extract(w.input, '{json_path}') = :{name_}"
                    f" AND json_type(w.input, '{json_path}') = '{_sqlite_type(value)}'"
                )
                params[name_] = value
    return conds, params


def _sqlite_type(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    return "text"
