"""Student -> ONNX (opset 17, input `obs` [1, D] float32, output `action`), checked in ONNX Runtime.

Students with memory keep their state explicit, so the file stays a pure function of its inputs:
a history student takes its stacked window as `obs` [1, k*D] (`distill.students.history` says why
and how it is laid out); a GRU student takes `obs` [1, D] and `h_in` [layers, 1, hidden] and returns
`action` and `h_out` (the caller feeds `h_out` back as the next `h_in`, zeros at an episode's start).
The file's metadata names the family and layout, so `distill.export.stepper` (and the robot-side
runner) can carry the state without the student at hand. Parity is checked over a sequence with a
reset inside.

We use torch's TorchScript exporter (`dynamo=False`): the dynamo exporter needs onnxscript,
which we do not ship, and for a Gemm/Elu/Tanh MLP both give the same graph. Every export is
run in a real onnxruntime session against the PyTorch module before it replaces the target
file; a mismatch raises instead of leaving a wrong policy on disk. Before that, every exported file
(students, their fp16/int8 variants, the teacher's actor) passes `validate_onnx`: onnx.checker's
full check and the TensorRT 8.5 readiness check (distill.export.trt_readiness).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.shape_inference
import torch

import distill
from distill.atomic import atomic_path
from distill.errors import DistillError
from distill.export.onnx_io import (
    INPUT_NAME,
    OUTPUT_NAME,
    STATE_INPUT,
    STATE_OUTPUT,
    onnx_io,
    ort_session,
    run_onnx,
)
from distill.export.stepper import OnnxPolicy
from distill.export.trt_readiness import require_tensorrt85
from distill.hashing import sha256_file
from distill.students.gru import GRUStudent
from distill.students.memory import Student, act_sequence

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


def parity_inputs(student: Student, n: int = PARITY_ROWS, seed: int = 0) -> np.ndarray:
    """Raw observations spread around the student's normaliser (±3 std), so the baked-in
    normalisation is exercised on inputs of realistic scale."""
    rng = np.random.default_rng(seed)
    mean = student.obs_mean.cpu().numpy()
    std = student.obs_std.cpu().numpy()
    return (mean + std * rng.uniform(-3.0, 3.0, size=(n, student.input_dim))).astype(np.float32)


def parity_starts(n: int) -> np.ndarray:
    """Episode starts for a parity sequence: the first row and one in the middle (a reset inside)."""
    starts = np.zeros(n, bool)
    starts[0] = starts[n // 2] = True
    return starts


def check_parity(
    onnx_path: str | Path,
    student: Student,
    obs: np.ndarray | None = None,
    tol: float = PARITY_TOL,
    starts: np.ndarray | None = None,
) -> float:
    """Max |ORT - PyTorch| over the rows; raises DistillError above `tol`. A GRU student runs them as
    a sequence (its state carried from row to row, zeroed where `starts`, default: the first row and
    one in the middle)."""
    rows = parity_inputs(student) if obs is None else np.asarray(obs, dtype=np.float32)
    if isinstance(student, GRUStudent):
        starts = parity_starts(len(rows)) if starts is None else starts
        got = OnnxPolicy(onnx_path).run_sequence(rows, starts)
        want = act_sequence(student, rows, starts)
    else:
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


def validate_onnx(path: str | Path) -> onnx.ModelProto:
    """What every exported file passes before it is moved into place: onnx.checker's full check
    (types, shape inference, nodes in topological order) and the TensorRT 8.5 readiness check.
    Returns the loaded model."""
    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise DistillError(
            f"{path} fails onnx.checker's full check: {str(exc).strip().splitlines()[0]}; the export wrote an invalid graph"
        ) from None
    model = onnx.load(str(path))
    require_tensorrt85(model, name=path)
    return model


def policy_io(input_dim: int, action_dim: int, state_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The inputs and outputs of a distill policy file: `obs` -> `action`, and `h_in` -> `h_out` of
    `state_shape` for a recurrent one."""
    inputs, outputs = {INPUT_NAME: [1, input_dim]}, {OUTPUT_NAME: [1, action_dim]}
    if state_shape:
        inputs[STATE_INPUT] = outputs[STATE_OUTPUT] = list(state_shape)
    return {"inputs": inputs, "outputs": outputs}


def student_io(student: Student) -> dict[str, Any]:
    state = student.state_shape if isinstance(student, GRUStudent) else None
    return policy_io(student.input_dim, student.action_dim, state)


def check_graph(path: Path, opset: int, input_dim: int, action_dim: int,
                state_shape: tuple[int, ...] | None = None) -> None:
    """validate_onnx, then the interface every distill policy file has: the requested opset, one
    input `obs` [1, input_dim] and one output `action` [1, action_dim] (plus `h_in` and `h_out` of
    `state_shape` for a recurrent student), all float32."""
    model = validate_onnx(path)
    io = onnx_io(model)
    want = {"opset": opset, **policy_io(input_dim, action_dim, state_shape)}
    if io != want:
        raise DistillError(f"{path}: graph has {io}, expected {want}; the exporter did not honour the request")
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)}
    if set(types.values()) != {onnx.TensorProto.FLOAT}:
        raise DistillError(f"{path}: input/output element types {types} are not all float32; callers feed float32")


def _metadata(student: Student) -> dict[str, str]:
    meta = {f"distill.{k}": str(v) for k, v in student.config().items()}
    meta.update({"distill.version": distill.__version__, "distill.normalisation": "inside", "distill.action_range": "tanh [-1, 1]"})
    meta["distill.family"] = student.family
    if isinstance(student, GRUStudent):
        meta["distill.state"] = f"{STATE_INPUT} -> {STATE_OUTPUT}, zeros at an episode's first step"
    return meta


def write_gru_onnx(student: GRUStudent, path: Path, opset: int, metadata: dict[str, str]) -> None:
    """Traces one control step (obs, h_in) -> (action, h_out) at batch 1: torch's exporter writes one
    ONNX GRU node per layer (linear_before_reset = 1, PyTorch's cell), which TensorRT 8.5 parses."""
    args = (torch.zeros(1, student.input_dim), student.initial_state(1))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # nn.GRU's shape checks, constant at batch 1
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(student, args, str(path), input_names=[INPUT_NAME, STATE_INPUT],
                          output_names=[OUTPUT_NAME, STATE_OUTPUT], opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


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


def export_onnx(student: Student, path: str | Path, opset: int = DEFAULT_OPSET, tol: float = PARITY_TOL) -> ExportResult:
    """Exports, checks opset/IO and parity in ONNX Runtime, then moves the file into place."""
    path = Path(path)
    module = copy.deepcopy(student).cpu().eval()
    with atomic_path(path) as tmp:
        if isinstance(module, GRUStudent):
            write_gru_onnx(module, tmp, opset, _metadata(module))
            check_graph(tmp, opset, module.input_dim, module.action_dim, module.state_shape)
        else:
            write_onnx(module, module.input_dim, tmp, opset, _metadata(module))
            check_graph(tmp, opset, module.input_dim, module.action_dim)
        err = check_parity(tmp, module, tol=tol)
    return ExportResult(path, err, sha256_file(path), opset, module.input_dim, module.action_dim)
