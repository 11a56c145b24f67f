"""`FIELD=VALUE` strings (the command line's `--model-set`) -> typed `ModelConfig` field values.

Each value is converted by the field's type hint: a `Literal` takes one of its values, bool takes
true/false (also 1/0, yes/no, on/off), int and float their literals, a tuple comma-separated items
("8,16,32"; a fixed-length tuple needs exactly its length), and a union the first member that accepts it
(min_size: "800" is an int, "640,800" a tuple). Cross-field rules (e.g. pooler_aligned with pooler=pool)
are ModelConfig's own, checked when the config is built.
"""

from __future__ import annotations

import dataclasses
import types
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from .config import ModelConfig

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NAMES = {int: "int", float: "float", str: "string", bool: "bool"}


class OverrideError(ValueError):
    """A `FIELD=VALUE` that names no field, or whose value the field's type refuses; the message says which."""


@cache
def field_types() -> dict[str, Any]:
    """ModelConfig's field names -> their type hints, in declaration order."""
    hints = get_type_hints(ModelConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(ModelConfig)}


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """["pooler=pool", "anchor_sizes=8,16,32,64,128"] -> {"pooler": "pool", "anchor_sizes": (8, 16, 32, 64, 128)}.

    Raises OverrideError for an item without "=", a field given twice, an unknown field (the message lists
    the valid ones) or a value its type refuses (the message names the allowed values or the expected type).
    """
    types_by_name = field_types()
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise OverrideError(f"model setting {item!r} is not FIELD=VALUE")
        if name not in types_by_name:
            raise OverrideError(f"unknown model config field {name!r}; valid fields: {', '.join(types_by_name)}")
        if name in out:
            raise OverrideError(f"model config field {name!r} is set twice")
        try:
            out[name] = convert(text.strip(), types_by_name[name])
        except ValueError as exc:
            raise OverrideError(f"bad value for {name}: {exc}") from None
    return out


def convert(text: str, hint: Any) -> Any:
    """One value's text -> the type `hint` describes; ValueError naming what was expected."""
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        for value in allowed:
            if text == str(value):
                return value
        raise ValueError(f"{text!r}; choose from {', '.join(map(repr, allowed))}")
    if origin in (Union, types.UnionType):
        for member in get_args(hint):
            try:
                return convert(text, member)
            except ValueError:
                continue
        raise ValueError(f"{text!r} is not {_describe(hint)}")
    if origin is tuple:
        args = get_args(hint)
        parts = [p.strip() for p in text.split(",") if p.strip()] if text.strip(", ") else []
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(p, args[0]) for p in parts)
        if len(parts) != len(args):
            raise ValueError(f"{text!r} is not {_describe(hint)}")
        return tuple(convert(p, a) for p, a in zip(parts, args, strict=True))
    if hint is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{text!r} is not a bool (true or false)")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {_describe(hint)}") from None
    if hint is str:
        return text
    raise ValueError(f"cannot set a field of type {hint!r} from the command line")


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(m) for m in get_args(hint))
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"comma-separated {_NAMES.get(args[0], repr(args[0]))}s"
        return f"{len(args)} comma-separated values ({', '.join(_describe(a) for a in args)})"
    return ("an " if hint is int else "a ") + _NAMES[hint] if hint in _NAMES else repr(hint)
