"""Everything `distill ship` needs from a run folder, read in one place.

A run folder is what `distill run` wrote: `report.json`, the student ONNX and its precision
variants, the checkpoint folder `student/`, and (beside it, under datasets/) the HDF5 rows. The
report is read as the typed `RunReport` that `distill run` wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from distill.data import DatasetMeta, RolloutReader
from distill.errors import DistillError
from distill.paths import datasets_dir, from_root
from distill.report import REPORT_JSON, RunReport
from distill.students.checkpoint import read_student_toml

STUDENT_DIR = "student"
HOST_BACKEND = "onnxruntime_cpu"
"""The latency row the run's budget verdict rests on (ONNX Runtime, one CPU thread)."""


@dataclass(frozen=True)
class HostLatency:
    """The student's batch-1 latency as the run measured it, on the machine it ran on."""

    backend: str
    device: str
    median_ms: float
    p99_ms: float
    n_calls: int


@dataclass(frozen=True)
class ShipInputs:
    run: str
    run_dir: Path
    env_name: str
    backend: str
    """The physics the run distilled in (the report's; empty for runs recorded before backends)."""
    random_init: bool
    """The teacher had random weights: its student means nothing on a robot."""
    teacher_name: str
    teacher_sha256: str
    student_preset: str
    student_depth: int
    student_width: int
    student_params: int
    student_weights_sha256: str
    student_round: int | None
    """The DAgger round whose fit is the checkpoint (from student.toml)."""
    onnx_files: Mapping[str, Path]
    """Precision -> the exported file in the run folder, for those that exist."""
    variant_max_abs_err: Mapping[str, float]
    """Precision -> largest |variant - fp32| action the run measured."""
    latency: HostLatency
    latency_host: str
    dataset_path: Path
    dataset_meta: DatasetMeta
    dataset_rows: int
    run_distill_version: str


def _onnx_files(report: RunReport, run_dir: Path) -> tuple[dict[str, Path], dict[str, float]]:
    """Files are looked up by name inside the run folder, so a moved or copied run still ships."""
    files: dict[str, Path] = {}
    errors: dict[str, float] = {}
    for variant in report.variants:
        path = run_dir / Path(variant.path).name
        if path.is_file():
            files[variant.precision] = path
            errors[variant.precision] = float(variant.max_abs_err or 0.0)
    return files, errors


def _dataset(report: RunReport, run_dir: Path) -> Path:
    """The run's dataset, where the report says (relative paths are from the project root), else
    beside the project the run folder lives in (students/NAME/ -> datasets/NAME/), so a project
    moved or opened without $DISTILL_ROOT still ships."""
    where = run_dir / REPORT_JSON
    recorded = Path(report.artifacts.get("dataset", "rollouts.h5"))
    own_root = run_dir.resolve().parent.parent
    candidates = (from_root(recorded), own_root / recorded if not recorded.is_absolute() else recorded,
                  own_root / "datasets" / report.run / recorded.name, datasets_dir() / report.run / recorded.name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DistillError(f"{where}: its dataset {recorded} is missing (also looked in {datasets_dir() / report.run}); "
                       "the replay rows come from it — restore it or re-run `distill run`")


def load_ship_inputs(run_dir: str | Path) -> ShipInputs:
    """Reads report.json, student/student.toml and the dataset's root attributes; checks that they
    describe the same run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DistillError(f"no run folder {run_dir}; `distill run --run NAME` writes students/NAME/")
    report = RunReport.load(run_dir)
    student_toml = read_student_toml(run_dir / STUDENT_DIR)
    onnx_files, errors = _onnx_files(report, run_dir)
    dataset_path = _dataset(report, run_dir)
    reader = RolloutReader(dataset_path)
    host = report.latency_of("student", HOST_BACKEND)
    weights = student_toml.get("weights") or {}
    inputs = ShipInputs(
        run=report.run,
        run_dir=run_dir,
        env_name=report.env,
        backend=report.teacher.backend,
        random_init=report.random_init,
        teacher_name=report.teacher.name,
        teacher_sha256=report.teacher.weights_sha256 or "unknown",
        student_preset=report.student.preset,
        student_depth=report.student.depth,
        student_width=report.student.width,
        student_params=report.student.params,
        student_weights_sha256=str(weights.get("sha256", "")),
        student_round=(student_toml.get("meta") or {}).get("round"),
        onnx_files=onnx_files,
        variant_max_abs_err=errors,
        latency=HostLatency(host.backend, host.device, host.median_ms, host.p99_ms, host.n_calls),
        latency_host=report.latency_host,
        dataset_path=dataset_path,
        dataset_meta=reader.meta,
        dataset_rows=reader.committed_rows,
        run_distill_version=report.distill_version,
    )
    _check_same_run(inputs)
    return inputs


def _check_same_run(inputs: ShipInputs) -> None:
    meta = inputs.dataset_meta
    if meta.env_name != inputs.env_name:
        raise DistillError(f"{inputs.dataset_path} holds {meta.env_name} rows but the run's env is {inputs.env_name}; "
                           "the run folder and its dataset do not belong together")
    if meta.teacher_sha256 != inputs.teacher_sha256:
        raise DistillError(f"{inputs.dataset_path} was labelled by teacher weights {meta.teacher_sha256[:12]}…, the run's "
                           f"teacher is {inputs.teacher_sha256[:12]}…; the run folder and its dataset do not belong together")
    if inputs.dataset_rows == 0:
        raise DistillError(f"{inputs.dataset_path} has no committed rows; the run never finished a round")
