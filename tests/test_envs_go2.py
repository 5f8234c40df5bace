"""The Go2 env: Menagerie figures, PD actuation, standing, auto-reset, and its two observations:
the teacher's (privileged world-frame base state, the goal a slice of it) and the student's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from distill.envs import go2 as go2_module
from distill.envs import make_env

LEGS = ("FR", "FL", "RR", "RL")


@pytest.fixture(scope="module")
def env():
    return make_env("go2")


@pytest.fixture(scope="module")
def reset(env):
    return jax.jit(env.reset)


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step)


@pytest.fixture(scope="module")
def start(reset):
    return reset(jax.random.PRNGKey(0))


def _yaw_from_quat(q: np.ndarray) -> float:
    w, x, y, z = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


# --- layout and model figures (no physics compile) ---------------------------------------------
def _contiguous(groups, dim: int) -> dict[str, tuple[int, int]]:
    stops = [0]
    for name, start, stop in groups:
        assert start == stops[-1], name
        stops.append(stop)
    assert stops[-1] == dim
    return {name: (start, stop) for name, start, stop in groups}


def test_spec_dims_and_layout(env):
    spec = env.spec
    assert (spec.obs_dim, spec.goal_dim, spec.action_dim) == (50, 2, 12)
    assert spec.asymmetric and spec.student_input_dim == 44 and spec.student_observation.goal_dim == 2
    assert spec.goal_indices == (42, 43)
    assert spec.control_dt == pytest.approx(0.02)
    assert len(spec.obs_names) == spec.input_dim == 52
    assert len(spec.action_names) == 12
    assert spec.action_names[0].startswith("FR_hip") and spec.action_names[-1].startswith("RL_calf")
    teacher = _contiguous(env.obs_groups, 52)
    student = _contiguous(env.student_obs_groups, 44)
    assert student["goal_rel"] == (42, 44) and student["last_action"] == (30, 42)
    assert teacher["base_pos"] == (42, 45) and teacher["goal"] == (50, 52)
    assert [spec.obs_names[i] for i in spec.goal_indices] == ["base_pos_x", "base_pos_y"]
    assert spec.obs_names[:42] == spec.student_observation.names[:42]
    for groups, names in ((env.obs_groups, spec.obs_names), (env.student_obs_groups, spec.student_observation.names)):
        for name, start, stop in groups:
            assert all(n.startswith(name) for n in names[start:stop]), name


def test_masses_and_geometry_match_menagerie(env):
    m = env.mj_model
    mass = {m.body(i).name: m.body_mass[i] for i in range(m.nbody)}
    assert mass["base"] == pytest.approx(6.921)
    for leg in LEGS:
        assert mass[f"{leg}_hip"] == pytest.approx(0.678)
        assert mass[f"{leg}_thigh"] == pytest.approx(1.152)
        assert mass[f"{leg}_calf"] == pytest.approx(0.241352)
    robot = [i for i in range(m.nbody) if m.body(i).name not in ("world", "target")]
    assert m.body_mass[robot].sum() == pytest.approx(15.206, abs=1e-3)
    assert m.body("FL_hip").pos == pytest.approx([0.1934, 0.0465, 0.0])
    assert m.body("RR_hip").pos == pytest.approx([-0.1934, -0.0465, 0.0])
    assert m.body("FR_thigh").pos == pytest.approx([0.0, -0.0955, 0.0])
    assert m.body("RL_calf").pos == pytest.approx([0.0, 0.0, -0.213])
    foot = m.geom("FR_foot")
    assert foot.size[0] == pytest.approx(0.022)
    assert foot.pos == pytest.approx([-0.002, 0.0, -0.213])
    assert m.body("base").inertia == pytest.approx([0.107027, 0.0980771, 0.0244531])
    assert m.body("FL_thigh").inertia == pytest.approx([0.00594973, 0.00584149, 0.000878787])


def test_joint_axes_ranges_and_torque_limits(env):
    m = env.mj_model
    for leg in LEGS:
        hip, thigh, calf = (m.joint(f"{leg}_{j}_joint") for j in ("hip", "thigh", "calf"))
        assert hip.axis == pytest.approx([1, 0, 0])
        assert thigh.axis == pytest.approx([0, 1, 0]) and calf.axis == pytest.approx([0, 1, 0])
        assert hip.range == pytest.approx([-1.0472, 1.0472])
        thigh_range = [-1.5708, 3.4907] if leg[0] == "F" else [-0.5236, 4.5379]
        assert thigh.range == pytest.approx(thigh_range)
        assert calf.range == pytest.approx([-2.7227, -0.83776])
        for joint, limit in (("hip", 23.7), ("thigh", 23.7), ("calf", 45.43)):
            act = m.actuator(f"{leg}_{joint}")
            assert m.actuator_forcelimited[act.id]
            assert act.forcerange == pytest.approx([-limit, limit])
    opt = m.opt
    assert (opt.iterations, opt.ls_iterations) == (1, 5)
    assert opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    assert opt.solver == mujoco.mjtSolver.mjSOL_NEWTON


def test_only_feet_touch_the_floor(env):
    m = env.mj_model
    floor = m.geom("floor").id
    touching = [
        m.geom(g).name
        for g in range(m.ngeom)
        if g != floor
        and (
            m.geom_contype[g] & m.geom_conaffinity[floor]
            or m.geom_contype[floor] & m.geom_conaffinity[g]
        )
    ]
    assert sorted(touching) == sorted(f"{leg}_foot" for leg in LEGS)
    assert all(m.geom(f"{leg}_foot").type == mujoco.mjtGeom.mjGEOM_SPHERE for leg in LEGS)


def test_pd_law_and_torque_clipping(env):
    """actuator force = kp (q_home + 0.25 a - q) - kd qd, clipped to the motor's torque limit."""
    m = env.mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    home = np.tile([0.0, 0.9, -1.8], 4)
    d.qpos[7:] = home + rng.uniform(-0.3, 0.3, 12)
    d.qvel[6:] = rng.uniform(-3, 3, 12)
    d.ctrl[:] = rng.uniform(-1, 1, 12)
    mujoco.mj_forward(m, d)
    want = go2_module.KP * (home + 0.25 * d.ctrl - d.qpos[7:]) - go2_module.KD * d.qvel[6:]
    limit = np.tile([23.7, 23.7, 45.43], 4)
    np.testing.assert_allclose(d.actuator_force, np.clip(want, -limit, limit), rtol=1e-6, atol=1e-9)
    d.qpos[7:] = home - 2.0
    d.qvel[6:] = 0.0
    mujoco.mj_forward(m, d)
    assert np.abs(d.actuator_force) == pytest.approx(limit)


# --- MJX physics ---------------------------------------------------------------------------------
def test_reset_obs_and_ctrl_hold_home_pose(env, start):
    obs = np.asarray(start.student_obs)
    assert obs.shape == (44,) and start.obs.shape == (52,)
    np.testing.assert_allclose(obs[3:6], [0, 0, -1], atol=1e-5)
    assert np.abs(obs[6:18]).max() <= go2_module.JOINT_NOISE + 1e-6
    np.testing.assert_array_equal(obs[30:42], 0.0)
    np.testing.assert_array_equal(np.asarray(start.data.ctrl), 0.0)
    r = float(np.linalg.norm(np.asarray(start.goal)))
    assert 1.0 <= r <= 3.0
    teacher = np.asarray(start.obs)
    np.testing.assert_allclose(teacher[42:45], [0.0, 0.0, go2_module.START_HEIGHT], atol=1e-6)
    np.testing.assert_array_equal(teacher[47:50], 0.0)
    np.testing.assert_array_equal(teacher[50:52], np.asarray(start.goal))


def test_stands_under_zero_action(env, step, start):
    state, zero = start, jnp.zeros(12)
    heights, uprights = [], []
    for _ in range(100):
        state = step(state, zero)
        assert not bool(state.done)
        heights.append(float(state.data.qpos[2]))
        uprights.append(float(state.data.xmat[env.mj_model.body("base").id, 2, 2]))
    assert np.isfinite(np.asarray(state.obs)).all() and np.isfinite(np.asarray(state.student_obs)).all()
    assert 0.22 < min(heights) and max(heights) < 0.30
    assert min(uprights) > 0.97
    assert float(np.linalg.norm(np.asarray(state.data.qpos[:2]))) < 0.1
    assert np.abs(np.asarray(state.student_obs[:3])).max() < 0.1


def test_last_action_is_observed(env, step, start):
    action = jnp.linspace(-1.5, 1.5, 12)
    state = step(start, action)
    for obs in (state.obs, state.student_obs):
        np.testing.assert_allclose(np.asarray(obs[30:42]), np.clip(np.asarray(action), -1, 1), atol=1e-6)


def test_deterministic_for_a_key(env, reset, step):
    a, b = reset(jax.random.PRNGKey(7)), reset(jax.random.PRNGKey(7))
    c = reset(jax.random.PRNGKey(8))
    np.testing.assert_array_equal(np.asarray(a.student_obs), np.asarray(b.student_obs))
    assert not np.array_equal(np.asarray(a.goal), np.asarray(c.goal))
    action = 0.5 * jnp.sin(jnp.arange(12.0))
    for _ in range(3):
        a, b = step(a, action), step(b, action)
    np.testing.assert_array_equal(np.asarray(a.obs), np.asarray(b.obs))
    np.testing.assert_array_equal(np.asarray(a.data.qpos), np.asarray(b.data.qpos))


def test_auto_reset_draws_new_goal(env, step, start):
    last = start.replace(t=jnp.asarray(env.spec.episode_length - 1, jnp.int32))
    nxt = step(last, jnp.zeros(12))
    assert bool(nxt.done)
    assert int(nxt.t) == 0 and int(nxt.episode) == int(start.episode) + 1
    assert not np.allclose(np.asarray(nxt.goal), np.asarray(start.goal))
    assert 1.0 <= float(np.linalg.norm(np.asarray(nxt.goal))) <= 3.0
    np.testing.assert_array_equal(np.asarray(nxt.obs[30:42]), 0.0)
    assert float(nxt.data.qpos[2]) == pytest.approx(go2_module.START_HEIGHT)


def test_fallen_robot_terminates(env, step, start):
    upside_down = start.data.replace(
        qpos=start.data.qpos.at[3:7].set(jnp.array([0.0, 1.0, 0.0, 0.0]))
    )
    nxt = step(start.replace(data=upside_down), jnp.zeros(12))
    assert bool(nxt.done) and int(nxt.t) == 0


def test_projected_gravity_follows_base_tilt(env, step, start):
    roll = 0.5
    quat = jnp.array([np.cos(roll / 2), np.sin(roll / 2), 0.0, 0.0])
    tilted = start.data.replace(qpos=start.data.qpos.at[3:7].set(quat).at[2].set(0.4))
    nxt = step(start.replace(data=tilted), jnp.zeros(12))
    assert not bool(nxt.done)
    w, x, y, z = np.asarray(nxt.data.qpos[3:7], dtype=np.float64)
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    for obs in (nxt.obs, nxt.student_obs):
        np.testing.assert_allclose(np.asarray(obs[3:6]), rotation.T @ [0, 0, -1], atol=1e-5)
    assert float(nxt.student_obs[4]) < -0.4


def test_goal_observation_is_goal_in_base_yaw_frame(env, reset, step):
    for seed in range(4):
        state = reset(jax.random.PRNGKey(100 + seed))
        state = step(state, jnp.zeros(12))
        qpos = np.asarray(state.data.qpos)
        yaw = _yaw_from_quat(qpos[3:7])
        delta = np.asarray(state.goal) - qpos[:2]
        forward, left = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
        np.testing.assert_allclose(
            np.asarray(state.student_obs[42:44]), [delta @ forward, delta @ left], atol=1e-5
        )
    ahead = go2_module.relative_goal(
        jnp.array([1.0, 1.0]), jnp.asarray(np.pi / 2), jnp.array([1.0, 3.0])
    )
    np.testing.assert_allclose(np.asarray(ahead), [2.0, 0.0], atol=1e-6)
    right = go2_module.relative_goal(jnp.zeros(2), jnp.asarray(np.pi / 2), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(np.asarray(right), [0.0, -1.0], atol=1e-6)


@pytest.fixture(scope="module")
def walked(env, reset, step):
    """A state after 30 steps of varied actions: moving, turned, off the origin."""
    state = reset(jax.random.PRNGKey(3))
    for i in range(30):
        state = step(state, 0.8 * jnp.sin(0.7 * i + jnp.arange(12.0)))
    assert not bool(state.done)
    return state


def test_teacher_privileged_entries_are_mujocos_base_state(env, walked):
    """Base position, yaw and world linear velocity, against MuJoCo's own body quantities."""
    m = env.mj_model
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = np.asarray(walked.data.qpos), np.asarray(walked.data.qvel)
    mujoco.mj_forward(m, d)
    base = m.body("base").id
    velocity = np.zeros(6)
    mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, base, velocity, 0)  # body frame origin, world axes: (rot, lin)
    xmat = d.xmat[base].reshape(3, 3)
    obs = np.asarray(walked.obs, np.float64)
    np.testing.assert_allclose(obs[42:45], d.xpos[base], atol=1e-5)
    np.testing.assert_allclose(obs[45:47], xmat[:2, 0] / np.linalg.norm(xmat[:2, 0]), atol=1e-5)
    np.testing.assert_allclose(obs[47:50], velocity[3:], atol=1e-4)
    assert np.linalg.norm(velocity[3:]) > 0.05 and np.linalg.norm(obs[42:44]) > 0.01  # a moving base off the origin
    np.testing.assert_array_equal(obs[50:52], np.asarray(walked.goal))


def test_teacher_and_student_share_proprioception_and_differ_in_goal(walked):
    teacher, student = np.asarray(walked.obs), np.asarray(walked.student_obs)
    np.testing.assert_array_equal(teacher[:42], student[:42])
    qpos = np.asarray(walked.data.qpos)
    yaw = np.arctan2(teacher[46], teacher[45])
    delta = teacher[50:52] - teacher[42:44]
    rel = [np.cos(yaw) * delta[0] + np.sin(yaw) * delta[1], -np.sin(yaw) * delta[0] + np.cos(yaw) * delta[1]]
    np.testing.assert_allclose(student[42:44], rel, atol=1e-5)
    assert yaw == pytest.approx(_yaw_from_quat(qpos[3:7]), abs=1e-5)
    assert not np.allclose(student[42:44], teacher[50:52], atol=1e-2)


def test_teacher_goal_slice_is_the_achieved_goal(env, walked):
    """What CRL relabels with: the goal indices of a stored state are the base's world xy."""
    state_part = np.asarray(walked.obs[: env.spec.obs_dim])
    achieved = np.asarray(env.achieved_goal(walked.data))
    np.testing.assert_array_equal(state_part[list(env.spec.goal_indices)], achieved)
    assert float(walked.dist) == pytest.approx(float(np.linalg.norm(achieved - np.asarray(walked.goal))), abs=1e-5)


def test_success_when_base_within_radius(env, step, start):
    base_xy = start.data.qpos[:2]
    near = start.replace(goal=base_xy + jnp.array([0.3, 0.0]))
    far = start.replace(goal=base_xy + jnp.array([0.8, 0.0]))
    assert float(step(near, jnp.zeros(12)).success) == 1.0
    assert float(step(far, jnp.zeros(12)).success) == 0.0


# --- obstacles -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def obstacle_env():
    return make_env("go2_obstacles")


def test_obstacle_goals_are_clear_of_boxes(obstacle_env):
    sample = jax.jit(jax.vmap(obstacle_env.sample_initial))
    _, _, goals = sample(jax.random.split(jax.random.PRNGKey(0), 512))
    goals = np.asarray(goals)
    radius = np.linalg.norm(goals, axis=1)
    assert radius.min() >= 1.0 - 1e-5 and radius.max() <= 3.0 + 1e-5
    reach = np.asarray(go2_module.OBSTACLE_HALF[:2]) + go2_module.GOAL_CLEARANCE
    for centre in go2_module.OBSTACLES:
        inside = np.all(np.abs(goals - np.asarray(centre)) < reach, axis=1)
        assert not inside.any()


def test_obstacles_collide_with_feet_and_trunk(obstacle_env):
    m = obstacle_env.mj_model
    d = mujoco.MjData(m)
    d.qpos[:7] = [*go2_module.OBSTACLES[0], 0.30, 1, 0, 0, 0]
    d.qpos[7:] = go2_module.HOME_POSE
    mujoco.mj_forward(m, d)
    box = m.geom("obstacle0").id
    touching = {
        m.geom(int(g)).name or m.body(m.geom_bodyid[int(g)]).name
        for c in d.contact[: d.ncon]
        for g in (c.geom1, c.geom2)
        if box in (c.geom1, c.geom2)
    }
    assert "base" in touching
    d.qpos[:3] = [go2_module.OBSTACLES[0][0], go2_module.OBSTACLES[0][1], 0.58]
    mujoco.mj_forward(m, d)
    on_box = {
        m.geom(int(c.geom1 + c.geom2 - box)).name
        for c in d.contact[: d.ncon]
        if box in (c.geom1, c.geom2)
    }
    assert on_box and all(name.endswith("_foot") for name in on_box)


@pytest.mark.slow
def test_obstacle_env_stands_on_a_box_in_mjx(obstacle_env):
    """MJX keeps only the nearest sphere-box pairs; the ones that matter must survive the cull."""
    start = jax.jit(obstacle_env.reset)(jax.random.PRNGKey(1))
    step = jax.jit(obstacle_env.step)
    state = start
    for _ in range(25):
        state = step(state, jnp.zeros(12))
    assert np.isfinite(np.asarray(state.student_obs)).all()
    assert 0.22 < float(state.data.qpos[2]) < 0.30
    x, y = go2_module.OBSTACLES[0]
    on_box = start.data.replace(qpos=start.data.qpos.at[:3].set(jnp.array([x, y, 0.6])))
    state = start.replace(data=on_box)
    for _ in range(25):
        state = step(state, jnp.zeros(12))
    assert not bool(state.done)
    top = 2 * go2_module.OBSTACLE_HALF[2]
    assert top + 0.2 < float(state.data.qpos[2]) < top + 0.32
