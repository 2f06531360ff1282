"""Typed reading of JSON documents with errors that name the file and the field (pure).

Venues send numbers as JSON numbers or as decimal strings ("integers sent as strings are
accepted"); both are read here. NaN and infinities are refused wherever they appear.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.errors import InputError


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def as_mapping(value: Any, source: str, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(source, path or None, f"expected an object, got {_kind(value)}")
    return value


def as_list(value: Any, source: str, path: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise InputError(source, path or None, f"expected a list, got {_kind(value)}")
    return value


def field(obj: Mapping[str, Any], key: str, source: str, path: str) -> Any:
    if key not in obj:
        raise InputError(source, join(path, key), "missing")
    return obj[key]


def to_float(value: Any, source: str, path: str) -> float:
    """A finite number from a JSON number or a decimal string."""
    if isinstance(value, bool):
        raise InputError(source, path, f"expected a number, got {_kind(value)}")
    if isinstance(value, int | float):
        try:
            out = float(value)
        except OverflowError:  # an integer past float's range (JSON allows any number of digits)
            raise InputError(source, path, "must be finite, got an integer out of range") from None
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise InputError(source, path, f"not a number: {value[:40]!r}") from None
    else:
        raise InputError(source, path, f"expected a number, got {_kind(value)}")
    if not math.isfinite(out):
        raise InputError(source, path, f"must be finite, got {value!r}")
    return out


def number(
    obj: Mapping[str, Any],
    key: str,
    source: str,
    path: str,
    *,
    positive: bool = False,
    non_negative: bool = False,
    default: float | None = None,
    optional: bool = False,
) -> float:
    p = join(path, key)
    if key not in obj or obj[key] is None:
        if default is not None:
            return default
        if optional:
            return math.nan
        raise InputError(source, p, "missing" if key not in obj else "must not be null")
    v = to_float(obj[key], source, p)
    if positive and v <= 0.0:
        raise InputError(source, p, f"must be positive, got {obj[key]!r}")
    if non_negative and v < 0.0:
        raise InputError(source, p, f"must not be negative, got {obj[key]!r}")
    return v


def opt_number(
    obj: Mapping[str, Any],
    key: str,
    source: str,
    path: str,
    *,
    positive: bool = False,
    non_negative: bool = False,
) -> float | None:
    if obj.get(key) is None:
        return None
    return number(obj, key, source, path, positive=positive, non_negative=non_negative)


def string(obj: Mapping[str, Any], key: str, source: str, path: str) -> str:
    v = field(obj, key, source, path)
    if not isinstance(v, str) or not v:
        raise InputError(source, join(path, key), f"expected a non-empty string, got {_kind(v)}")
    return v


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return type(value).__name__
