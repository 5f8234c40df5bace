"""fp16 and int8 (QDQ) variants of an exported student, each measured against the fp32 model.

int8 is written in QDQ form with symmetric int8 scales (zero point 0), per-channel weights and
float biases, with Q/DQ on the inputs of the Gemm/MatMul layers only: that is the form TensorRT
builds an explicit-precision engine from (it fuses the rest). Normalisation, Elu and Tanh stay in
float. Quantising the Gemm outputs as well cost ~10x the action error (max 0.37 vs 0.04 on a
12-in, 2x64 student) for nothing TensorRT needs.

Recurrent students (a GRU's `obs`, `h_in` -> `action`, `h_out`): fp16 converts everything, the GRU
included (TensorRT 8.5 runs GRU in fp16; ONNX Runtime's CPU casts around it); int8 quantises only the
MLP head's Gemm layers and leaves the GRU in float — TensorRT 8.5 runs GRU in FP32/FP16 only, and the
readiness check refuses a GRU fed by Q/DQ. Both are measured over sequences (the state carried,
zeroed at episode starts) and int8 is calibrated on the states the fp32 file reaches along them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.transformers.float16 import convert_float_to_float16
from onnxruntime.transformers.onnx_model import OnnxModel

from distill.atomic import atomic_path
from distill.errors import DistillError
from distill.export.onnx_export import (
    INPUT_NAME,
    STATE_INPUT,
    onnx_io,
    ort_session,
    run_onnx,
    validate_onnx,
)
from distill.export.stepper import OnnxPolicy
from distill.hashing import sha256_file

MAX_CALIBRATION_ROWS = 2048
DEFAULT_EVAL_ROWS = 256


@dataclass(frozen=True)
class VariantResult:
    path: Path
    precision: str
    max_abs_err: float
    """Largest |variant - fp32| action difference over the evaluation rows (ONNX Runtime)."""
    mean_abs_err: float
    n_rows: int
    sha256: str
    qdq_nodes: int = 0
    """QuantizeLinear + DequantizeLinear nodes in the file (int8 only)."""


def _recurrent(onnx_path: str | Path) -> bool:
    return STATE_INPUT in onnx_io(onnx.load(str(onnx_path)))["inputs"]


def _starts(rows: np.ndarray, starts: np.ndarray | None) -> np.ndarray:
    """Episode starts of a sequence of rows (default: one episode from row 0)."""
    if starts is None:
        starts = np.zeros(len(rows), bool)
    starts = np.asarray(starts, bool)
    if starts.shape != (len(rows),):
        raise DistillError(f"starts has shape {starts.shape}; expected ({len(rows)},) to match the rows")
    return starts


def run_rows(onnx_path: str | Path, rows: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
    """Actions of a file for rows of its `obs` input: one row at a time, or for a recurrent file one
    sequence (state carried, zeroed where `starts`)."""
    if _recurrent(onnx_path):
        return OnnxPolicy(onnx_path).run_sequence(rows, _starts(rows, starts))
    return run_onnx(ort_session(onnx_path), rows)


def compare_onnx(reference: str | Path, candidate: str | Path, obs: np.ndarray,
                 starts: np.ndarray | None = None) -> tuple[float, float]:
    """(max, mean) |candidate - reference| action over the rows, both run in ONNX Runtime."""
    rows = np.asarray(obs, dtype=np.float32)
    diff = np.abs(run_rows(candidate, rows, starts) - run_rows(reference, rows, starts))
    return float(diff.max()), float(diff.mean())


def _input_dim(onnx_path: Path) -> int:
    io = onnx_io(onnx.load(str(onnx_path)))
    shape = io["inputs"].get(INPUT_NAME)
    if not shape or len(shape) != 2:
        raise DistillError(f"{onnx_path}: expected one input {INPUT_NAME!r} of shape [1, D]; export it with distill")
    return shape[1]


def _eval_rows(onnx_path: Path, eval_obs: np.ndarray | None) -> np.ndarray:
    """The given rows, or (a smoke check only) standard-normal rows of the model's input size."""
    dim = _input_dim(onnx_path)
    if eval_obs is None:
        return np.random.default_rng(0).standard_normal((DEFAULT_EVAL_ROWS, dim)).astype(np.float32)
    rows = np.asarray(eval_obs, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != dim or rows.shape[0] == 0:
        raise DistillError(f"evaluation rows have shape {rows.shape}; {onnx_path} takes [N, {dim}]")
    return rows


def _finish(
    onnx_path: Path, tmp_path: Path, precision: str, rows: np.ndarray, tol: float | None, qdq: int = 0,
    starts: np.ndarray | None = None,
) -> VariantResult:
    """Validates (full ONNX check, TensorRT 8.5 readiness, same interface as the fp32 file) and
    measures the written, not yet renamed, variant; its path is set by the caller."""
    got, want = onnx_io(validate_onnx(tmp_path)), onnx_io(onnx.load(str(onnx_path)))
    if got != want:
        raise DistillError(f"{precision} variant of {onnx_path} has {got}, the fp32 file {want}; the conversion changed its interface")
    max_err, mean_err = compare_onnx(onnx_path, tmp_path, rows, starts)
    if tol is not None and not max_err <= tol:
        raise DistillError(
            f"{precision} variant of {onnx_path}: actions differ from fp32 by up to {max_err:.3g} (> {tol:g}) on "
            f"{rows.shape[0]} rows; keep fp32 for this student or calibrate on more representative rows"
        )
    return VariantResult(tmp_path, precision, max_err, mean_err, rows.shape[0], sha256_file(tmp_path), qdq)


def make_fp16(
    onnx_path: str | Path, out_path: str | Path, eval_obs: np.ndarray | None = None, tol: float | None = None,
    eval_starts: np.ndarray | None = None,
) -> VariantResult:
    """Weights and arithmetic in float16; `obs` and `action` stay float32 so callers do not change.
    The converter appends the Cast nodes that keep the float32 interface after their consumers, so
    the nodes are put back in topological order (onnx.checker's full check and TensorRT need it)."""
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    rows = _eval_rows(onnx_path, eval_obs)
    model = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    try:
        OnnxModel.graph_topological_sort(model.graph)
    except RuntimeError as exc:
        raise DistillError(f"fp16 conversion of {onnx_path} left a cycle: {exc}; re-export the fp32 file") from None
    with atomic_path(out_path) as tmp:
        onnx.save(model, str(tmp))
        result = _finish(onnx_path, tmp, "fp16", rows, tol, starts=eval_starts)
    return replace(result, path=out_path)


class RowReader(CalibrationDataReader):
    """Feeds calibration rows one at a time (the model's batch dimension is fixed at 1)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= self.rows.shape[0]:
            return None
        self.index += 1
        return {INPUT_NAME: self.rows[self.index - 1 : self.index]}

    def rewind(self) -> None:
        self.index = 0


class SequenceReader(CalibrationDataReader):
    """Feeds a recurrent file's calibration steps: each row with the state the fp32 file reaches there
    along the sequence (so the head is calibrated on the GRU outputs it will see)."""

    def __init__(self, fp32_path: Path, rows: np.ndarray, starts: np.ndarray) -> None:
        policy = OnnxPolicy(fp32_path)
        self.feeds = []
        for t in range(rows.shape[0]):
            if starts[t] or t == 0:
                policy.reset()
            state = policy.hidden[0].copy()
            self.feeds.append({INPUT_NAME: rows[t : t + 1], STATE_INPUT: state})
            policy.act(rows[t : t + 1])
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.feeds):
            return None
        self.index += 1
        return self.feeds[self.index - 1]

    def rewind(self) -> None:
        self.index = 0


def calibration_rows(obs: np.ndarray, max_rows: int = MAX_CALIBRATION_ROWS) -> np.ndarray:
    """Up to `max_rows` rows spread evenly over the data (deterministic)."""
    rows = np.asarray(obs, dtype=np.float32)
    if rows.shape[0] <= max_rows:
        return rows
    return rows[np.linspace(0, rows.shape[0] - 1, max_rows).astype(np.int64)]


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs a 'consider pre-processing' hint on the root logger;
    for a static-shape MLP pre-processing changes nothing."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def count_qdq(onnx_path: str | Path) -> int:
    model = onnx.load(str(onnx_path))
    return sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def make_int8_qdq(
    onnx_path: str | Path,
    out_path: str | Path,
    calibration_obs: np.ndarray,
    eval_obs: np.ndarray | None = None,
    tol: float | None = None,
    max_calibration_rows: int = MAX_CALIBRATION_ROWS,
    calibration_starts: np.ndarray | None = None,
    eval_starts: np.ndarray | None = None,
) -> VariantResult:
    """Static int8 quantisation calibrated (min/max) on real observation rows; evaluated on
    `eval_obs` (default: the calibration rows). A recurrent file takes sequences: its calibration
    rows are their first `max_calibration_rows` steps (with `calibration_starts`)."""
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    recurrent = _recurrent(onnx_path)
    if recurrent:
        calib = _eval_rows(onnx_path, calibration_obs)[:max_calibration_rows]
        calib_starts = _starts(calib, None if calibration_starts is None
                               else np.asarray(calibration_starts)[:max_calibration_rows])
        reader = SequenceReader(onnx_path, calib, calib_starts)
    else:
        calib = calibration_rows(_eval_rows(onnx_path, calibration_obs), max_calibration_rows)
        calib_starts, reader = None, RowReader(calib)
    rows, starts = (calib, calib_starts) if eval_obs is None else (_eval_rows(onnx_path, eval_obs), eval_starts)
    with atomic_path(out_path) as tmp, _quiet_root_logger():
        quantize_static(
            str(onnx_path),
            str(tmp),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["Gemm", "MatMul"],
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"],
            },
        )
        qdq = count_qdq(tmp)
        if qdq == 0:
            raise DistillError(f"{onnx_path}: int8 quantisation inserted no Q/DQ nodes; is this a distill student export?")
        result = _finish(onnx_path, tmp, "int8", rows, tol, qdq, starts=starts)
    return replace(result, path=out_path)
