"""Typed configuration: frozen dataclasses built from TOML tables, refusing unknown keys and values
of the wrong type (TOML's `rounds = 2.5` is a float where an integer belongs, and says so)."""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any, TypeVar

from distill.errors import DistillError

T = TypeVar("T")

_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}


def _accepts(kind: Any, value: Any) -> bool:
    """Whether a TOML value fits a field annotated `kind` (int fits float; bool fits only bool)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in (bool, str):
        return isinstance(value, kind)
    return True  # containers and records: their own constructors check them


def _describe(kind: Any) -> str:
    args = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    return " or ".join(_NAMES.get(a, getattr(a, "__name__", str(a))) for a in args if a is not type(None))


def from_table(cls: type[T], table: dict[str, Any], where: str) -> T:
    """`cls(**table)`, with a one-line error naming `where` for a typo'd key, a value of the wrong
    type, or a value the dataclass refuses."""
    if not isinstance(table, dict):
        raise DistillError(f"{where}: expected a table of settings, got {type(table).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise DistillError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in table.items():
        if not _accepts(hints[key], value):
            raise DistillError(f"{where}: {key} = {value!r} is {type(value).__name__}, expected "
                               f"{_describe(hints[key])}")
    try:
        return cls(**table)
    except DistillError as exc:
        raise DistillError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise DistillError(f"{where}: bad value ({exc})") from None


DISTILL_TABLE = "distill"
"""The table of a `distill run --config` file: the DAgger settings (`distill.dagger.DaggerConfig`)."""
TRAINING_CONFIG_TABLE = "training.config"
"""The table of a teacher.toml (or of `distill teacher train --config`) holding its CRL config."""


def table_at(doc: dict[str, Any], dotted: str) -> Any:
    """`doc["a"]["b"]` for "a.b"; None where a level is missing."""
    for key in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
