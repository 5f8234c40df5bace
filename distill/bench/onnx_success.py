"""Success in MJX of an exported ONNX policy, run by ONNX Runtime exactly as it will be shipped.

Reduced-precision variants can keep a small action error and still lose the task, so each file is
driven through real episodes: MJX steps the batch of envs, ONNX Runtime computes every env's action
at batch 1 (the exported graph's static shape). A file of a student with memory is stepped by
`distill.export.stepper.OnnxPolicy`, which carries each env's history buffer or hidden state and
starts it afresh when that env's episode ends; the robot's perturbations, when asked for, apply
through `distill.robust.NumpyPerturbation` (their noise seeded from the evaluation key).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import numpy as np

from distill import robust
from distill.envs.base import MjxGoalEnv
from distill.export.stepper import OnnxPolicy
from distill.progress import progress_bar
from distill.rollouts import EpisodeMetrics, episode_metrics, reset_batch


@partial(jax.jit, static_argnums=(0,))
def _step_batch(env: MjxGoalEnv, state, action):
    return jax.vmap(env.step)(state, action)


def key_seed(key: jax.Array) -> list[int]:
    """A numpy seed from a JAX key, so host-side noise is as reproducible as the key."""
    data = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return [int(x) for x in np.asarray(data).ravel()]


def evaluate_onnx(env: MjxGoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int, progress: bool = True,
                  perturbation: robust.Perturbation = robust.NONE) -> EpisodeMetrics:
    """One deterministic episode per env from the same reset key as `rollouts.evaluate`, so the
    goals match those the JAX policies were evaluated on; the file reads the student's observation."""
    done, success, dist = run_onnx_episodes(env, onnx_path, key, episodes, progress, perturbation)
    return episode_metrics(done, success, dist, env.spec.episode_length)


def run_onnx_episodes(env: MjxGoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int, progress: bool = True,
                      perturbation: robust.Perturbation = robust.NONE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `evaluate_onnx` scores: done, success and distance, each [episode_length, episodes]."""
    policy = OnnxPolicy(onnx_path, batch=episodes, threads=1)
    k_reset, k_roll = jax.random.split(key)
    robot = robust.NumpyPerturbation(perturbation, episodes, policy.step_dim, policy.action_dim, key_seed(k_roll))
    state = reset_batch(env, k_reset, episodes)
    done, success, dist = [], [], []
    for _ in progress_bar(range(env.spec.episode_length), f"MJX x ONNX {Path(onnx_path).name}", enabled=progress,
                          unit="step", leave=False):
        obs = np.asarray(state.student_obs, np.float32)
        action = policy.act(robot.perceive(obs) if perturbation.active else obs)
        state = _step_batch(env, state, robot.actuate(action))
        ended = np.asarray(state.done)
        policy.reset(ended)
        robot.reset(ended)
        done.append(ended)
        success.append(np.asarray(state.success))
        dist.append(np.asarray(state.dist))
    return np.stack(done), np.stack(success), np.stack(dist)
