"""Rollouts of a student that carries state between steps, on a robot's terms.

`rollouts.rollout` runs stateless policies. Here the policy carries, per env, the student's memory
(a history buffer or a GRU's hidden state, `distill.students.jax_mirror`) and the state of the
robot's imperfections (the last observation, actions in flight: `distill.robust`); both are reset
for an env when its episode ends (auto-reset), so the next episode starts with a fresh memory and
nothing in flight. One `CarryPolicy` (hashable: it is a static argument of the jit'd policy step)
says which student family runs, which perturbations apply, and whether the teacher mixes in.

At each step: the student reads its observation through the perturbations (`seen`, recorded as the
extra `student_seen`: what the dataset stores as the student's `obs`), steps its memory, the teacher
(when it may act) reads its own clean observation, a per-env Bernoulli(β) picks the acting one, and
the action goes through the delay line to the env.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from distill import robust
from distill.envs.base import EnvState, GoalEnv
from distill.rollouts import (
    EpisodeMetrics,
    Observation,
    Steps,
    batched_step,
    episode_batches,
    first_episode_metrics,
    join_episodes,
)
from distill.students.jax_mirror import memory_init, memory_reset, memory_step
from distill.students.memory import Recurrence
from distill.teachers import networks

SEEN = "student_seen"
"""The extra holding what the student read at each step (its observation after the perturbations)."""


@dataclass(frozen=True)
class CarryPolicy:
    recurrence: Recurrence
    perturbation: robust.Perturbation = robust.NONE
    teacher_acts: bool = False
    """β-mix with the teacher (collection); False: the student drives alone (evaluation, β = 0)."""
    activation: str = "swish"
    """The teacher actor's activation (`CRLArch.activation`)."""

    def init(self, batch: int) -> dict[str, Any]:
        rec = self.recurrence
        return {"memory": memory_init(rec, batch),
                "perturb": robust.perturb_init(self.perturbation, batch, rec.step_dim, rec.action_dim)}

    def act(self, params: dict, obs: Observation, carry: dict, key: jax.Array):
        """(executed action, extras, carry) for one step of a batch."""
        k_seen, k_mix = jax.random.split(key)
        seen, perturb = robust.perceive(self.perturbation, carry["perturb"], obs.student, k_seen)
        action, memory = memory_step(self.recurrence, params["student"], carry["memory"], seen)
        extras = {SEEN: seen}
        if self.teacher_acts:
            mean, log_std = networks.actor_dist(params["actor"], obs.teacher, activation=self.activation)
            teacher_action = jnp.tanh(mean)
            use_teacher = jax.random.uniform(k_mix, (obs.teacher.shape[0],)) < params["beta"]
            action = jnp.where(use_teacher[:, None], teacher_action, action)
            extras.update(teacher_mean=mean, teacher_log_std=log_std, teacher_action=teacher_action)
        executed, perturb = robust.actuate(self.perturbation, perturb, action)
        return executed, extras, {"memory": memory, "perturb": perturb}

    def reset(self, carry: dict, done: jax.Array) -> dict:
        return {"memory": memory_reset(self.recurrence, carry["memory"], done),
                "perturb": robust.perturb_reset(self.perturbation, carry["perturb"], done)}


def rollout_carry(env: GoalEnv, policy: CarryPolicy, num_steps: int, params: Any, state: EnvState,
                  carry: dict, key: jax.Array) -> tuple[EnvState, dict, Steps]:
    """`num_steps` batched steps of a carrying policy: a host loop over the env's shared compiled step
    (`rollouts.batched_step`, the one stateless rollouts use) and the policy's own small jit, so a
    memory or perturbed run compiles no physics of its own. Step i's key is the i-th of
    `jax.random.split(key, num_steps)`."""
    step = batched_step(env)
    asymmetric = env.spec.asymmetric
    records = []
    for step_key in jax.random.split(key, num_steps):
        action, extras, carry = _act(policy, params, Observation(state.obs, state.student_obs), carry, step_key)
        nxt = step(state, action)
        carry = _reset(policy, carry, nxt.done)
        records.append(Steps(obs=state.obs, student_obs=state.student_obs if asymmetric else None, goal=state.goal,
                             action=action, t=state.t, episode=state.episode, done=nxt.done, success=nxt.success,
                             dist=nxt.dist, extras=extras))
        state = nxt
    return state, carry, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *records)


@partial(jax.jit, static_argnums=0)
def _act(policy: CarryPolicy, params, obs: Observation, carry, key):
    return policy.act(params, obs, carry, key)


@partial(jax.jit, static_argnums=0)
def _reset(policy: CarryPolicy, carry, done):
    return policy.reset(carry, done)


def evaluate_carry(env: GoalEnv, policy: CarryPolicy, student_params: Any, key: jax.Array,
                   num_episodes: int, steps: int | None = None, batch: int | None = None) -> EpisodeMetrics:
    """One episode in each of `num_episodes` envs, the student driving alone, `batch` envs at a time;
    the goals are those every other policy of a run faces (`rollouts.episode_batches`)."""
    length = steps or env.spec.episode_length
    parts, valid = [], []
    for episodes in episode_batches(env, key, num_episodes, batch):
        _, _, recorded = rollout_carry(env, policy, length, {"student": student_params}, episodes.state,
                                       policy.init(episodes.state.obs.shape[0]), episodes.key)
        parts.append(recorded)
        valid.append(episodes.valid)
    return first_episode_metrics(join_episodes(parts, valid), length)
