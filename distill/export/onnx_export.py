"""Student -> ONNX (opset 17, input `obs` [1, D] float32, output `action`), checked in ONNX Runtime.

We use torch's TorchScript exporter (`dynamo=False`): the dynamo exporter needs onnxscript,
which we do not ship, and for a Gemm/Elu/Tanh MLP both give the same graph. Every export is
run in a real onnxruntime session against the PyTorch module before it replaces the target
file; a mismatch raises instead of leaving a wrong policy on disk.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

import distill
from distill.atomic import atomic_path
from distill.errors import DistillError
from distill.students.mlp import MLPStudent

INPUT_NAME = "obs"
OUTPUT_NAME = "action"
DEFAULT_OPSET = 17
PARITY_TOL = 1e-5
PARITY_ROWS = 64


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_err: float
    """Largest |ONNX Runtime - PyTorch| over the parity rows."""
    sha256: str
    opset: int
    input_dim: int
    action_dim: int


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ort_session(onnx_path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session run the way the robot's CPU would: sequential, `threads` intra-op threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 (onnxruntime's pybind exception types share no base)
        raise DistillError(f"ONNX Runtime cannot load {onnx_path}: {str(exc).splitlines()[0]}") from None


def run_onnx(session: ort.InferenceSession, obs: np.ndarray) -> np.ndarray:
    """Actions for rows of obs, fed one row at a time (the input's batch dimension is fixed at 1)."""
    rows = np.asarray(obs, dtype=np.float32)
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: rows[i : i + 1]})[0] for i in range(rows.shape[0])])


def parity_inputs(student: MLPStudent, n: int = PARITY_ROWS, seed: int = 0) -> np.ndarray:
    """Raw observations spread around the student's normaliser (±3 std), so the baked-in
    normalisation is exercised on inputs of realistic scale."""
    rng = np.random.default_rng(seed)
    mean = student.obs_mean.cpu().numpy()
    std = student.obs_std.cpu().numpy()
    return (mean + std * rng.uniform(-3.0, 3.0, size=(n, student.input_dim))).astype(np.float32)


def check_parity(
    onnx_path: str | Path,
    student: MLPStudent,
    obs: np.ndarray | None = None,
    tol: float = PARITY_TOL,
) -> float:
    """Max |ORT - PyTorch| over the rows; raises DistillError above `tol`."""
    rows = parity_inputs(student) if obs is None else np.asarray(obs, dtype=np.float32)
    got = run_onnx(ort_session(onnx_path), rows)
    want = student.act_numpy(rows)
    if got.shape != want.shape:
        raise DistillError(f"{onnx_path}: ONNX output shape {got.shape} != PyTorch {want.shape}; re-export the student")
    err = float(np.max(np.abs(got - want)))
    if not err <= tol:
        raise DistillError(
            f"{onnx_path}: ONNX Runtime differs from PyTorch by {err:.3g} (> {tol:g}) on {rows.shape[0]} "
            "observations; the file does not compute the student — re-export it"
        )
    return err


def onnx_io(model: onnx.ModelProto) -> dict[str, Any]:
    """Opset and the single input/output's names and static shapes (0 for a symbolic dim)."""

    def shape(value: onnx.ValueInfoProto) -> list[int]:
        return [d.dim_value for d in value.type.tensor_type.shape.dim]

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "opset": opset,
        "inputs": {v.name: shape(v) for v in model.graph.input},
        "outputs": {v.name: shape(v) for v in model.graph.output},
    }


def _check_graph(path: Path, opset: int, input_dim: int, action_dim: int) -> None:
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    io = onnx_io(model)
    want = {"opset": opset, "inputs": {INPUT_NAME: [1, input_dim]}, "outputs": {OUTPUT_NAME: [1, action_dim]}}
    if io != want:
        raise DistillError(f"exported graph has {io}, expected {want}; the exporter did not honour the request")


def _metadata(student: MLPStudent) -> dict[str, str]:
    meta = {f"distill.{k}": str(v) for k, v in student.config().items()}
    meta.update({"distill.version": distill.__version__, "distill.normalisation": "inside", "distill.action_range": "tanh [-1, 1]"})
    return meta


def write_onnx(module: torch.nn.Module, input_dim: int, path: Path, opset: int, metadata: dict[str, str]) -> None:
    """Traces `module` at batch 1 into an ONNX file with one input `obs` and one output `action`,
    tagged with `metadata`; the caller checks the graph and its parity."""
    dummy = torch.zeros(1, input_dim, dtype=torch.float32)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def export_onnx(student: MLPStudent, path: str | Path, opset: int = DEFAULT_OPSET, tol: float = PARITY_TOL) -> ExportResult:
    """Exports, checks opset/IO and parity in ONNX Runtime, then moves the file into place."""
    path = Path(path)
    module = copy.deepcopy(student).cpu().eval()
    with atomic_path(path) as tmp:
        write_onnx(module, module.input_dim, tmp, opset, _metadata(module))
        _check_graph(tmp, opset, module.input_dim, module.action_dim)
        err = check_parity(tmp, module, tol=tol)
    return ExportResult(path, err, sha256_file(path), opset, module.input_dim, module.action_dim)
