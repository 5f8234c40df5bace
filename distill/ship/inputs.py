"""Everything `distill ship` needs from a run folder, read in one place.

A run folder is what `distill run` wrote: `report.json`, the student ONNX and its precision
variants, the checkpoint folder `student/`, and (beside it, under datasets/) the HDF5 rows. The
report's layout is read only here, so when the report becomes typed records only
`load_ship_inputs` changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.data import DatasetMeta, RolloutReader
from distill.errors import DistillError
from distill.paths import datasets_dir
from distill.students.checkpoint import read_student_toml

REPORT = "report.json"
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


def _get(doc: Mapping[str, Any], dotted: str, where: Path) -> Any:
    value: Any = doc
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise DistillError(f"{where}: no `{dotted}`; it was not written by this distill's `distill run` — re-run it")
        value = value[key]
    return value


def _read_report(run_dir: Path) -> dict[str, Any]:
    path = run_dir / REPORT
    if not path.is_file():
        raise DistillError(f"{run_dir}: no {REPORT}; the run did not finish — run `distill run` to completion first")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DistillError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}); re-run `distill run`") from None
    if not isinstance(doc, dict):
        raise DistillError(f"{path}: expected a JSON object; re-run `distill run`")
    return doc


def _host_latency(report: Mapping[str, Any], where: Path) -> HostLatency:
    rows = _get(report, "latency.rows", where)
    for row in rows:
        if row.get("model") == "student" and row.get("backend") == HOST_BACKEND:
            return HostLatency(HOST_BACKEND, str(row.get("device", "")), float(row["median_ms"]),
                               float(row["p99_ms"]), int(row["n_calls"]))
    raise DistillError(f"{where}: latency.rows has no student row measured with {HOST_BACKEND}; re-run `distill run`")


def _onnx_files(report: Mapping[str, Any], run_dir: Path, where: Path) -> tuple[dict[str, Path], dict[str, float]]:
    """Files are looked up by name inside the run folder, so a moved or copied run still ships."""
    files: dict[str, Path] = {}
    errors: dict[str, float] = {}
    for variant in _get(report, "variants", where):
        precision = str(variant["precision"])
        path = run_dir / Path(str(variant["path"])).name
        if path.is_file():
            files[precision] = path
            errors[precision] = float(variant.get("max_abs_err") or 0.0)
    return files, errors


def _dataset(report: Mapping[str, Any], run: str, where: Path) -> Path:
    recorded = Path(str(_get(report, "artifacts.dataset", where)))
    for candidate in (recorded, datasets_dir() / run / recorded.name):
        if candidate.is_file():
            return candidate
    raise DistillError(f"{where}: its dataset {recorded} is missing (also looked in {datasets_dir() / run}); "
                       "the replay rows come from it — restore it or re-run `distill run`")


def load_ship_inputs(run_dir: str | Path) -> ShipInputs:
    """Reads report.json, student/student.toml and the dataset's root attributes; checks that they
    describe the same run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DistillError(f"no run folder {run_dir}; `distill run --run NAME` writes students/NAME/")
    report = _read_report(run_dir)
    where = run_dir / REPORT
    run = str(_get(report, "run", where))
    student_toml = read_student_toml(run_dir / STUDENT_DIR)
    onnx_files, errors = _onnx_files(report, run_dir, where)
    dataset_path = _dataset(report, run, where)
    reader = RolloutReader(dataset_path)
    inputs = ShipInputs(
        run=run,
        run_dir=run_dir,
        env_name=str(_get(report, "env", where)),
        random_init=bool(report.get("random_init", False)),
        teacher_name=str(_get(report, "teacher.name", where)),
        teacher_sha256=str(_get(report, "teacher.weights_sha256", where) or "random-init"),
        student_preset=str(_get(report, "student.preset", where)),
        student_depth=int(_get(report, "student.depth", where)),
        student_width=int(_get(report, "student.width", where)),
        student_params=int(_get(report, "student.params", where)),
        student_weights_sha256=str(_get(student_toml, "weights.sha256", run_dir / STUDENT_DIR)),
        student_round=(student_toml.get("meta") or {}).get("round"),
        onnx_files=onnx_files,
        variant_max_abs_err=errors,
        latency=_host_latency(report, where),
        latency_host=str(_get(report, "latency.host", where)),
        dataset_path=dataset_path,
        dataset_meta=reader.meta,
        dataset_rows=reader.committed_rows,
        run_distill_version=str(_get(report, "distill_version", where)),
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
