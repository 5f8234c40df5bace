"""The teacher zoo at a glance: every teachers/NAME/teacher.toml, read without loading weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.paths import teachers_dir
from distill.teachers.manifest import TOML_NAME, RecordedMetrics, read_manifest
from distill.teachers.networks import CRLArch


@dataclass(frozen=True)
class ZooEntry:
    name: str
    env: str
    backend: str
    directory: Path
    arch: CRLArch
    has_weights: bool
    metrics: RecordedMetrics | None
    """As recorded in teacher.toml's [metrics] (None when none was recorded)."""


def zoo_entries(directory: Path | None = None) -> list[ZooEntry]:
    """One entry per folder holding a teacher.toml, by name."""
    directory = directory or teachers_dir()
    entries = []
    for toml in sorted(directory.glob(f"*/{TOML_NAME}")):
        m = read_manifest(toml.parent)
        entries.append(ZooEntry(
            name=m.name, env=m.env, backend=m.env_backend(), directory=toml.parent, arch=m.arch,
            has_weights=m.has_weights, metrics=m.metrics,
        ))
    return entries
