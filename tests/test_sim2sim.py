"""The plain-MuJoCo twin of an MJX env: it reads the fields the env's hooks read from `MjData`, writes
the commands they write, and follows MJX's trajectory from the same start under the same actions."""

from __future__ import annotations

import jax
import mujoco
import numpy as np
import pytest
from conftest import SMALL_ENVS

from distill.bench.sim2sim import FieldView, MujocoTwin, initial_states, supports_plain_mujoco
from distill.envs import make_env
from distill.errors import DistillError


def test_field_view_records_what_hooks_read_and_replace(reacher):
    data = mujoco.MjData(reacher.mj_model)
    view = FieldView({}, data)
    reacher.observations(view, np.zeros(3, np.float32))
    assert set(view.fields) == {"qpos", "qvel"}
    acted = reacher.apply_action(FieldView({}, data), np.zeros(2, np.float32))
    assert acted.replaced == frozenset({"ctrl"})
    with pytest.raises(AttributeError, match="not read when the hooks were probed"):
        _ = FieldView({"qpos": 0}).xpos
    with pytest.raises(DistillError, match="mujoco.MjData does not have"):
        _ = FieldView({}, data).no_such_field


def test_says_which_envs_run_in_plain_mujoco_and_why_not(reacher):
    assert supports_plain_mujoco(reacher) is None
    why_not = supports_plain_mujoco(make_env("ant", "spring"))  # a Brax pipeline: no MjData to step
    assert why_not and not why_not.startswith("DistillError") and "\n" not in why_not


def _follow(env, reset, step, n_envs: int, steps: int, seed: int = 0):
    """MJX and the twin from the same starts under the same random actions: their student observations."""
    key = jax.random.PRNGKey(seed)
    state = reset(jax.random.split(jax.random.split(key)[0], n_envs))
    qpos, qvel, goals = initial_states(env, key, n_envs)
    np.testing.assert_allclose(np.asarray(state.goal), goals, atol=1e-6)  # the evaluation's goals
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, n_envs, env.spec.action_dim)).astype(np.float32)
    twin = MujocoTwin(env)
    mjx_obs, plain_obs = [], []
    for e in range(n_envs):
        twin.reset(qpos[e], qvel[e])
        plain_obs.append([twin.sense(goals[e])[0]])
        for t in range(steps):
            twin.step(actions[t, e])
            plain_obs[-1].append(twin.sense(goals[e])[0])
    mjx_obs.append(np.asarray(state.student_obs))
    for t in range(steps):
        state = step(state, actions[t])
        mjx_obs.append(np.asarray(state.student_obs))
    return np.stack(mjx_obs), np.stack([np.stack(o) for o in plain_obs], axis=1)


def test_reacher_twin_follows_mjx(reacher, reacher_steps):
    """SMALL_ENVS envs: the batch every reacher test compiled (another batch is another 30 s compile)."""
    mjx_obs, plain_obs = _follow(reacher, *reacher_steps, n_envs=SMALL_ENVS, steps=25)
    np.testing.assert_allclose(plain_obs, mjx_obs, atol=2e-4)


@pytest.mark.slow  # two MJX compiles (point maze, Go2)
@pytest.mark.parametrize("name, steps, atol", [("point_u_maze_blind", 60, 1e-3), ("go2", 10, 2e-2)])
def test_every_native_env_twin_follows_mjx(name, steps, atol):
    env = make_env(name)
    reset, step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
    mjx_obs, plain_obs = _follow(env, reset, step, n_envs=4, steps=steps)
    np.testing.assert_allclose(plain_obs, mjx_obs, atol=atol)
