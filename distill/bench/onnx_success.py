"""Success in MJX of an exported ONNX policy, run by ONNX Runtime exactly as it will be shipped.

Reduced-precision variants can keep a small action error and still lose the task, so each file is
driven through real episodes: MJX steps the batch of envs, ONNX Runtime computes every env's action
at batch 1 (the exported graph's static shape).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import numpy as np

from distill.envs.base import GoalEnv
from distill.export.onnx_export import ort_session, run_onnx
from distill.progress import progress_bar
from distill.rollouts import EpisodeMetrics, episode_metrics, reset_batch


@partial(jax.jit, static_argnums=(0,))
def _step_batch(env: GoalEnv, state, action):
    return jax.vmap(env.step)(state, action)


def evaluate_onnx(env: GoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int,
                  progress: bool = True) -> EpisodeMetrics:
    """One deterministic episode per env from the same reset key as `rollouts.evaluate`, so the
    goals match those the JAX policies were evaluated on; the file reads the student's observation."""
    session = ort_session(onnx_path, threads=1)
    k_reset, _ = jax.random.split(key)
    state = reset_batch(env, k_reset, episodes)
    done, success, dist = [], [], []
    for _ in progress_bar(range(env.spec.episode_length), f"MJX x ONNX {Path(onnx_path).name}", enabled=progress,
                          unit="step", leave=False):
        obs = np.asarray(state.student_obs, np.float32)
        action = run_onnx(session, obs)
        state = _step_batch(env, state, action)
        done.append(np.asarray(state.done))
        success.append(np.asarray(state.success))
        dist.append(np.asarray(state.dist))
    return episode_metrics(np.stack(done), np.stack(success), np.stack(dist), env.spec.episode_length)
