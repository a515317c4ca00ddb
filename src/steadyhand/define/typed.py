"""Optional typed inputs: an agent may take the workflow input as a second parameter
annotated with a pydantic model or a dataclass (`def charge(ctx, order: Order)`), or a
workflow may declare `input=Order`. The input is then validated at `start` (a bad one is an
`InputError` naming the field, and nothing is written), stored as plain JSON, and handed to
such agents as a typed value. pydantic is used only when the annotation is a pydantic model:
it is never imported by steadyhand itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from steadyhand.core.errors import DefinitionError, InputError


def is_model(tp: Any) -> bool:
    """A pydantic (v2) model class, recognised without importing pydantic."""
    return isinstance(tp, type) and callable(getattr(tp, "model_validate", None))


def is_input_type(tp: Any) -> bool:
    return is_model(tp) or (isinstance(tp, type) and dataclasses.is_dataclass(tp))


def input_type_of(fn: Callable[..., Any]) -> type | None:
    """The type an agent wants its input as: its second parameter's annotation, if that is
    a pydantic model or a dataclass; None for agents that take only the context."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if len(params) < 2:
        return None
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise DefinitionError(
            f"agent {getattr(fn, '__qualname__', fn)!r}: cannot resolve the annotation of its "
            f"input parameter ({exc}); define the type at module level"
        ) from None
    tp = hints.get(params[1].name)
    if not is_input_type(tp):
        raise DefinitionError(
            f"agent {getattr(fn, '__qualname__', fn)!r} takes a second parameter "
            f"{params[1].name!r}: annotate it with a pydantic model or a dataclass (the "
            "workflow input, validated at start), or take only the context"
        )
    return typing.cast(type, tp)


def typed_parameter(fn: Callable[..., Any], index: int) -> type | None:
    """The pydantic model or dataclass that parameter `index` of `fn` is annotated with,
    if any (other annotations, or none, mean untyped)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    if len(params) <= index:
        return None
    tp = hints.get(params[index].name)
    return typing.cast(type, tp) if is_input_type(tp) else None


def to_json_value(value: Any) -> Any:
    """A pydantic model or dataclass instance as plain JSON-ready data (others unchanged)."""
    if is_model(type(value)):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def build(tp: type, value: Any, what: str = "input") -> Any:
    """`value` (JSON data) as an instance of `tp`, or an InputError saying which field is
    wrong and how."""
    if is_model(tp):
        try:
            return tp.model_validate(value)  # type: ignore[attr-defined]
        except Exception as exc:  # pydantic.ValidationError, without importing pydantic
            errors = getattr(exc, "errors", None)
            if callable(errors):
                parts = [
                    f"{'.'.join(str(p) for p in e.get('loc', ())) or '(root)'}: {e.get('msg')}"
                    for e in errors()[:5]
                ]
                raise InputError(
                    f"{what} is not a valid {tp.__name__}: {'; '.join(parts)}"
                ) from None
            raise InputError(f"{what} is not a valid {tp.__name__}: {exc}") from None
    return _dataclass(tp, value, what)


def _dataclass(tp: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise InputError(f"{where} must be a JSON object for {tp.__name__}")
    hints = typing.get_type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} for {tp.__name__}")
    args = {}
    for name, field in fields.items():
        if name not in value:
            has_default = field.default is not dataclasses.MISSING
            if has_default or field.default_factory is not dataclasses.MISSING:
                continue
            raise InputError(f"{where}.{name} is required for {tp.__name__}")
        args[name] = _coerce(hints.get(name, Any), value[name], f"{where}.{name}")
    return tp(**args)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check `value` against a field's annotation (scalars, lists, dicts, optionals, nested
    dataclasses); values of other annotations pass as they are."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        problems = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except InputError as exc:
                problems.append(str(exc))
        raise InputError(problems[0] if problems else f"{where} must not be null")
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list")
        inner = (typing.get_args(tp) or (Any,))[0]
        return [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where} must be an object")
        inner = (*typing.get_args(tp), Any, Any)[1]
        return {k: _coerce(inner, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, where)
    if is_model(tp):
        return build(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where} must be a number, not {_json_type(value)}")
        return float(value)
    if tp in (int, str, bool):
        if type(value) is not tp:
            raise InputError(f"{where} must be {_json_name(tp)}, not {_json_type(value)}")
        return value
    return value


def _json_name(tp: type) -> str:
    return {int: "a whole number", str: "a string", bool: "true or false"}[tp]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
