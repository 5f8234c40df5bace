"""Collection with the teacher's labels computed after the rollout gives the rows that labelling
every state inside the rollout gave, for teacher-driven, mixed and student-driven rounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SMALL_ENVS

from distill import labels
from distill.dagger import DaggerConfig, collect_round
from distill.rollouts import reset_batch, stepwise_rollout
from distill.students.jax_mirror import student_params_to_jax
from distill.students.memory import build_student
from distill.students.presets import get_preset
from distill.teachers import load_teacher, networks

CFG = DaggerConfig(envs=SMALL_ENVS, eval_episodes=SMALL_ENVS)


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("reacher_8")


@pytest.fixture(scope="module")
def student():
    return build_student(get_preset("mlp_2x64"), 13, 2, seed=3)


def reference_round(env, teacher, student, beta, cfg, k):
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), k)
    k_reset, k_roll = jax.random.split(key)
    params = {"actor": teacher.actor_params, "critic": teacher.critic_params,
              "student": student_params_to_jax(student), "beta": jnp.asarray(beta, jnp.float32)}
    _, steps = stepwise_rollout(env, labels.in_rollout_policy(teacher.arch.obs_dim), env.spec.episode_length,
                                params, reset_batch(env, k_reset, cfg.envs), k_roll)
    steps = jax.device_get(steps)
    flat = lambda x: np.asarray(x).reshape((-1,) + np.asarray(x).shape[2:])
    return {"obs": flat(steps.obs), "behavior_action": flat(steps.action),
            **{name: flat(v) for name, v in steps.extras.items()}}


@pytest.mark.parametrize("beta,k", [(1.0, 0), (0.5, 1), (0.0, 2)])
def test_rows_match_in_loop_labelling(reacher, teacher, student, beta, k):
    got = collect_round(reacher, teacher, student, beta, CFG, k).columns
    want = reference_round(reacher, teacher, student, beta, CFG, k)
    np.testing.assert_array_equal(got["obs"], want["obs"])
    np.testing.assert_array_equal(got["behavior_action"], want["behavior_action"])
    teacher_drove = np.isclose(got["behavior_action"], got["teacher_action"], atol=1e-4).all(1).mean()
    assert teacher_drove == 1.0 if beta == 1.0 else (0.3 < teacher_drove < 0.7 if beta == 0.5 else teacher_drove < 0.05)
    for name in ("teacher_mean", "teacher_log_std", "teacher_action"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=2e-5, err_msg=name)  # batch 32 vs 1,600
    np.testing.assert_allclose(got["critic_value"], want["critic_value"], rtol=1e-4, atol=1e-5)


def test_critic_values_reuse_goal_reprs(teacher):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(300, 13)).astype(np.float32)
    obs[:, 10:] = rng.normal(size=(3, 3)).astype(np.float32)[rng.integers(0, 3, 300)]  # 3 goals
    action = np.tanh(rng.normal(size=(300, 2))).astype(np.float32)
    reprs, inverse = labels.goal_reprs(teacher, obs[:, 10:])
    assert reprs.shape == (3, 64) and inverse.shape == (300,)
    got = labels.critic_values(teacher, obs, action, chunk=128)  # 3 chunks, the last padded
    want = np.asarray(teacher.critic(obs[:, :10], action, obs[:, 10:]))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bf16_teacher_computes_in_bf16_and_tracks_float32(teacher):
    """`teacher_dtype = "bfloat16"`: the matmuls run in bf16 even for float32 observations, and the
    labels stay close to float32's."""
    bf16 = teacher.with_compute_dtype("bfloat16")
    assert teacher.with_compute_dtype("float32") is teacher
    obs = np.random.default_rng(2).normal(size=(64, 13)).astype(np.float32)
    jaxpr = str(jax.make_jaxpr(networks.actor_dist)(bf16.actor_params, jnp.asarray(obs)))
    assert "dot_general" in jaxpr and "bf16[64,128]" in jaxpr
    got, want = labels.label_actor(bf16, obs, chunk=32), labels.label_actor(teacher, obs, chunk=32)
    assert got.action.dtype == np.float32 and not np.array_equal(got.action, want.action)
    err = np.abs(got.action - want.action)
    assert err.max() < 0.1 and np.median(err) < 0.01  # bf16 keeps 8 mantissa bits
    q16 = labels.critic_values(bf16, obs, want.action, chunk=32)
    q32 = labels.critic_values(teacher, obs, want.action, chunk=32)
    np.testing.assert_allclose(q16, q32, rtol=0.05, atol=0.05)
