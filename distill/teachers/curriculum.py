"""A goal curriculum for CRL on open ground: commanded goals on a ring that widens with success.

CRL learns only the goals its own trajectories reach (relabelled future states). On the Go2 a
random base strays ~0.24 m in a 10 s episode (p95 0.33 m) while the env's goals lie 1-3 m away, so
the actor is commanded to goals it has never seen reached and nothing rewards walking. Here the
trainer replaces each new episode's goal (the env's own draw) by one uniform by area in a ring
around where the episode starts: distances [inner, radius], where `radius` starts within reach
(success radius + ~0.3 m) and moves out by `step` whenever the collection episodes of a window
reached their goal often enough (`threshold`), up to `max_radius`.

All of it is pure functions over a `Curriculum` pytree that lives in the trainer's state (so a
checkpoint resumes it); `RingGoals` wraps an env for the trainer's rollout. Evaluation (the curve)
still uses the env's own goals, so the curve says how far the teacher got on the real task.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from distill.envs.base import EnvState, GoalEnv

GOAL_SALT = 0x676F616C
"""Folded into an episode's env key to draw its curriculum goal (independent of the env's own draws)."""


@dataclass(frozen=True)
class CurriculumConfig:
    """The ring's schedule (the [training.config] keys `curriculum_*`)."""

    inner: float
    radius: float
    max_radius: float
    step: float
    threshold: float
    window: int


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Curriculum:
    """The ring's state, checkpointed with the trainer's."""

    radius: jax.Array
    """Outer radius of the ring goals are drawn from now, m."""
    episodes: jax.Array
    """Collection episodes ended in the current window."""
    successes: jax.Array
    """Of those, how many reached their goal at least once."""
    reached: jax.Array
    """[N] whether each env's running episode has reached its goal yet."""
    last_rate: jax.Array
    """Success of the last completed window (-1 before the first)."""
    widenings: jax.Array

    def replace(self, **changes) -> Curriculum:
        return dataclasses.replace(self, **changes)


def initial(cfg: CurriculumConfig, num_envs: int) -> Curriculum:
    return Curriculum(
        radius=jnp.asarray(cfg.radius, jnp.float32), episodes=jnp.zeros((), jnp.int32),
        successes=jnp.zeros((), jnp.int32), reached=jnp.zeros((num_envs,), bool),
        last_rate=jnp.asarray(-1.0, jnp.float32), widenings=jnp.zeros((), jnp.int32),
    )


def ring_offset(key: jax.Array, inner: jax.Array | float, outer: jax.Array | float) -> jax.Array:
    """An xy offset uniform by area in the ring inner <= r <= outer (a circle when they are equal)."""
    k_r, k_a = jax.random.split(key)
    inner = jnp.asarray(inner, jnp.float32)
    outer = jnp.maximum(jnp.asarray(outer, jnp.float32), inner)
    r = jnp.sqrt(jax.random.uniform(k_r, minval=inner**2, maxval=outer**2))
    a = jax.random.uniform(k_a, minval=-jnp.pi, maxval=jnp.pi)
    return jnp.stack([r * jnp.cos(a), r * jnp.sin(a)])


def count_episodes(cur: Curriculum, done: jax.Array, success: jax.Array) -> Curriculum:
    """Folds a rollout's [T, N] `done` / `success` (success of the state each step led to, the
    ended episode's on a `done` step) into the window: an episode counts when it ends, as a
    success if any of its steps was within the radius."""

    def step(carry, x):
        reached, episodes, successes = carry
        d, s = x
        reached = reached | (s > 0)
        episodes = episodes + jnp.sum(d, dtype=jnp.int32)
        successes = successes + jnp.sum(d & reached, dtype=jnp.int32)
        return (reached & ~d, episodes, successes), None

    (reached, episodes, successes), _ = jax.lax.scan(
        step, (cur.reached, cur.episodes, cur.successes), (done.astype(bool), success))
    return cur.replace(reached=reached, episodes=episodes, successes=successes)


def advance(cur: Curriculum, cfg: CurriculumConfig) -> Curriculum:
    """Closes the window once it holds `window` episodes: widens the ring by `step` (up to
    `max_radius`) if their success reached `threshold`, and starts a new window either way."""
    full = cur.episodes >= cfg.window
    rate = cur.successes / jnp.maximum(cur.episodes, 1)
    widen = full & (rate >= cfg.threshold) & (cur.radius < cfg.max_radius)
    return cur.replace(
        radius=jnp.where(widen, jnp.minimum(cur.radius + cfg.step, cfg.max_radius), cur.radius),
        episodes=jnp.where(full, 0, cur.episodes), successes=jnp.where(full, 0, cur.successes),
        last_rate=jnp.where(full, rate.astype(jnp.float32), cur.last_rate),
        widenings=cur.widenings + widen.astype(jnp.int32),
    )


def redraw_goal(env: GoalEnv, state: EnvState, inner: jax.Array | float, outer: jax.Array | float) -> EnvState:
    """One env's state with a ring goal around where it stands now (its achieved goal), and the
    observations that show it; `done`, `success` and `dist` (which describe the step that ended
    the last episode) are kept. The ring lies in the goal's x, y; further coordinates (a height)
    stay where the episode starts."""
    achieved = env.achieved_goal(state.data)
    xy = ring_offset(jax.random.fold_in(state.key, GOAL_SALT), inner, outer)
    goal = achieved + jnp.zeros_like(achieved).at[:2].set(xy)
    obs, student_obs = env.observations(state.data, goal)
    return state.replace(goal=goal, obs=obs, student_obs=student_obs)


class RingGoals:
    """`env` whose every new episode (auto-reset) gets a ring goal instead of the env's own; the
    radius is an array, so the trainer can widen it without recompiling."""

    def __init__(self, env: GoalEnv, inner: float, radius: jax.Array) -> None:
        self.env, self.inner, self.radius = env, inner, radius
        self.spec = env.spec

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        nxt = self.env.step(state, action)
        fresh = redraw_goal(self.env, nxt, self.inner, self.radius)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(nxt.done, a, b), fresh, nxt)

    def start(self, state: EnvState) -> EnvState:
        """Ring goals for states at the start of their episode (after `reset`)."""
        return redraw_goal(self.env, state, self.inner, self.radius)
