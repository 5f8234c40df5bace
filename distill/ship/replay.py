"""The replay check a bundle carries: dataset rows, the shipped model's actions on them, and how
far another runtime's actions may fairly be from those.

Tolerances. ONNX Runtime on the robot runs the same file as the host did, so fp32 must agree to
float rounding (1e-4). A reduced-precision file (fp16, int8 QDQ) may be computed by another
runtime with other kernels; its distance from the host's answer is bounded by how far each is
from fp32, so the bound is twice the shipped file's own measured distance from fp32 on these
rows, with a floor. A TensorRT engine adds its own rounding: TF32 in "fp32" engines (TensorRT's
default on Ampere GPUs such as the Orin), fp16/int8 kernels otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.data import RolloutReader
from distill.export.onnx_export import ort_session, run_onnx

REPLAY_ROWS = 256
FP32_ONNX_TOL = 1e-4
REDUCED_ONNX_FLOOR = 1e-3
FP32_ENGINE_TOL = 1e-2
REDUCED_ENGINE_FLOOR = 2e-2


@dataclass(frozen=True)
class ReplaySet:
    obs: np.ndarray
    """[N, input_dim] float32: the student's observations from the run's dataset."""
    actions: np.ndarray
    """[N, action_dim] float32: the shipped file's actions on them (ONNX Runtime, CPU)."""
    row_indices: np.ndarray
    shipped_vs_fp32: float
    """Largest |shipped - fp32 student| action over these rows (0 for an fp32 bundle)."""
    tolerance_onnx: float
    tolerance_engine: float


def replay_rows(dataset: Path, n: int = REPLAY_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` committed rows spread evenly over the dataset (every round is represented)."""
    reader = RolloutReader(dataset)
    obs = reader.read(("obs",))["obs"]
    idx = np.unique(np.linspace(0, obs.shape[0] - 1, min(n, obs.shape[0])).round().astype(np.int64))
    return obs[idx].astype(np.float32), idx


def make_replay(shipped: Path, fp32: Path, dataset: Path, precision: str, n: int = REPLAY_ROWS) -> ReplaySet:
    obs, idx = replay_rows(dataset, n)
    actions = run_onnx(ort_session(shipped), obs).astype(np.float32)
    reference = actions if shipped == fp32 else run_onnx(ort_session(fp32), obs)
    deviation = float(np.max(np.abs(actions - reference)))
    if precision == "fp32":
        tol_onnx, tol_engine = FP32_ONNX_TOL, FP32_ENGINE_TOL
    else:
        tol_onnx = max(REDUCED_ONNX_FLOOR, 2.0 * deviation)
        tol_engine = max(REDUCED_ENGINE_FLOOR, 2.0 * deviation)
    return ReplaySet(obs, actions, idx, deviation, round_up(tol_onnx), round_up(tol_engine))


def round_up(x: float) -> float:
    """Two significant digits, rounded up, so the figure in deploy.yaml is the one checked."""
    exponent = math.floor(math.log10(x)) - 1
    return float(f"{math.ceil(x / 10.0**exponent - 1e-9)}e{exponent}")
