"""Success in MJX of an exported ONNX policy, run by ONNX Runtime exactly as it will be shipped.

Reduced-precision variants can keep a small action error and still lose the task, so each file is
driven through real episodes: MJX steps the batch of envs (the env's shared compiled step,
`distill.rollouts.batched_step`), ONNX Runtime computes every env's action at batch 1 (the exported
graph's static shape). A file of a student with memory is stepped by
`distill.export.stepper.OnnxPolicy`, which carries each env's history buffer or hidden state and
starts it afresh when that env's episode ends; the robot's perturbations, when asked for, apply
through `distill.robust.NumpyPerturbation` (their noise seeded from the evaluation key).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from distill import robust
from distill.envs.base import GoalEnv
from distill.export.stepper import OnnxPolicy
from distill.progress import progress_bar
from distill.rollouts import EpisodeMetrics, batched_step, episode_batches, episode_metrics


def key_seed(key: jax.Array) -> list[int]:
    """A numpy seed from a JAX key, so host-side noise is as reproducible as the key."""
    data = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return [int(x) for x in np.asarray(data).ravel()]


def evaluate_onnx(env: GoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int, batch: int | None = None,
                  progress: bool = True, perturbation: robust.Perturbation = robust.NONE) -> EpisodeMetrics:
    """`episodes` deterministic episodes, `batch` envs at a time, on the goals `rollouts.evaluate`
    draws from the same key, so the figures compare with the JAX policies'; the file reads the
    student's observation."""
    done, success, dist = run_onnx_episodes(env, onnx_path, key, episodes, progress, perturbation, batch)
    return episode_metrics(done, success, dist, env.spec.episode_length)


def run_onnx_episodes(env: GoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int, progress: bool = True,
                      perturbation: robust.Perturbation = robust.NONE,
                      batch: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `evaluate_onnx` scores: done, success and distance, each [episode_length, episodes], on
    the goals every evaluator of a run faces (`rollouts.episode_batches`)."""
    batch = batch or episodes
    policy = OnnxPolicy(onnx_path, batch=batch, threads=1)
    step = batched_step(env)
    parts = []
    for part in episode_batches(env, key, episodes, batch):
        valid, state = part.valid, part.state
        robot = robust.NumpyPerturbation(perturbation, batch, policy.step_dim, policy.action_dim, key_seed(part.key))
        policy.reset()
        done, success, dist = [], [], []
        for _ in progress_bar(range(env.spec.episode_length), f"MJX x ONNX {Path(onnx_path).name}",
                              enabled=progress, unit="step", leave=False):
            obs = np.asarray(state.student_obs, np.float32)
            action = policy.act(robot.perceive(obs) if perturbation.active else obs)
            state = step(state, jnp.asarray(robot.actuate(action)))
            ended = np.asarray(state.done)
            policy.reset(ended)
            robot.reset(ended)
            done.append(ended)
            success.append(np.asarray(state.success))
            dist.append(np.asarray(state.dist))
        parts.append(tuple(np.stack(x)[:, :valid] for x in (done, success, dist)))
    return tuple(np.concatenate(x, axis=1) for x in zip(*parts, strict=True))
