"""The reacher: layout matches MuJoCo's own kinematics, determinism, new goals on every reset."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from conftest import SMALL_ENVS


def test_spec_layout(reacher):
    s = reacher.spec
    assert (s.obs_dim, s.goal_dim, s.action_dim) == (10, 3, 2)
    assert s.goal_indices == (4, 5, 6)
    assert len(s.obs_names) == s.obs_dim + s.goal_dim
    assert s.control_dt == 0.02 and s.episode_length == 50


def test_observation_matches_mujoco_kinematics(reacher, reacher_steps):
    reset, step = reacher_steps
    state = reset(jax.random.split(jax.random.PRNGKey(3), SMALL_ENVS))
    action = jax.random.uniform(jax.random.PRNGKey(4), (SMALL_ENVS, 2), minval=-1, maxval=1)
    for _ in range(3):
        state = step(state, action)
    d = mujoco.MjData(reacher.mj_model)
    for i in range(SMALL_ENVS):
        d.qpos[:] = np.asarray(state.data.qpos[i])
        d.qvel[:] = np.asarray(state.data.qvel[i])
        mujoco.mj_forward(reacher.mj_model, d)
        obs = np.asarray(state.obs[i])
        np.testing.assert_allclose(obs[4:7], d.body("fingertip").xpos, atol=1e-5)
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(reacher.mj_model, d, mujoco.mjtObj.mjOBJ_BODY,
                                 reacher.mj_model.body("fingertip").id, vel, 0)
        np.testing.assert_allclose(obs[7:10], vel[3:], atol=1e-4)
        np.testing.assert_allclose(obs[10:12], d.body("target").xpos[:2], atol=1e-5)
        np.testing.assert_allclose(obs[:2], np.cos(d.qpos[:2]), atol=1e-5)


def test_deterministic_for_a_key(reacher_steps):
    reset, step = reacher_steps
    keys = jax.random.split(jax.random.PRNGKey(7), SMALL_ENVS)
    action = jnp.full((SMALL_ENVS, 2), 0.3, jnp.float32)  # not weakly typed: the compiled step's signature
    a, b = reset(keys), reset(keys)
    for _ in range(5):
        a, b = step(a, action), step(b, action)
    np.testing.assert_array_equal(np.asarray(a.obs), np.asarray(b.obs))
    c = reset(jax.random.split(jax.random.PRNGKey(8), SMALL_ENVS))
    assert not np.allclose(np.asarray(a.goal), np.asarray(c.goal))


def test_goals_inside_disk_and_resampled_on_every_reset(reacher, reacher_steps):
    reset, step = reacher_steps
    length = reacher.spec.episode_length
    state = reset(jax.random.split(jax.random.PRNGKey(0), SMALL_ENVS))
    goals, dones = [np.asarray(state.goal)], []
    action = jnp.zeros((SMALL_ENVS, 2), jnp.float32)
    for _ in range(3 * length):
        state = step(state, action)
        goals.append(np.asarray(state.goal))
        dones.append(np.asarray(state.done))
    goals, dones = np.stack(goals), np.stack(dones)
    ends = [length - 1, 2 * length - 1, 3 * length - 1]
    assert all(dones[t].all() for t in ends) and dones.sum() == 3 * SMALL_ENVS
    assert np.all(np.linalg.norm(goals[..., :2], axis=-1) <= 0.2 + 1e-6)
    for start in (length, 2 * length, 3 * length):  # each new episode draws a new goal and keeps it for the episode
        assert np.all(np.abs(goals[start] - goals[start - 1]).max(-1) > 1e-4)
        assert np.allclose(goals[start - 1], goals[start - length])
    assert np.all(np.asarray(state.episode) == 3)


def test_no_nan_over_long_random_rollout(reacher_steps):
    reset, step = reacher_steps
    state = reset(jax.random.split(jax.random.PRNGKey(1), SMALL_ENVS))
    key = jax.random.PRNGKey(2)
    for _ in range(120):
        key, k = jax.random.split(key)
        state = step(state, jax.random.uniform(k, (SMALL_ENVS, 2), minval=-1, maxval=1))
        assert np.isfinite(np.asarray(state.obs)).all()
