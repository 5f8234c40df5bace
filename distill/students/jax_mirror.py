"""The student's function in pure jax.numpy, so it can drive jit'd MJX rollouts during DAgger.

`student_apply(student_params_to_jax(s), obs)` equals `s(obs)` for an MLP student (the tests hold
them to 1e-5); a history student is the same MLP over the stacked window. Students that carry state
between steps (a history buffer, a GRU's hidden state) step with `memory_step` over a `memory`
pytree from `memory_init`, reset per env by `memory_reset` when an episode ends — the same rules as
`distill.students.memory.act_sequence`, which the tests hold them to over a sequence with a reset.
Every leaf of a memory has the env batch first, so a sharded rollout splits it like the env state.

Params are a plain dict of arrays; hidden layers are a tuple, unrolled at trace time (depth ≤ 8).
Weights are stored [in, out] so a layer is `x @ w + b`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from distill.students.gru import GRUStudent
from distill.students.memory import Recurrence, Student

StudentParams = dict


def _arr(t):
    return jnp.asarray(t.detach().cpu().numpy(), dtype=jnp.float32)


def student_params_to_jax(student: Student) -> StudentParams:
    """Copies the student's weights and normaliser into a jax pytree."""
    params = {
        "obs_mean": _arr(student.obs_mean),
        "obs_std": _arr(student.obs_std),
        "head": {"w": _arr(student.head.weight).T, "b": _arr(student.head.bias)},
    }
    if isinstance(student, GRUStudent):
        gru = student.gru
        params["gru"] = tuple(
            {name: _arr(getattr(gru, f"{name}_l{k}")).T if name.startswith("weight") else _arr(getattr(gru, f"{name}_l{k}"))
             for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            for k in range(student.layers))
        params["hidden"] = tuple({"w": _arr(layer.weight).T, "b": _arr(layer.bias)} for layer in student.mlp)
    else:
        params["hidden"] = tuple({"w": _arr(layer.weight).T, "b": _arr(layer.bias)} for layer in student.hidden)
    return params


def _dense(layer: dict, x: jax.Array) -> jax.Array:
    # "highest" keeps float32 matmuls on GPUs (no TF32), so the mirror stays equal to PyTorch.
    return jnp.matmul(x, layer["w"], precision="highest") + layer["b"]


def _mlp(params: StudentParams, x: jax.Array) -> jax.Array:
    for layer in params["hidden"]:
        x = jax.nn.elu(_dense(layer, x))
    return jnp.tanh(_dense(params["head"], x))


def student_apply(params: StudentParams, obs: jax.Array) -> jax.Array:
    """obs[..., input_dim] (raw; a history student's stacked window) -> action[..., action_dim] in [-1, 1]."""
    return _mlp(params, (obs - params["obs_mean"]) / params["obs_std"])


def _gru_cell(layer: dict, x: jax.Array, h: jax.Array) -> jax.Array:
    """PyTorch's GRU cell (gates r, z, n in that order; the reset gate scales W_hn h + b_hn)."""
    mm = lambda a, w: jnp.matmul(a, w, precision="highest")
    gi = mm(x, layer["weight_ih"]) + layer["bias_ih"]
    gh = mm(h, layer["weight_hh"]) + layer["bias_hh"]
    i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(i_r + h_r)
    z = jax.nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


def gru_step(params: StudentParams, obs: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """obs [B, D] raw, h [B, layers, hidden] -> (action [B, A], h_out [B, layers, hidden])."""
    x = (obs - params["obs_mean"]) / params["obs_std"]
    out = []
    for k, layer in enumerate(params["gru"]):
        x = _gru_cell(layer, x, h[:, k])
        out.append(x)
    return _mlp(params, x), jnp.stack(out, axis=1)


# --- memory: what a stateful student carries between steps ----------------------------------------
def memory_init(rec: Recurrence, batch: int) -> dict[str, jax.Array]:
    """The memory of `batch` envs at their first step (empty for an MLP)."""
    if rec.family == "gru":
        return {"h": jnp.zeros((batch, rec.layers, rec.hidden), jnp.float32)}
    if rec.family == "history":
        return {"buf": jnp.zeros((batch, rec.history.length, rec.step_dim), jnp.float32),
                "fresh": jnp.ones((batch,), bool)}
    return {}


def memory_reset(rec: Recurrence, memory: dict, done: jax.Array) -> dict:
    """Envs whose episode just ended start the next one afresh (done [B])."""
    if rec.family == "gru":
        return {"h": jnp.where(done[:, None, None], 0.0, memory["h"])}
    if rec.family == "history":
        return {**memory, "fresh": memory["fresh"] | done}
    return memory


def memory_step(rec: Recurrence, params: StudentParams, memory: dict, obs: jax.Array) -> tuple[jax.Array, dict]:
    """One control step of a batch: obs [B, step_dim] -> (action [B, A], the memory after it)."""
    if rec.family == "gru":
        action, h = gru_step(params, obs, memory["h"])
        return action, {"h": h}
    if rec.family == "history":
        buf = memory["buf"]
        shifted = jnp.concatenate([buf[:, 1:], obs[:, None]], axis=1)
        filled = jnp.broadcast_to(obs[:, None], buf.shape)
        buf = jnp.where(memory["fresh"][:, None, None], filled, shifted)
        action = student_apply(params, rec.history.stack(buf))
        return action, {"buf": buf, "fresh": jnp.zeros_like(memory["fresh"])}
    return student_apply(params, obs), memory
