"""Typed configuration: frozen dataclasses built from TOML tables, refusing unknown keys."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from distill.errors import DistillError

T = TypeVar("T")


def from_table(cls: type[T], table: dict[str, Any], where: str) -> T:
    """`cls(**table)`, with a one-line error naming `where` for a typo'd key or a bad value."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise DistillError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**table)
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
