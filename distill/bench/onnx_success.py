"""Success in MJX of an exported ONNX policy, run by ONNX Runtime exactly as it will be shipped.

Reduced-precision variants can keep a small action error and still lose the task, so each file is
driven through real episodes: MJX steps the batch of envs (the env's shared compiled step, see
`distill.rollouts.stepwise_rollout`), ONNX Runtime computes every env's action at batch 1 (the
exported graph's static shape).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from distill.envs.base import GoalEnv
from distill.export.onnx_export import ort_session, run_onnx
from distill.rollouts import EpisodeMetrics, Observation, evaluate_policy


def evaluate_onnx(env: GoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int,
                  batch: int | None = None) -> EpisodeMetrics:
    """`episodes` deterministic episodes, `batch` envs at a time, on the goals `rollouts.evaluate`
    draws from the same key, so the figures compare with the JAX policies'; the file reads the
    student's observation."""
    session = ort_session(onnx_path, threads=1)

    def policy(params, obs: Observation, key):
        del params, key
        return run_onnx(session, np.asarray(obs.student, np.float32)), {}

    return evaluate_policy(env, policy, None, key, episodes, batch=batch, jit_policy=False)
