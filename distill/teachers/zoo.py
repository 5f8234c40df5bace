"""The teacher zoo at a glance: every teachers/NAME/teacher.toml, read without loading weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.paths import teachers_dir
from distill.teachers import checkpoint
from distill.teachers.networks import CRLArch


@dataclass(frozen=True)
class ZooEntry:
    name: str
    env: str
    directory: Path
    arch: CRLArch
    has_weights: bool
    metrics: dict[str, Any]
    """As recorded in teacher.toml's [metrics] (empty when none was recorded)."""


def zoo_entries(directory: Path | None = None) -> list[ZooEntry]:
    """One entry per folder holding a teacher.toml, by name."""
    directory = directory or teachers_dir()
    entries = []
    for toml in sorted(directory.glob(f"*/{checkpoint.TOML_NAME}")):
        doc = checkpoint.read_toml(toml.parent)
        weights = toml.parent / (doc.get("weights") or {}).get("file", checkpoint.WEIGHTS_NAME)
        entries.append(ZooEntry(
            name=doc.get("name", toml.parent.name), env=doc.get("env", "unknown"), directory=toml.parent,
            arch=checkpoint.arch_from_toml(doc, toml.parent), has_weights=weights.is_file(),
            metrics=dict(doc.get("metrics") or {}),
        ))
    return entries
