"""The scanned CRL networks against a plain layer-by-layer reference, at any depth up to 1,024."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distill.teachers import networks
from distill.teachers.info import param_counts
from distill.teachers.networks import CRLArch

OBS, GOAL, ACT = 7, 3, 4


def _random_params(init, arch: CRLArch, seed: int, noise: float = 0.3):
    """The tree `init` builds (its shapes via `jax.eval_shape`), filled from numpy: LeCun-scaled
    kernels, and noise on every leaf so LayerNorm scales and the zero biases are not trivial.
    (Skips compiling the threefry initialisers, which costs seconds per architecture on CPU.)"""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(partial(init, arch=arch), jax.ShapeDtypeStruct((2,), jnp.uint32))

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        base = np.zeros(leaf.shape)
        if name.endswith("['kernel']"):
            base = rng.uniform(-1, 1, leaf.shape) / np.sqrt(leaf.shape[-2])
        elif name.endswith("['scale']"):
            base = np.ones(leaf.shape)
        return jnp.asarray(base + noise * rng.standard_normal(leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


# --- reference: one python loop over layers, float64 numpy, flax's LayerNorm / swish definitions ---


def _ref_dense(p, x):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _ref_norm(p, x):
    mean = x.mean(-1, keepdims=True)
    var = (x * x).mean(-1, keepdims=True) - mean**2
    return (x - mean) / np.sqrt(var + 1e-6) * np.asarray(p["scale"], np.float64) + np.asarray(
        p["bias"], np.float64
    )


def _ref_swish(x):
    return x / (1.0 + np.exp(-x))


def _ref_trunk(p, x):
    x = _ref_swish(_ref_norm(p["input"]["norm"], _ref_dense(p["input"]["dense"], x)))
    n_blocks = p["blocks"]["dense"]["kernel"].shape[0]
    for b in range(n_blocks):
        identity = x
        for i in range(4):
            dense = {k: v[b, i] for k, v in p["blocks"]["dense"].items()}
            norm = {k: v[b, i] for k, v in p["blocks"]["norm"].items()}
            x = _ref_swish(_ref_norm(norm, _ref_dense(dense, x)))
        x = x + identity
    return x


def _ref_actor(p, obs):
    h = _ref_trunk(p["trunk"], obs)
    log_std = np.tanh(_ref_dense(p["log_std"], h))
    return _ref_dense(p["mean"], h), -5.0 + 3.5 * (log_std + 1.0)


def _ref_energy(p, s, a, g):
    sa = _ref_dense(
        p["sa_encoder"]["out"], _ref_trunk(p["sa_encoder"]["trunk"], np.concatenate([s, a], -1))
    )
    gg = _ref_dense(p["g_encoder"]["out"], _ref_trunk(p["g_encoder"]["trunk"], g))
    return -np.sqrt(((sa - gg) ** 2).sum(-1))


def _formula_trunk(in_dim, width, depth):
    return in_dim * width + width + 2 * width + depth * (width * width + width + 2 * width)


def _formula(arch: CRLArch):
    w = arch.width
    actor = _formula_trunk(arch.obs_dim + arch.goal_dim, w, arch.actor_depth) + 2 * (
        w * arch.action_dim + arch.action_dim
    )
    head = w * arch.repr_dim + arch.repr_dim
    sa = _formula_trunk(arch.obs_dim + arch.action_dim, w, arch.critic_depth) + head
    g = _formula_trunk(arch.goal_dim, w, arch.critic_depth) + head
    return actor, sa, g


@pytest.fixture(scope="module")
def jitted():
    return {
        "actor": jax.jit(networks.actor_dist),
        "actor_remat": jax.jit(partial(networks.actor_dist, remat=True)),
        "critic": jax.jit(networks.critic_value),
    }


@pytest.mark.parametrize("depth", [0, 4, 12, 4 * (networks.UNROLL_MAX_BLOCKS + 1)])  # the last one is scanned
def test_looped_and_scanned_networks_equal_unrolled_reference(depth, jitted):
    arch = CRLArch(OBS, GOAL, ACT, actor_depth=depth, critic_depth=depth, width=32)
    actor = _random_params(networks.init_actor, arch, depth)
    critic = _random_params(networks.init_critic, arch, depth + 1)
    x = np.random.default_rng(depth).normal(0, 2, (9, OBS + GOAL + ACT))
    obs, act = x[:, : OBS + GOAL], np.tanh(x[:, OBS + GOAL :])

    mean, log_std = jitted["actor"](actor, obs)
    ref_mean, ref_log_std = _ref_actor(jax.device_get(actor), obs.astype(np.float64))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_std, ref_log_std, rtol=1e-4, atol=1e-4)
    if depth >= 12:
        np.testing.assert_allclose(jitted["actor_remat"](actor, obs)[0], mean, rtol=1e-6, atol=1e-6)

    q = jitted["critic"](critic, obs[:, :OBS], act, obs[:, OBS:])
    ref_q = _ref_energy(jax.device_get(critic), obs[:, :OBS], act, obs[:, OBS:])
    np.testing.assert_allclose(q, ref_q, rtol=1e-4, atol=1e-4)
    assert np.all(np.asarray(q) <= 0.0)


def test_log_std_stays_in_bounds(jitted):
    arch = CRLArch(OBS, GOAL, ACT, actor_depth=4, critic_depth=4, width=16)
    actor = _random_params(networks.init_actor, arch, 1)
    actor["log_std"] = jax.tree_util.tree_map(lambda a: a * 1e3, actor["log_std"])
    obs = np.random.default_rng(3).normal(0, 10, (256, OBS + GOAL))
    _, log_std = jitted["actor"](actor, obs)
    log_std = np.asarray(log_std)
    assert log_std.min() >= networks.LOG_STD_MIN and log_std.max() <= networks.LOG_STD_MAX
    assert log_std.min() < -4.9 and log_std.max() > 1.9  # saturated weights reach both ends


@pytest.mark.parametrize(
    "arch",
    [
        CRLArch(OBS, GOAL, ACT, actor_depth=4, critic_depth=8, width=16),
        CRLArch(29, 2, 8, actor_depth=12, critic_depth=16, width=32, repr_dim=16),
    ],
)
def test_param_counts_match_formula(arch):
    actor = _random_params(networks.init_actor, arch, 0)
    critic = _random_params(networks.init_critic, arch, 1)
    f_actor, f_sa, f_g = _formula(arch)
    assert networks.count_params(actor) == f_actor
    assert networks.count_params(critic["sa_encoder"]) == f_sa
    assert networks.count_params(critic["g_encoder"]) == f_g
    counts = param_counts(arch)
    assert (counts.actor, counts.sa_encoder, counts.g_encoder) == (f_actor, f_sa, f_g)


def test_humanoid_1024_counts_without_allocating():
    arch = CRLArch(268, 3, 17, actor_depth=512, critic_depth=1024, width=256)
    counts = param_counts(arch)
    assert (counts.actor, counts.sa_encoder, counts.g_encoder) == _formula(arch)
    assert 67e6 < counts.sa_encoder < 69e6 and 67e6 < counts.g_encoder < 69e6
    assert 33e6 < counts.actor < 35e6


def test_depth_limits():
    for bad in (3, 1028, -4):
        with pytest.raises(ValueError, match="multiple of 4"):
            CRLArch(OBS, GOAL, ACT, actor_depth=bad, critic_depth=4)


def _critic_loss(p, s, a, g):
    return jnp.mean(networks.critic_value(p, s, a, g) ** 2)


def test_1024_layer_critic_forward_backward_compiles_at_full_width():
    """Lowered on abstract shapes: the 68 M-parameter encoders compile without being allocated."""
    arch = CRLArch(268, 3, 17, actor_depth=512, critic_depth=1024, width=256)
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    params = jax.eval_shape(partial(networks.init_critic, arch=arch), key)
    b = 32
    args = [jax.ShapeDtypeStruct((b, n), jnp.float32) for n in (268, 17, 3)]
    compiled = jax.jit(jax.value_and_grad(_critic_loss)).lower(params, *args).compile()
    _, grads = compiled.out_info
    assert grads["sa_encoder"]["trunk"]["blocks"]["dense"]["kernel"].shape == (256, 4, 256, 256)


def test_1024_layer_critic_gradient_is_finite_and_reaches_the_first_layer():
    arch = CRLArch(5, 2, 3, actor_depth=4, critic_depth=1024, width=8, repr_dim=8)
    params = _random_params(networks.init_critic, arch, 0, noise=0.0)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 10)), jnp.float32)
    value, grads = jax.jit(jax.value_and_grad(_critic_loss))(params, x[:, :5], x[:, 5:8], x[:, 8:])
    assert np.isfinite(float(value))
    first = np.asarray(grads["sa_encoder"]["trunk"]["input"]["dense"]["kernel"])
    deep = np.asarray(grads["sa_encoder"]["trunk"]["blocks"]["dense"]["kernel"][0])
    assert np.all(np.isfinite(first)) and np.abs(first).max() > 0 and np.abs(deep).max() > 0


def test_bf16_params_track_float32(jitted):
    arch = CRLArch(OBS, GOAL, ACT, actor_depth=12, critic_depth=12, width=32)
    actor = _random_params(networks.init_actor, arch, 0, noise=0.05)
    obs = jnp.asarray(np.random.default_rng(1).standard_normal((16, OBS + GOAL)), jnp.float32)
    mean32, _ = jitted["actor"](actor, obs)
    mean16, log_std16 = jitted["actor"](
        networks.cast_params(actor, jnp.bfloat16), obs.astype(jnp.bfloat16)
    )
    assert mean16.dtype == jnp.float32 and log_std16.dtype == jnp.float32
    assert not np.array_equal(np.asarray(mean16), np.asarray(mean32))
    np.testing.assert_allclose(mean16, mean32, atol=0.1 * float(jnp.abs(mean32).max()) + 0.05)
