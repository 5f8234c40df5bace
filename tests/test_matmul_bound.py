"""The benchmarks' measured bound: which products a CRL update and a labelling round need, and the
arithmetic that turns per-shape timings into a bound and a share (tiny shapes: cheap)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from distill.bench import matmul_bound as mb
from distill.teachers import crl
from distill.teachers.networks import CRLArch

TINY = CRLArch(obs_dim=4, goal_dim=2, action_dim=2, actor_depth=4, critic_depth=8, width=8, repr_dim=3)
BATCH = 5


def test_sgd_step_products_by_hand():
    b, w, r = BATCH, 8, 3
    fwd = lambda k, n: 2 * b * k * n
    actor = 2 * fwd(6, w) + 3 * 4 * fwd(w, w) + 3 * 2 * fwd(w, 2)  # first layer: forward and dW only
    sa = 4 * fwd(6, w) + 5 * 8 * fwd(w, w) + 5 * fwd(w, r)  # state + action = 6 inputs
    g = 2 * fwd(2, w) + 3 * 8 * fwd(w, w) + 3 * fwd(w, r)
    logits = 3 * 2 * b * r * b
    gemms = mb.sgd_step_gemms(TINY, b)
    assert mb.total_flops(gemms) == actor + sa + g + logits
    assert len({x.shape for x in gemms}) == len(gemms)  # one entry per shape
    assert gemms[0].shape == (b, w, w) and gemms[0].count == 3 * 4 + 5 * 8 + 3 * 8


def _dot_flops(jaxpr) -> float:
    """2 · output size · contracted size of every dot_general, scan bodies times their length."""
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in lc)
        times = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for p in eqn.params.values():
            for sub in p if isinstance(p, tuple | list) else (p,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += times * _dot_flops(inner)
    return total


def test_the_count_matches_the_products_in_crl_sgd_step():
    """The trainer's own update, traced: its matrix products are the count's, except the logits
    (computed as broadcast distances, not a product) and ψ(g)'s forward, which the actor and critic
    losses each compute (the count takes it once)."""
    from distill.envs import make_env

    env = make_env("point_u_maze")
    cfg = crl.CRLConfig(env="point_u_maze", actor_depth=4, critic_depth=8, width=8, num_envs=2, unroll_length=3,
                        batch_size=BATCH, max_replay_size=3, min_replay_size=1)
    arch = crl.arch_for(cfg, env)
    ts = jax.eval_shape(lambda: crl.init_state(cfg, env))
    jaxpr = jax.make_jaxpr(lambda ts, k: crl.sgd_step(cfg, crl.make_optimizers(cfg), env.spec, ts, k))(
        ts, jax.random.PRNGKey(0))
    counted = mb.total_flops(mb.sgd_step_gemms(arch, BATCH))
    logits = 3 * 2.0 * BATCH * arch.repr_dim * BATCH
    psi_forward = mb.total_flops(mb.forward_gemms(BATCH, mb.g_layers(arch)))
    assert _dot_flops(jaxpr.jaxpr) == counted - logits + psi_forward


def test_bound_seconds_share_and_rate():
    gemms = mb.merge([mb.Gemm(4, 3, 2, 2), mb.Gemm(1, 1, 1, 5), mb.Gemm(4, 3, 2, 1)])
    assert gemms == (mb.Gemm(4, 3, 2, 3), mb.Gemm(1, 1, 1, 5))
    timings = (mb.GemmTiming(4, 3, 2, 1e-3), mb.GemmTiming(1, 1, 1, 1e-4))
    bound = mb.Bound(gemms, timings)
    assert bound.seconds == pytest.approx(3e-3 + 5e-4)
    assert bound.flops == 3 * 48 + 5 * 2
    assert bound.gflops == pytest.approx(154 / 3.5e-3 / 1e9)
    assert bound.share(7e-3) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive"):
        bound.share(0.0)
    with pytest.raises(ValueError, match=r"no timing.*\(1, 1, 1\)"):
        _ = mb.Bound(gemms, timings[:1]).seconds


def test_measured_bound_times_each_new_shape_once():
    known = (mb.GemmTiming(8, 8, 8, 123.0),)
    bound = mb.measure_bound([mb.Gemm(8, 8, 8, 2), mb.Gemm(16, 8, 4, 3)], budget_s=0.01, known=known)
    per = {(t.m, t.k, t.n): t for t in bound.timings}
    assert per[(8, 8, 8)].seconds == 123.0  # reused, not timed again
    assert 0 < per[(16, 8, 4)].seconds < 1.0 and np.isfinite(per[(16, 8, 4)].gflops)
    assert bound.seconds == pytest.approx(2 * 123.0 + 3 * per[(16, 8, 4)].seconds)
