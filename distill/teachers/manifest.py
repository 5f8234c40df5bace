"""What a teacher is, parsed once from its `teacher.toml` into a typed record.

Everything downstream (datasets, reports, ONNX metadata, `dataset validate --teacher`) names the
teacher's weights through `weights_identity`: the weights file's sha256 for real weights, and
`random-init:<seed>` for a random-init teacher, so no artifact ever claims weights that did not
label it. The physics `backend` the teacher was trained in travels with it: distillation builds
the env on that backend, because a teacher labels well only in the physics it learned in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from distill import artifacts
from distill.errors import DistillError
from distill.teachers.networks import CRLArch

TOML_NAME = "teacher.toml"
WEIGHTS_NAME = "weights.safetensors"
RANDOM_INIT_PREFIX = "random-init:"


@dataclass(frozen=True)
class WeightsRef:
    file: str
    sha256: str
    format: str = "safetensors"


@dataclass(frozen=True)
class RecordedMetrics:
    """The teacher's own evaluation as recorded when it was trained or imported."""

    success: float
    time_at_goal: float | None = None
    final_success: float | None = None
    final_distance: float | None = None
    episodes: int | None = None
    episode_length: int | None = None
    backend: str | None = None
    """The backend the figures were measured on (None: the teacher's own)."""


@dataclass(frozen=True)
class TeacherManifest:
    name: str
    env: str
    backend: str | None
    """Physics the teacher was trained in; None: the env's default (recorded before backends)."""
    arch: CRLArch
    directory: Path
    weights: WeightsRef | None
    metrics: RecordedMetrics | None = None
    provenance: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    training: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    missing_weights_hint: str = ""

    @property
    def weights_path(self) -> Path:
        return self.directory / (self.weights.file if self.weights else WEIGHTS_NAME)

    @property
    def has_weights(self) -> bool:
        return self.weights is not None and self.weights_path.is_file()

    def env_backend(self) -> str:
        """The backend to distil on: the recorded one, else the env's default."""
        from distill.envs import check_backend

        return check_backend(self.env, self.backend)


def random_init_identity(seed: int) -> str:
    return f"{RANDOM_INIT_PREFIX}{seed}"


def _table(doc: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise DistillError(f"{path}: [{key}] must be a table, got {type(value).__name__}")
    return value


def _metrics(doc: dict[str, Any], path: Path) -> RecordedMetrics | None:
    table = _table(doc, "metrics", path)
    if "success" not in table:
        return None
    known = {f for f in RecordedMetrics.__dataclass_fields__}
    try:
        return RecordedMetrics(**{k: v for k, v in table.items() if k in known})
    except TypeError as exc:
        raise DistillError(f"{path}: bad [metrics] table ({exc})") from None


def parse_manifest(doc: dict[str, Any], directory: Path) -> TeacherManifest:
    """The typed manifest of a parsed teacher.toml; a one-line error names what is wrong."""
    path = directory / TOML_NAME
    try:
        arch = CRLArch(**_table(doc, "arch", path))
    except (TypeError, ValueError) as exc:
        raise DistillError(f"{path}: bad [arch] table ({exc})") from None
    env = doc.get("env")
    if not isinstance(env, str) or not env:
        raise DistillError(f"{path}: `env` must name the env the teacher was trained in")
    backend = doc.get("backend")
    if backend is not None and not isinstance(backend, str):
        raise DistillError(f"{path}: `backend` must be a string such as \"spring\"")
    weights_table = _table(doc, "weights", path)
    weights = None
    if weights_table:
        if not isinstance(weights_table.get("sha256"), str):
            raise DistillError(f"{path}: [weights] must record the weights file's sha256")
        weights = WeightsRef(
            file=str(weights_table.get("file", WEIGHTS_NAME)), sha256=weights_table["sha256"],
            format=str(weights_table.get("format", "safetensors")),
        )
    return TeacherManifest(
        name=str(doc.get("name", directory.name)), env=env, backend=backend, arch=arch,
        directory=directory, weights=weights, metrics=_metrics(doc, path),
        provenance=MappingProxyType(_table(doc, "provenance", path)),
        training=MappingProxyType(_table(doc, "training", path)),
        missing_weights_hint=str(doc.get("missing_weights_hint", "")),
    )


def read_manifest(directory: str | Path) -> TeacherManifest:
    directory = Path(directory)
    doc = artifacts.read_toml(directory / TOML_NAME, f"no {TOML_NAME} in {directory}: not a teacher folder")
    return parse_manifest(doc, directory)
