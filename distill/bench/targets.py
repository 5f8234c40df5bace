"""Target profiles (benchmarks/targets/<name>.toml): the device a student must run on and its
latency budget, and the verdict of a latency measurement against that budget."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import DistillError
from distill.paths import project_root

if TYPE_CHECKING:
    from distill.bench.latency import LatencyResult


@dataclass(frozen=True)
class TargetProfile:
    name: str
    robot: str
    device: str
    jetpack: str
    tensorrt: str
    onnx_opset: int
    control_hz: float
    budget_p99_ms: float
    """Inference time allowed per control step (batch 1, 99th percentile)."""
    source: Path

    @property
    def period_ms(self) -> float:
        return 1000.0 / self.control_hz


def targets_dir() -> Path:
    return project_root() / "benchmarks" / "targets"


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise DistillError(f"target profile {path} not found")
        return path
    path = targets_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in targets_dir().glob("*.toml"))
        raise DistillError(f"unknown target {name_or_path!r}; known targets: {', '.join(known) or 'none'}")
    return path


def _positive(path: Path, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise DistillError(f"{path}: {field} = {value!r}; expected a positive number")
    return float(value)


def load_target(name_or_path: str | Path) -> TargetProfile:
    """A profile by name (benchmarks/targets/<name>.toml) or by path."""
    path = _resolve(name_or_path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DistillError(f"{path}: invalid TOML ({exc}); fix the file") from None
    try:
        return TargetProfile(
            name=str(doc["name"]),
            robot=str(doc["robot"]),
            device=str(doc["device"]),
            jetpack=str(doc["jetpack"]),
            tensorrt=str(doc["tensorrt"]),
            onnx_opset=int(doc["onnx_opset"]),
            control_hz=_positive(path, "[control].rate_hz", doc["control"]["rate_hz"]),
            budget_p99_ms=_positive(path, "[budget].p99_ms", doc["budget"]["p99_ms"]),
            source=path,
        )
    except (KeyError, TypeError) as exc:
        raise DistillError(f"{path}: missing or malformed field {exc}; see benchmarks/targets/go2.toml") from None


@dataclass(frozen=True)
class TargetVerdict:
    """A batch-1 latency measurement set against a target's budget (a run's report holds the
    student's)."""

    name: str
    """The target profile's name."""
    budget_p99_ms: float
    control_hz: float
    student_p99_ms: float
    """The measured p99."""
    meets_budget: bool
    measured_on: str
    """The device the measurement ran on (`LatencyResult.device`)."""
    note: str = "measured on this host's CPU, not the robot: rebuild and time on the Jetson"

    @property
    def headroom_ms(self) -> float:
        return self.budget_p99_ms - self.student_p99_ms

    @property
    def budget_used(self) -> float:
        return self.student_p99_ms / self.budget_p99_ms

    @property
    def period_used(self) -> float:
        """p99 as a fraction of the control period."""
        return self.student_p99_ms * self.control_hz / 1000.0


def verdict(result: LatencyResult, target: TargetProfile) -> TargetVerdict:
    """Whether the measured p99 fits the target's budget, and by how much."""
    return TargetVerdict(name=target.name, budget_p99_ms=target.budget_p99_ms, control_hz=target.control_hz,
                         student_p99_ms=result.p99_ms, meets_budget=result.p99_ms <= target.budget_p99_ms,
                         measured_on=result.device)
