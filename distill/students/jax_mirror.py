"""The student's function in pure jax.numpy, so it can drive jit'd MJX rollouts during DAgger.

`student_apply(student_params_to_jax(s), obs)` equals `s(obs)` (the tests hold them to 1e-5).
Params are a plain dict of arrays; hidden layers are a tuple, unrolled at trace time (depth ≤ 8).
Weights are stored [in, out] so a layer is `x @ w + b`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from distill.students.mlp import MLPStudent

StudentParams = dict


def student_params_to_jax(student: MLPStudent) -> StudentParams:
    """Copies the student's weights and normaliser into a jax pytree."""

    def arr(t):
        return jnp.asarray(t.detach().cpu().numpy(), dtype=jnp.float32)

    return {
        "obs_mean": arr(student.obs_mean),
        "obs_std": arr(student.obs_std),
        "hidden": tuple({"w": arr(l.weight).T, "b": arr(l.bias)} for l in student.hidden),
        "head": {"w": arr(student.head.weight).T, "b": arr(student.head.bias)},
    }


def _dense(layer: dict, x: jax.Array) -> jax.Array:
    # "highest" keeps float32 matmuls on GPUs (no TF32), so the mirror stays equal to PyTorch.
    return jnp.matmul(x, layer["w"], precision="highest") + layer["b"]


def student_apply(params: StudentParams, obs: jax.Array) -> jax.Array:
    """obs[..., input_dim] (raw) -> action[..., action_dim] in [-1, 1]."""
    x = (obs - params["obs_mean"]) / params["obs_std"]
    for layer in params["hidden"]:
        x = jax.nn.elu(_dense(layer, x))
    return jnp.tanh(_dense(params["head"], x))
