"""What every reader of distill's ONNX files shares: the tensor names, a CPU session set up as
the robot's CPU runs it, row-at-a-time inference, and the file's declared inputs and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from distill.errors import DistillError
from distill.export.trt_readiness import default_opset

INPUT_NAME = "obs"
OUTPUT_NAME = "action"
STATE_INPUT = "h_in"
STATE_OUTPUT = "h_out"


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


def onnx_io(model: onnx.ModelProto) -> dict[str, Any]:
    """Opset and the single input/output's names and static shapes (0 for a symbolic dim)."""

    def shape(value: onnx.ValueInfoProto) -> list[int]:
        return [d.dim_value for d in value.type.tensor_type.shape.dim]

    return {
        "opset": default_opset(model),
        "inputs": {v.name: shape(v) for v in model.graph.input},
        "outputs": {v.name: shape(v) for v in model.graph.output},
    }
