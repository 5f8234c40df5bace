"""CRL networks as scaling-crl defines them, with residual blocks stacked and applied in a loop or by `lax.scan`.

Every network is a pytree of arrays (no module objects), so parameters go straight to safetensors:
  input:  Dense(W) -> LayerNorm -> activation (Swish, or ReLU for scaling-crl's `use_relu` runs)
  blocks: depth // 4 residual blocks of four [Dense(W) -> LayerNorm -> activation], identity added
          after the fourth; stored stacked as [depth // 4, 4, ...]. Up to UNROLL_MAX_BLOCKS blocks
          are applied in a Python loop, deeper stacks by `lax.scan`, so a 1,024-layer network
          compiles as fast as a 4-layer one.
  head:   critic encoders Dense(repr_dim); the actor two Dense(action) heads (mean, log_std).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
LAYER_NORM_EPS = 1e-6  # flax.linen.LayerNorm's default, which scaling-crl uses
REPR_DIM = 64
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"swish": jax.nn.swish, "relu": jax.nn.relu}
"""scaling-crl's two: Swish by default, ReLU when trained with `--use_relu 1`."""
UNROLL_MAX_BLOCKS = 8
"""Deepest stack (in blocks of four layers: depth 32) applied in a loop rather than scanned. On XLA:CPU
a scanned update spends about 30% of its thread time slicing the stacked weights, stacking
activations for the backward pass and copying; a loop ran a CRL update 1.08-1.30x faster from depth
4 to 32, but only 1.09x at depth 64, where it compiled 6x longer (width 128, batch 256, 2 cores;
benchmarks/results/crl_throughput_point_medium_maze_trunk_cpu.md)."""


def looped(blocks: int) -> bool:
    """Whether a stack of `blocks` residual blocks is applied in a loop (else by `lax.scan`)."""
    return blocks <= UNROLL_MAX_BLOCKS


@dataclass(frozen=True)
class CRLArch:
    """The architecture of a CRL teacher: everything needed to rebuild its networks."""

    obs_dim: int
    goal_dim: int
    action_dim: int
    actor_depth: int
    critic_depth: int
    width: int = 256
    repr_dim: int = REPR_DIM
    activation: str = "swish"

    def __post_init__(self) -> None:
        for field in ("actor_depth", "critic_depth"):
            depth = getattr(self, field)
            if depth < 0 or depth % 4 or depth > 1024:
                raise ValueError(f"{field}={depth}: must be a multiple of 4 between 0 and 1,024")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: use one of {', '.join(ACTIVATIONS)}")


def _dense_init(key: jax.Array, fan_in: int, fan_out: int, lead: tuple[int, ...] = ()) -> Params:
    """LeCun-uniform kernel (variance_scaling(1/3, fan_in, uniform)) and zero bias, as scaling-crl."""
    limit = jnp.sqrt(1.0 / fan_in)
    kernel = jax.random.uniform(key, lead + (fan_in, fan_out), jnp.float32, -limit, limit)
    return {"kernel": kernel, "bias": jnp.zeros(lead + (fan_out,), jnp.float32)}


def _norm_init(width: int, lead: tuple[int, ...] = ()) -> Params:
    return {"scale": jnp.ones(lead + (width,), jnp.float32), "bias": jnp.zeros(lead + (width,), jnp.float32)}


def init_trunk(key: jax.Array, in_dim: int, width: int, depth: int) -> Params:
    k_in, k_blocks = jax.random.split(key)
    n_blocks = depth // 4
    return {
        "input": {"dense": _dense_init(k_in, in_dim, width), "norm": _norm_init(width)},
        "blocks": {
            "dense": _dense_init(k_blocks, width, width, (n_blocks, 4)),
            "norm": _norm_init(width, (n_blocks, 4)),
        },
    }


def init_encoder(key: jax.Array, in_dim: int, width: int, depth: int, repr_dim: int = REPR_DIM) -> Params:
    k_trunk, k_out = jax.random.split(key)
    return {"trunk": init_trunk(k_trunk, in_dim, width, depth), "out": _dense_init(k_out, width, repr_dim)}


def init_actor(key: jax.Array, arch: CRLArch) -> Params:
    k_trunk, k_mean, k_std = jax.random.split(key, 3)
    return {
        "trunk": init_trunk(k_trunk, arch.obs_dim + arch.goal_dim, arch.width, arch.actor_depth),
        "mean": _dense_init(k_mean, arch.width, arch.action_dim),
        "log_std": _dense_init(k_std, arch.width, arch.action_dim),
    }


def init_critic(key: jax.Array, arch: CRLArch) -> Params:
    k_sa, k_g = jax.random.split(key)
    return {
        "sa_encoder": init_encoder(k_sa, arch.obs_dim + arch.action_dim, arch.width, arch.critic_depth, arch.repr_dim),
        "g_encoder": init_encoder(k_g, arch.goal_dim, arch.width, arch.critic_depth, arch.repr_dim),
    }


def dense(p: Params, x: jax.Array) -> jax.Array:
    return x @ p["kernel"].astype(x.dtype) + p["bias"].astype(x.dtype)


def layer_norm(p: Params, x: jax.Array) -> jax.Array:
    """LayerNorm computed in float32 whatever the compute dtype, as flax does for bf16 inputs."""
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.maximum(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) - jnp.square(mean), 0.0)
    y = (x32 - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS)
    return (y * p["scale"] + p["bias"]).astype(x.dtype)


def _layer(dense_p: Params, norm_p: Params, x: jax.Array, activation: str) -> jax.Array:
    return ACTIVATIONS[activation](layer_norm(norm_p, dense(dense_p, x)))


def _index(p: Params, i: int) -> Params:
    return {k: v[i] for k, v in p.items()}


def apply_trunk(p: Params, x: jax.Array, remat: bool = False, activation: str = "swish") -> jax.Array:
    """Computes in the weights' dtype: bf16 weights make a bf16 network whatever the input's dtype."""
    x = _layer(p["input"]["dense"], p["input"]["norm"], x.astype(p["input"]["dense"]["kernel"].dtype),
               activation)

    def block(h, block_p):
        identity = h
        for i in range(4):
            h = _layer(_index(block_p["dense"], i), _index(block_p["norm"], i), h, activation)
        return h + identity, None

    if remat:
        block = jax.checkpoint(block)
    blocks = jax.tree_util.tree_leaves(p["blocks"])[0].shape[0]
    if not looped(blocks):
        x, _ = jax.lax.scan(block, x, p["blocks"])
        return x
    for b in range(blocks):
        x, _ = block(x, jax.tree_util.tree_map(lambda v, b=b: v[b], p["blocks"]))
    return x


def apply_encoder(p: Params, x: jax.Array, remat: bool = False, activation: str = "swish") -> jax.Array:
    return dense(p["out"], apply_trunk(p["trunk"], x, remat, activation))


def actor_dist(
    p: Params, obs: jax.Array, remat: bool = False, activation: str = "swish"
) -> tuple[jax.Array, jax.Array]:
    """(mean, log_std) with log_std squashed into [LOG_STD_MIN, LOG_STD_MAX]."""
    h = apply_trunk(p["trunk"], obs, remat, activation)
    mean = dense(p["mean"], h)
    raw = jnp.tanh(dense(p["log_std"], h))
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (raw + 1.0)
    return mean.astype(jnp.float32), log_std.astype(jnp.float32)


def actor_act(p: Params, obs: jax.Array, activation: str = "swish") -> jax.Array:
    """The deterministic action: tanh of the mean."""
    return jnp.tanh(actor_dist(p, obs, activation=activation)[0])


@cache
def actor_act_fn(activation: str = "swish") -> Callable[[Params, jax.Array], jax.Array]:
    """`actor_act` with the activation bound: one function object per activation, so policies
    and jit caches keyed on the function are reused."""
    if activation == "swish":
        return actor_act
    fn = partial(actor_act, activation=activation)
    fn.__name__ = f"actor_act_{activation}"
    return fn


@cache
def actor_dist_fn(activation: str = "swish") -> Callable[..., tuple[jax.Array, jax.Array]]:
    """`actor_dist` with the activation bound (one object per activation, as `actor_act_fn`)."""
    return actor_dist if activation == "swish" else partial(actor_dist, activation=activation)


def critic_reprs(
    p: Params, state: jax.Array, action: jax.Array, goal: jax.Array, remat: bool = False,
    activation: str = "swish",
) -> tuple[jax.Array, jax.Array]:
    sa = apply_encoder(p["sa_encoder"], jnp.concatenate([state, action.astype(state.dtype)], -1), remat,
                       activation)
    g = apply_encoder(p["g_encoder"], goal, remat, activation)
    return sa.astype(jnp.float32), g.astype(jnp.float32)


def energy(sa_repr: jax.Array, g_repr: jax.Array) -> jax.Array:
    return -jnp.sqrt(jnp.sum(jnp.square(sa_repr - g_repr), axis=-1))


def critic_value(
    p: Params, state: jax.Array, action: jax.Array, goal: jax.Array, activation: str = "swish"
) -> jax.Array:
    """Q(s, a, g) = -||phi(s, a) - psi(g)||_2."""
    return energy(*critic_reprs(p, state, action, goal, activation=activation))


def count_params(p: Params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(p)))


def cast_params(p: Params, dtype: Any) -> Params:
    """Cast weights for reduced-precision inference; LayerNorm still normalises in float32."""
    return jax.tree_util.tree_map(lambda a: a.astype(dtype), p)
