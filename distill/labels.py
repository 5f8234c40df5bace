"""Teacher labels for many states at once: the actor's Gaussian and the critic's value.

A deep teacher is bound by arithmetic only at large batches, so labels are computed after a
rollout, over all its rows, in fixed-size jit'd chunks (the last one padded, so one compile
serves every call). The critic's goal encoder ψ(g) reads only the goal, which stays fixed for an
episode: it runs once per distinct goal, not once per row — for a 1,024-layer critic that is
half of the labelling arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from distill import sharding
from distill.students.jax_mirror import student_apply
from distill.teachers import networks
from distill.teachers.teacher import Teacher

DEFAULT_CHUNK = 4096


@dataclass(frozen=True)
class ActorLabels:
    mean: np.ndarray
    """Pre-tanh Gaussian mean, [rows, action_dim]."""
    log_std: np.ndarray
    action: np.ndarray
    """The deterministic action the student is fitted to: tanh of the mean (computed by JAX, as
    the rollout computes the teacher's executed action)."""


def chunked(fn: Callable[..., jax.Array | tuple], arrays: tuple[np.ndarray, ...], chunk: int,
            mesh: Mesh | None = None):
    """`fn` over rows of `arrays` in chunks of exactly `chunk` rows (the last padded with its own
    first row), outputs concatenated back to numpy; `fn` returns an array or a tuple of them. With a
    mesh each chunk is split over its devices (the chunk rounded up to a multiple of their count)."""
    n = arrays[0].shape[0]
    ways = mesh.devices.size if mesh is not None else 1
    size = -(-min(chunk, max(n, 1)) // ways) * ways
    put = partial(sharding.split_rows, mesh=mesh) if mesh is not None else jnp.asarray
    outs: list = []
    for start in range(0, n, size):
        part = [a[start : start + size] for a in arrays]
        valid = part[0].shape[0]
        if valid < size:
            part = [np.concatenate([p, np.repeat(p[:1], size - valid, 0)]) for p in part]
        out = fn(*(put(p) for p in part))
        out = out if isinstance(out, tuple) else (out,)
        outs.append(tuple(np.asarray(o)[:valid] for o in sharding.gather(out)))
    if not outs:
        shapes = jax.eval_shape(fn, *(jax.ShapeDtypeStruct((1, *a.shape[1:]), a.dtype) for a in arrays))
        shapes = shapes if isinstance(shapes, tuple) else (shapes,)
        return tuple(np.zeros((0, *s.shape[1:]), np.float32) for s in shapes)
    return tuple(np.concatenate(parts) for parts in zip(*outs))


@partial(jax.jit, static_argnames=("activation",))
def _actor_labels(params, obs, activation: str = "swish"):
    mean, log_std = networks.actor_dist(params, obs, activation=activation)
    return mean, log_std, jnp.tanh(mean)


@partial(jax.jit, static_argnames=("obs_dim", "activation"))
def _sa_repr(critic, obs, action, obs_dim: int, activation: str = "swish"):
    state = obs[:, :obs_dim]
    return networks.apply_encoder(critic["sa_encoder"], jnp.concatenate(
        [state, action.astype(state.dtype)], -1), activation=activation).astype(jnp.float32)


@partial(jax.jit, static_argnames=("activation",))
def _g_repr(critic, goal, activation: str = "swish"):
    return networks.apply_encoder(critic["g_encoder"], goal, activation=activation).astype(jnp.float32)


def label_actor(teacher: Teacher, obs: np.ndarray, chunk: int = DEFAULT_CHUNK,
                mesh: Mesh | None = None) -> ActorLabels:
    """The teacher actor's mean and log std for each row of its observation."""
    return ActorLabels(*chunked(partial(_actor_labels, teacher.actor_params, activation=teacher.arch.activation),
                                (np.asarray(obs, np.float32),), chunk, mesh))


def goal_reprs(teacher: Teacher, goals: np.ndarray, chunk: int = DEFAULT_CHUNK,
               mesh: Mesh | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ψ(g) of each distinct goal row, and each row's index into them."""
    unique, inverse = np.unique(np.asarray(goals, np.float32), axis=0, return_inverse=True)
    (reprs,) = chunked(partial(_g_repr, teacher.critic_params, activation=teacher.arch.activation),
                       (unique,), chunk, mesh)
    return reprs, inverse.reshape(-1)


def critic_values(
    teacher: Teacher, obs: np.ndarray, action: np.ndarray, chunk: int = DEFAULT_CHUNK,
    goals: tuple[np.ndarray, np.ndarray] | None = None, mesh: Mesh | None = None,
) -> np.ndarray:
    """Q(s, a, g) = -‖φ(s, a) − ψ(g)‖ for rows of the teacher's observation (state then goal);
    `goals` reuses ψ from `goal_reprs` of the same rows."""
    obs = np.asarray(obs, np.float32)
    obs_dim = teacher.arch.obs_dim
    g_repr, inverse = goals if goals is not None else goal_reprs(teacher, obs[:, obs_dim:], chunk, mesh)
    (sa,) = chunked(partial(_sa_repr, teacher.critic_params, obs_dim=obs_dim, activation=teacher.arch.activation),
                    (obs, np.asarray(action, np.float32)), chunk, mesh)
    return -np.sqrt(np.sum(np.square(sa - g_repr[inverse]), axis=-1)).astype(np.float32)


@cache
def in_rollout_policy(obs_dim: int, activation: str = "swish") -> Callable:
    """Every label computed inside the rollout, for every env and step: the collection before labels
    moved after it. Kept as the reference that tests compare rows against and the deep-labelling
    benchmark times as "before"."""

    def policy(params, obs, key):
        mean, log_std = networks.actor_dist(params["actor"], obs.teacher, activation=activation)
        teacher_action = jnp.tanh(mean)
        student_action = student_apply(params["student"], obs.student)
        use_teacher = jax.random.uniform(key, (obs.teacher.shape[0],)) < params["beta"]
        action = jnp.where(use_teacher[:, None], teacher_action, student_action)
        q = networks.critic_value(params["critic"], obs.teacher[:, :obs_dim], teacher_action,
                                  obs.teacher[:, obs_dim:], activation=activation)
        return action, {"teacher_mean": mean, "teacher_log_std": log_std, "teacher_action": teacher_action,
                        "critic_value": q}

    return policy
