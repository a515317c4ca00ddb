"""SQL for the filters a listing adds on a workflow's root row: name, idempotency key, id
prefix, a remote service its plan calls, and values in its input (JSON containment on
PostgreSQL, `json_extract` on SQLite). Each condition is on the alias `w` (the workflows
table), so `reporting` can apply them to open, ended or all workflows alike. Input paths
arrive already checked and split (`ops.filters.check_path`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.errors import InputError

MAX_INPUT_FILTERS = 8
SERVICE_SQL = {
    "postgresql": "EXISTS (SELECT 1 FROM jsonb_each_text(CAST(w.plan AS JSONB) -> 'options' "
    "-> 'services') s WHERE s.value = :service)",
    "sqlite": "EXISTS (SELECT 1 FROM json_each(w.plan, '$.options.services') s "
    "WHERE s.value = :service)",
}


def workflow_conditions(
    dialect: str,
    *,
    name: str | None = None,
    key: str | None = None,
    id_prefix: str | None = None,
    service: str | None = None,
    input: Sequence[tuple[Sequence[str], Any]] = (),
) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions on `w` and their parameters, for the filters that are set; `input`
    holds (path parts, value) pairs."""
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
    if len(input) > MAX_INPUT_FILTERS:
        raise InputError(f"at most {MAX_INPUT_FILTERS} input filters at once")
    for index, (parts, value) in enumerate(input):
        param = f"input_{'abcdefgh'[index]}"
        if dialect == "postgresql":
            nested: Any = value
            for part in reversed(parts):
                nested = {part: nested}
            conds.append(f"CAST(w.input AS JSONB) @> CAST(:{param} AS JSONB)")
            params[param] = jsoncodec.dumps(nested)
            continue
        json_path = "$" + "".join(f'."{p}"' for p in parts)
        if isinstance(value, dict | list):
            conds.append(f"json_extract(w.input, '{json_path}') = json(:{param})")
            params[param] = jsoncodec.dumps(value)
        elif value is None:
            conds.append(f"json_type(w.input, '{json_path}') = 'null'")
        else:
            conds.append(
                f"json_extract(w.input, '{json_path}') = :{param}"
                f" AND json_type(w.input, '{json_path}') = '{_sqlite_type(value)}'"
            )
            params[param] = value
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
