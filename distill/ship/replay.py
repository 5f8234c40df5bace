"""The replay check a bundle carries: dataset rows, the shipped model's actions on them, and how
far another runtime's actions may fairly be from those.

Tolerances. ONNX Runtime on the robot runs the same file as the host did, so fp32 must agree to
float rounding (1e-4). A reduced-precision file (fp16, int8 QDQ) may be computed by another
runtime with other kernels; its distance from the host's answer is bounded by how far each is
from fp32, so the bound is twice the shipped file's own measured distance from fp32 on these
rows, with a floor. A TensorRT engine adds its own rounding: TF32 in "fp32" engines (TensorRT's
default on Ampere GPUs such as the Orin), fp16/int8 kernels otherwise.

Rows. A stateless student replays dataset rows spread over every round, each one its own start. A
student with memory replays whole episodes (their first steps, from rounds spread over the run) in
step order, with `starts` marking each episode's first row: the runner must carry its history buffer
or hidden state along each one and start afresh at the next, so the check covers the resets too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.data import RolloutReader
from distill.export.stepper import OnnxPolicy

REPLAY_ROWS = 256
REPLAY_EPISODES = 4
"""Episodes a memory student's replay holds ("several", resets between them)."""
REPLAY_EPISODE_STEPS = 256
"""Steps kept of each (its first ones)."""
FP32_ONNX_TOL = 1e-4
REDUCED_ONNX_FLOOR = 1e-3
FP32_ENGINE_TOL = 1e-2
REDUCED_ENGINE_FLOOR = 2e-2


@dataclass(frozen=True)
class ReplaySet:
    obs: np.ndarray
    """[N, obs_dim] float32: the student's observations from the run's dataset, one step each."""
    starts: np.ndarray
    """[N] bool: the row starts an episode (every row, for a stateless student)."""
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


def replay_episodes(dataset: Path, episodes: int = REPLAY_EPISODES,
                    steps: int = REPLAY_EPISODE_STEPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs, starts, row indices) of the first `steps` steps of `episodes` episodes spread over the
    dataset (by episode id, so over rounds), in step order."""
    data = RolloutReader(dataset).read(("obs", "episode", "t"))
    ids = np.unique(data["episode"])
    chosen = ids[np.unique(np.linspace(0, len(ids) - 1, min(episodes, len(ids))).round().astype(np.int64))]
    parts = []
    for e in chosen:
        rows = np.flatnonzero(data["episode"] == e)
        parts.append(rows[np.argsort(data["t"][rows], kind="stable")][:steps])
    idx = np.concatenate(parts)
    starts = np.zeros(len(idx), bool)
    starts[np.cumsum([0] + [len(p) for p in parts[:-1]])] = True
    return data["obs"][idx].astype(np.float32), starts, idx


def make_replay(shipped: Path, fp32: Path, dataset: Path, precision: str, n: int = REPLAY_ROWS) -> ReplaySet:
    policy = OnnxPolicy(shipped)
    if policy.stateful:
        obs, starts, idx = replay_episodes(dataset)
    else:
        obs, idx = replay_rows(dataset, n)
        starts = np.ones(len(obs), bool)
    actions = policy.run_sequence(obs, starts).astype(np.float32)
    reference = actions if shipped == fp32 else OnnxPolicy(fp32).run_sequence(obs, starts)
    deviation = float(np.max(np.abs(actions - reference)))
    if precision == "fp32":
        tol_onnx, tol_engine = FP32_ONNX_TOL, FP32_ENGINE_TOL
    else:
        tol_onnx = max(REDUCED_ONNX_FLOOR, 2.0 * deviation)
        tol_engine = max(REDUCED_ENGINE_FLOOR, 2.0 * deviation)
    return ReplaySet(obs, starts, actions, idx, deviation, round_up(tol_onnx), round_up(tol_engine))


def round_up(x: float) -> float:
    """Two significant digits, rounded up, so the figure in deploy.yaml is the one checked."""
    exponent = math.floor(math.log10(x)) - 1
    return float(f"{math.ceil(x / 10.0**exponent - 1e-9)}e{exponent}")
