"""Batched rollouts of any policy in an MJX env, and the episode metrics we report.

A policy is a pure function `policy(params, obs, key) -> (action, extras)` where `obs` is an
`Observation` (the teacher's and the student's view of the same states, one array twice when the
env does not tell them apart); `extras` is a dict of per-env arrays recorded alongside each step
(teacher labels, which policy drove, ...). Parameters are an argument, not a closure, so
retraining a student never retraces anything.

Two ways to roll out:
- `stepwise_rollout` (what collection and evaluation use): a host loop over one jit'd, batched
  `env.step` and one jit'd policy. An MJX step compiles in tens of seconds on a CPU and a policy
  in about one, so compiling the physics once per (env, batch size) and sharing it between the
  teacher, the student, the β-mix and ONNX Runtime is what makes a run start quickly. The loop
  costs two dispatches a step.
- `rollout`: one `lax.scan`, for use inside a jit'd program (the CRL trainer's iteration); each
  (env, policy, num_steps, batch size) is its own compile.

`run_episodes` runs any number of episodes in batches of a fixed size (the last one padded), so one
compiled step serves every episode count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from distill.envs.base import EnvState, GoalEnv

VIEWS = ("teacher", "student")


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Observation:
    """What each policy reads at one step: the teacher's (maybe privileged) and the student's."""

    teacher: jax.Array
    student: jax.Array

    def view(self, name: str) -> jax.Array:
        return self.teacher if name == "teacher" else self.student


Policy = Callable[[Any, Observation, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Steps:
    """What happened at each step; every leaf is [T, num_envs, ...]."""

    obs: jax.Array
    """The teacher's observation."""
    student_obs: jax.Array | None
    """The student's observation; None when it is the teacher's (nothing stored twice)."""
    goal: jax.Array
    action: jax.Array
    t: jax.Array
    episode: jax.Array
    done: jax.Array
    success: jax.Array
    dist: jax.Array
    extras: dict[str, jax.Array]


@cache
def batched_reset(env: GoalEnv) -> Callable[[jax.Array], EnvState]:
    """jit(vmap(env.reset)) over [num_envs, 2] keys: one per env, so jit's cache is shared."""
    return jax.jit(jax.vmap(env.reset))


@cache
def batched_step(env: GoalEnv) -> Callable[[EnvState, jax.Array], EnvState]:
    """jit(vmap(env.step)): one per env, compiled once per batch size for every policy."""
    return jax.jit(jax.vmap(env.step))


@cache
def _jit_policy(policy: Policy) -> Policy:
    return jax.jit(policy)


def reset_batch(env: GoalEnv, key: jax.Array, num_envs: int) -> EnvState:
    """`num_envs` envs reset from the keys `jax.random.split(key, num_envs)`."""
    return batched_reset(env)(jax.random.split(key, num_envs))


def rollout(
    env: GoalEnv, policy: Policy, num_steps: int, params: Any, state: EnvState, key: jax.Array
) -> tuple[EnvState, Steps]:
    """Runs `num_steps` batched steps; jit'd once per (env, policy, num_steps)."""
    return _rollout(env, policy, num_steps, params, state, key)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _rollout(env, policy, num_steps, params, state, key):
    step = jax.vmap(env.step)
    asymmetric = env.spec.asymmetric

    def body(carry, step_key):
        s = carry
        action, extras = policy(params, Observation(s.obs, s.student_obs), step_key)
        nxt = step(s, action)
        rec = Steps(
            obs=s.obs,
            student_obs=s.student_obs if asymmetric else None,
            goal=s.goal,
            action=action,
            t=s.t,
            episode=s.episode,
            done=nxt.done,
            success=nxt.success,
            dist=nxt.dist,
            extras=extras,
        )
        return nxt, rec

    return jax.lax.scan(body, state, jax.random.split(key, num_steps))


def stepwise_rollout(
    env: GoalEnv, policy: Policy, num_steps: int, params: Any, state: EnvState, key: jax.Array,
    jit_policy: bool = True,
) -> tuple[EnvState, Steps]:
    """What `rollout` computes, as a host loop over the env's shared compiled step (`batched_step`)
    and the policy (jit'd once per policy unless `jit_policy` is False: a host policy, such as
    ONNX Runtime, gets arrays and returns numpy actions). Step i's policy key is the i-th of
    `jax.random.split(key, num_steps)`, as in `rollout`."""
    step = batched_step(env)
    act = _jit_policy(policy) if jit_policy else policy
    asymmetric = env.spec.asymmetric
    records = []
    for step_key in jax.random.split(key, num_steps):
        action, extras = act(params, Observation(state.obs, state.student_obs), step_key)
        nxt = step(state, action)
        records.append(Steps(
            obs=state.obs, student_obs=state.student_obs if asymmetric else None, goal=state.goal,
            action=jnp.asarray(action), t=state.t, episode=state.episode, done=nxt.done,
            success=nxt.success, dist=nxt.dist, extras=extras,
        ))
        state = nxt
    return state, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *records)


@cache
def deterministic(act: Callable[[Any, jax.Array], jax.Array], view: str = "teacher") -> Policy:
    """Wraps `act(params, obs) -> action` reading the `view` observation ("teacher" or
    "student") as a policy with no extras (cached, so jit reuses it)."""
    if view not in VIEWS:
        raise ValueError(f"view {view!r}: use one of {VIEWS}")

    def policy(params, obs, key):
        del key
        return act(params, obs.view(view)), {}

    policy.__name__ = f"deterministic_{getattr(act, '__name__', 'act')}_{view}"
    return policy


@dataclass(frozen=True)
class EpisodeMetrics:
    """The four success figures; judge students by time at goal and final-step success."""

    success: float
    """Reached the goal at least once (lenient: a random reacher scores 30-50%)."""
    time_at_goal: float
    """Mean steps within the radius per episode (the paper's metric)."""
    final_success: float
    final_distance: float
    episodes: int
    episode_length: int
    mean_distance: float | None = None
    """Distance to the goal averaged over every step of each episode (scaling-crl's
    `eval/episode_dist` divided by the episode's length); None in records written before it."""

    def as_dict(self) -> dict[str, float]:
        return {
            "success": self.success,
            "time_at_goal": self.time_at_goal,
            "final_success": self.final_success,
            "final_distance": self.final_distance,
            "episodes": self.episodes,
            "episode_length": self.episode_length,
            "mean_distance": self.mean_distance,
        }


def first_episode_metrics(steps: Steps, episode_length: int) -> EpisodeMetrics:
    """Metrics of each env's first episode in a rollout that started at reset."""
    return episode_metrics(steps.done, steps.success, steps.dist, episode_length)


def first_episode_alive(done) -> np.ndarray:
    """[T, num_envs] True up to and including each env's first `done` (a rollout started at reset):
    the steps of its first episode, before the auto-reset starts the next."""
    done = np.asarray(done, bool)
    return np.concatenate([np.ones_like(done[:1]), np.cumsum(done, 0)[:-1] == 0], 0)


def episode_metrics(done, success, dist, episode_length: int) -> EpisodeMetrics:
    """From [T, num_envs] arrays of a rollout that started at reset: each env's first episode.

    Steps after an env's first `done` (early termination then auto-reset) are masked out; the
    last counted step of each episode gives final success and distance.
    """
    done = np.asarray(done, bool)
    success = np.asarray(success, np.float64)
    dist = np.asarray(dist, np.float64)
    alive = first_episode_alive(done)
    last = np.maximum(alive.sum(0) - 1, 0)
    cols = np.arange(done.shape[1])
    return EpisodeMetrics(
        success=float(np.mean((success * alive).max(0))),
        time_at_goal=float(np.mean((success * alive).sum(0))),
        final_success=float(np.mean(success[last, cols])),
        final_distance=float(np.mean(dist[last, cols])),
        episodes=int(done.shape[1]),
        episode_length=int(episode_length),
        mean_distance=float(np.mean((dist * alive).sum(0) / np.maximum(alive.sum(0), 1))),
    )


def evaluate(
    env: GoalEnv, act: Callable[[Any, jax.Array], jax.Array], params: Any, key: jax.Array,
    num_episodes: int, view: str = "teacher", steps: int | None = None, batch: int | None = None,
) -> EpisodeMetrics:
    """Deterministic evaluation: `num_episodes` episodes, `batch` envs at a time (default: all at
    once), `act` reading the `view` observation; `steps` shortens the episodes (default: the
    env's length)."""
    return evaluate_policy(env, deterministic(act, view), params, key, num_episodes, steps, batch)


def evaluate_policy(
    env: GoalEnv, policy: Policy, params: Any, key: jax.Array, num_episodes: int, steps: int | None = None,
    batch: int | None = None, jit_policy: bool = True,
) -> EpisodeMetrics:
    """One episode in each of `num_episodes` envs; the same key gives the same goals whatever the
    policy, so policies compare on equal terms."""
    length = steps or env.spec.episode_length
    return first_episode_metrics(run_episodes(env, policy, params, key, num_episodes, length, batch, jit_policy),
                                 length)


@dataclass(frozen=True)
class EpisodeBatch:
    """`batch` envs at reset, of which the first `valid` are episodes asked for (the rest pad the
    last batch with copies of its first env), and the key this batch's policy draws from."""

    index: int
    state: EnvState
    valid: int
    key: jax.Array


def episode_batches(env: GoalEnv, key: jax.Array, num_episodes: int, batch: int | None = None) -> Iterator[EpisodeBatch]:
    """`num_episodes` envs at reset, `batch` at a time (default: all at once), so that every episode
    count uses the step compiled for that batch size. Env i resets from the i-th of
    `jax.random.split(k_reset, num_episodes)` whatever the batch, so its goal does not depend on it
    (every evaluator of a run splits `key` this way: teacher, student, carrying student, ONNX file).
    Batch b > 0 draws its policy keys from `fold_in(k_roll, b)`."""
    k_reset, k_roll = jax.random.split(key)
    batch = batch or num_episodes
    keys = jax.random.split(k_reset, num_episodes)
    for b, start in enumerate(range(0, num_episodes, batch)):
        chunk = keys[start : start + batch]
        valid = chunk.shape[0]
        if valid < batch:
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[:1], batch - valid, 0)])
        yield EpisodeBatch(b, batched_reset(env)(chunk), valid, k_roll if b == 0 else jax.random.fold_in(k_roll, b))


def join_episodes(parts: list[Any], valid: list[int]) -> Any:
    """Per-batch [T, batch, ...] records joined along the env axis, each batch's padding dropped."""
    parts = [jax.tree_util.tree_map(lambda x, v=v: x[:, :v], part) for part, v in zip(parts, valid, strict=True)]
    return parts[0] if len(parts) == 1 else jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *parts)


def run_episodes(
    env: GoalEnv, policy: Policy, params: Any, key: jax.Array, num_episodes: int, steps: int,
    batch: int | None = None, jit_policy: bool = True,
) -> Steps:
    """`steps` steps of `num_episodes` envs from reset (what `evaluate_policy` scores), run `batch`
    envs at a time (`episode_batches`)."""
    parts, valid = [], []
    for episodes in episode_batches(env, key, num_episodes, batch):
        _, part = stepwise_rollout(env, policy, steps, params, episodes.state, episodes.key, jit_policy)
        parts.append(part)
        valid.append(episodes.valid)
    return join_episodes(parts, valid)


@cache
def uniform_random(action_dim: int) -> Policy:
    """Actions drawn uniformly from [-1, 1]: the floor a trained policy must clear (cached, so
    jit reuses it)."""

    def policy(params, obs, key):
        del params
        shape = (*obs.teacher.shape[:-1], action_dim)
        return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0), {}

    policy.__name__ = f"uniform_random_{action_dim}"
    return policy
