"""Ant, humanoid and their mazes: layouts, observation fields, resets, auto-reset, physics sanity.

MJX compiles are the cost here (a step is tens of CPU-seconds on this machine), so each env family
compiles one vmapped reset and one step, shared by the module, with XLA's backend optimisation
switched off for these test compiles only (about 40% less compile time; the runtime loss does not
matter for a few hundred steps). Maze variants are checked through their models and their reset
sampler; stepping a maze is under `slow`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from distill.envs import ENV_FACTORIES, ant, humanoid, maze
from distill.errors import DistillError

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
N_ENVS = 3


@dataclasses.dataclass
class Compiled:
    env: object
    reset: object
    step: object

    def keys(self, seed: int) -> jax.Array:
        return jax.random.split(jax.random.PRNGKey(seed), N_ENVS)

    def zeros(self) -> jax.Array:
        return jnp.zeros((N_ENVS, self.env.spec.action_dim))


def _compile(env) -> Compiled:
    keys = jax.random.split(jax.random.PRNGKey(0), N_ENVS)
    reset = jax.jit(jax.vmap(env.reset)).lower(keys).compile(FAST_COMPILE)
    state = reset(keys)
    actions = jnp.zeros((N_ENVS, env.spec.action_dim))
    step = jax.jit(jax.vmap(env.step)).lower(state, actions).compile(FAST_COMPILE)
    return Compiled(env, reset, step)


@pytest.fixture(scope="module")
def ant_env() -> Compiled:
    return _compile(ant.make_ant())


@pytest.fixture(scope="module")
def humanoid_env() -> Compiled:
    return _compile(humanoid.make_humanoid())


def _rollout(c: Compiled, state, steps: int, seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(steps):
        action = scale * rng.uniform(-1.0, 1.0, (N_ENVS, c.env.spec.action_dim)).astype(np.float32)
        state = c.step(state, jnp.asarray(action))
        history.append(state)
    return state, jax.tree_util.tree_map(lambda *x: np.stack(x), *history)


# --- registry, specs and layouts (no MJX compile) ---------------------------------------------

MY_ENVS = ("ant", "ant_u_maze", "ant_big_maze", "ant_hardest_maze",
           "humanoid", "humanoid_u_maze", "humanoid_big_maze")


def test_registry_names_resolve_to_factories():
    import importlib

    for name in MY_ENVS:
        module, factory = ENV_FACTORIES[name]
        assert callable(getattr(importlib.import_module(module), factory)), name


@pytest.mark.parametrize("factory", [
    ant.make_ant, ant.make_ant_u_maze, ant.make_ant_big_maze, ant.make_ant_hardest_maze,
])
def test_ant_spec_and_model(factory):
    env = factory()
    s, m = env.spec, env.mj_model
    assert (s.obs_dim, s.goal_dim, s.action_dim) == (29, 2, 8)
    assert s.goal_indices == (0, 1)
    assert (s.episode_length, s.success_radius) == (1000, 0.5)
    assert s.control_dt == pytest.approx(0.05)
    assert len(s.obs_names) == s.input_dim == 31
    assert s.obs_names[:3] == ("torso_x", "torso_y", "torso_z")
    assert s.obs_names[-2:] == ("goal_x", "goal_y")
    assert (m.nq, m.nv, m.nu) == (17, 16, 8)
    target = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in (m.njnt - 2, m.njnt - 1)]
    assert target == ["target_x", "target_y"]
    assert list(m.jnt_qposadr[-2:]) == [15, 16]


@pytest.mark.parametrize("factory", [
    humanoid.make_humanoid, humanoid.make_humanoid_u_maze, humanoid.make_humanoid_big_maze,
])
def test_humanoid_spec_and_model(factory):
    env = factory()
    s, m = env.spec, env.mj_model
    bodies = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(1, m.nbody)]
    assert bodies == ["torso", "lwaist", "pelvis", "right_thigh", "right_shin", "left_thigh",
                      "left_shin", "right_upper_arm", "right_lower_arm", "left_upper_arm",
                      "left_lower_arm", "target"]
    assert (m.nq, m.nv, m.nu) == (26, 25, 17)
    assert m.nq + m.nv + len(bodies) * 10 + len(bodies) * 6 + m.nv == 268
    assert (s.obs_dim, s.goal_dim, s.action_dim) == (268, 3, 17)
    assert s.goal_indices == (0, 1, 2)
    assert s.control_dt == pytest.approx(0.015)
    assert (s.episode_length, s.success_radius) == (1000, 0.5)
    assert len(s.obs_names) == 271 and s.obs_names[-3:] == ("goal_x", "goal_y", "goal_z")
    assert s.obs_names[24:26] == ("target_x", "target_y")


def test_humanoid_observation_fields_match_mujoco():
    """Each block of the 268 is what MuJoCo itself reports for a random (non-trivial) state."""
    env = humanoid.make_humanoid()
    m = env.mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    d.qpos[7:24] = rng.uniform(-0.3, 0.3, 17)
    d.qpos[3:7] = np.array([0.9, 0.1, 0.2, 0.1]) / np.linalg.norm([0.9, 0.1, 0.2, 0.1])
    d.qpos[24:] = [3.0, -2.0]
    d.qvel[:] = rng.normal(size=m.nv)
    d.ctrl[:] = rng.uniform(-0.4, 0.4, m.nu)
    mujoco.mj_forward(m, d)
    obs = np.asarray(env.observe(mjx.put_data(m, d), jnp.zeros(3)))
    assert obs.shape == (268,)
    np.testing.assert_allclose(obs[:26], d.qpos, atol=1e-5)
    np.testing.assert_allclose(obs[26:51], d.qvel, atol=1e-5)
    mass = m.body_mass[1:]
    p = d.xipos[1:] - mass @ d.xipos[1:] / mass.sum()
    parallel = (p * p).sum(1)[:, None, None] * np.eye(3) - p[:, :, None] * p[:, None, :]
    inertia = np.eye(3) + mass[:, None, None] * parallel
    cinert = obs[51:171].reshape(12, 10)
    np.testing.assert_allclose(cinert[:, :9], inertia.reshape(12, 9), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cinert[:, 9], mass, rtol=1e-5)
    velocity = np.zeros((12, 6))
    for b in range(1, m.nbody):
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, b, velocity[b - 1], 0)
    cvel = obs[171:243].reshape(12, 6)
    np.testing.assert_allclose(cvel[:, :3], mass[:, None] / mass.sum() * velocity[:, 3:], atol=1e-5)
    np.testing.assert_allclose(cvel[:, 3:], velocity[:, :3], atol=1e-5)
    np.testing.assert_allclose(obs[243:268], d.qfrc_actuator, rtol=1e-5, atol=1e-4)
    assert np.abs(obs[243 + 6:243 + 23]).max() > 1.0


# --- mazes: walls, reset and goal cells (models and the reset sampler only) -------------------

MAZES = [
    (ant.make_ant_u_maze, "u_maze", ant.MAZE_CELL, 2.0),
    (ant.make_ant_big_maze, "big_maze", ant.MAZE_CELL, 2.0),
    (ant.make_ant_hardest_maze, "hardest_maze", ant.MAZE_CELL, 2.0),
    (humanoid.make_humanoid_u_maze, "u_maze", humanoid.MAZE_CELL, 1.0),
    (humanoid.make_humanoid_big_maze, "big_maze", humanoid.MAZE_CELL, 1.0),
]


def _inside(boxes: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(n_points, n_boxes) mask of points strictly inside boxes."""
    x, y = xy[:, None, 0], xy[:, None, 1]
    return (x > boxes[:, 0]) & (x < boxes[:, 1]) & (y > boxes[:, 2]) & (y < boxes[:, 3])


@pytest.mark.parametrize("factory,layout_name,cell,wall_height", MAZES)
def test_maze_walls_follow_layout(factory, layout_name, cell, wall_height):
    env = factory()
    layout = maze.LAYOUTS[layout_name]
    assert env.layout == layout
    boxes = maze.wall_boxes(env.mj_model)
    walls = np.asarray(layout.cells(maze.WALL), float) * cell
    assert len(boxes) == len(walls)
    rows, cols = layout.shape
    free = np.asarray([(i, j) for i in range(rows) for j in range(cols)
                       if not layout.is_wall(i, j)], float) * cell
    assert (_inside(boxes, walls).sum(1) == 1).all()
    assert not _inside(boxes, free).any()
    m = env.mj_model
    names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or "" for g in range(m.ngeom)]
    heights = [2 * m.geom_size[g, 2] for g, name in enumerate(names) if name.startswith("wall_")]
    np.testing.assert_allclose(heights, wall_height)


@pytest.mark.parametrize("factory,layout_name,cell,wall_height", MAZES)
def test_maze_resets_and_goals_in_their_cells(factory, layout_name, cell, wall_height):
    env = factory()
    layout = env.layout
    keys = jax.random.split(jax.random.PRNGKey(1), 256)
    sample = jax.jit(jax.vmap(env.sample_initial)).lower(keys).compile(FAST_COMPILE)
    qpos, _, goal = sample(keys)
    qpos, goal = np.asarray(qpos), np.asarray(goal)
    boxes = maze.wall_boxes(env.mj_model)
    goal_xy = goal[:, :2]
    assert not _inside(boxes, goal_xy).any() and not _inside(boxes, qpos[:, :2]).any()
    np.testing.assert_allclose(qpos[:, -2:], goal_xy)
    goal_cells = {layout.cell_of(xy, cell) for xy in goal_xy}
    assert goal_cells <= set(layout.cells(maze.GOAL))
    assert len(goal_cells) > len(layout.cells(maze.GOAL)) // 2
    np.testing.assert_allclose(goal_xy, np.round(goal_xy / cell) * cell, atol=1e-5)
    start_cells = {layout.cell_of(xy, cell) for xy in qpos[:, :2]}
    assert start_cells == set(layout.cells(maze.RESET))


@pytest.mark.parametrize("factory,train_name", [
    (ant.make_ant_u_maze, "u_maze"), (ant.make_ant_big_maze, "big_maze"),
    (humanoid.make_humanoid_u_maze, "u_maze"),
    (humanoid.make_humanoid_big_maze, "big_maze"),
])
def test_eval_layouts_keep_walls_and_only_far_goals(factory, train_name):
    train, evaluation = maze.LAYOUTS[train_name], factory(eval_far_goals=True).layout
    assert evaluation.name == f"{train_name}_eval"
    assert evaluation.cells(maze.WALL) == train.cells(maze.WALL)
    assert evaluation.cells(maze.RESET) == train.cells(maze.RESET)
    eval_goals, train_goals = set(evaluation.cells(maze.GOAL)), set(train.cells(maze.GOAL))
    assert eval_goals < train_goals
    (start,) = train.cells(maze.RESET)

    def grid_distance(cell):
        return abs(cell[0] - start[0]) + abs(cell[1] - start[1])

    assert min(map(grid_distance, eval_goals)) > min(map(grid_distance, train_goals))


def test_hardest_maze_has_no_eval_layout():
    with pytest.raises(DistillError, match="no far-goal evaluation layout"):
        ant.make_ant_hardest_maze(eval_far_goals=True)


# --- compiled reset and step ------------------------------------------------------------------

def test_ant_reset(ant_env):
    state = ant_env.reset(ant_env.keys(3))
    again = ant_env.reset(ant_env.keys(3))
    other = ant_env.reset(ant_env.keys(4))
    np.testing.assert_array_equal(state.obs, again.obs)
    assert not np.allclose(state.goal, other.goal)
    assert state.obs.shape == (N_ENVS, 31)
    qpos, qvel = np.asarray(state.data.qpos), np.asarray(state.data.qvel)
    np.testing.assert_allclose(state.obs[:, :15], qpos[:, :15])
    np.testing.assert_allclose(state.obs[:, 15:29], qvel[:, :14])
    np.testing.assert_allclose(state.obs[:, 29:], state.goal)
    np.testing.assert_allclose(qpos[:, 15:], state.goal)
    np.testing.assert_allclose(qvel[:, 14:], 0.0)
    np.testing.assert_allclose(np.linalg.norm(state.goal, axis=1), ant.GOAL_DISTANCE, rtol=1e-5)
    feet = ant_env.env._feet
    assert (np.asarray(state.data.geom_xpos)[:, feet, 2] >= ant.FOOT_RADIUS - 1e-4).all()
    assert (np.abs(qpos[:, :2]) <= ant.RESET_NOISE).all()
    assert (state.t == 0).all() and (state.episode == 0).all()


def test_humanoid_reset(humanoid_env):
    env = humanoid_env.env
    state = humanoid_env.reset(humanoid_env.keys(3))
    again = humanoid_env.reset(humanoid_env.keys(3))
    np.testing.assert_array_equal(state.obs, again.obs)
    assert state.obs.shape == (N_ENVS, 271)
    np.testing.assert_allclose(state.obs[:, 268:], state.goal)
    goal = np.asarray(state.goal)
    np.testing.assert_allclose(goal[:, 2], humanoid.TARGET_Z)
    radius = np.linalg.norm(goal[:, :2], axis=1)
    assert ((radius >= 1.0 - 1e-5) & (radius <= 5.0 + 1e-5)).all()
    standing = np.tile(env.mj_model.qpos0[:24], (N_ENVS, 1))
    np.testing.assert_allclose(state.data.qpos[:, :24], standing)
    np.testing.assert_allclose(state.obs[:, 24:26], goal[:, :2])
    np.testing.assert_allclose(state.obs[:, 243:268], 0.0)
    torso_to_goal = np.linalg.norm(state.data.qpos[:, :3] - goal, axis=1)
    np.testing.assert_allclose(state.dist, torso_to_goal, rtol=1e-5)


@pytest.mark.parametrize("fixture", ["ant_env", "humanoid_env"])
def test_episode_end_resets_with_a_new_goal(fixture, request):
    c = request.getfixturevalue(fixture)
    state = c.reset(c.keys(5))
    last = state.replace(t=jnp.full((N_ENVS,), c.env.spec.episode_length - 1, jnp.int32))
    nxt = c.step(last, c.zeros())
    assert nxt.done.all()
    assert (nxt.t == 0).all() and (nxt.episode == 1).all()
    assert (np.linalg.norm(nxt.goal - state.goal, axis=-1) > 1e-3).all()
    np.testing.assert_allclose(nxt.obs[:, c.env.spec.obs_dim:], nxt.goal)
    np.testing.assert_allclose(nxt.data.qpos[:, -2:], nxt.goal[:, :2])
    after = c.step(nxt, c.zeros())
    assert not after.done.any() and (after.t == 1).all()


@pytest.mark.parametrize("fixture,z", [("ant_env", 3.0), ("humanoid_env", 3.0)])
def test_unhealthy_torso_ends_the_episode(fixture, z, request):
    c = request.getfixturevalue(fixture)
    state = c.reset(c.keys(6))
    lifted = state.replace(data=state.data.replace(qpos=state.data.qpos.at[:, 2].set(z)))
    nxt = c.step(lifted, c.zeros())
    assert nxt.done.all() and (nxt.t == 0).all() and (nxt.episode == 1).all()
    assert (np.linalg.norm(nxt.goal - state.goal, axis=-1) > 1e-3).all()


@pytest.mark.parametrize("fixture", ["ant_env", "humanoid_env"])
def test_random_rollout_stays_finite(fixture, request):
    c = request.getfixturevalue(fixture)
    _, h = _rollout(c, c.reset(c.keys(7)), steps=200, seed=7)
    assert np.isfinite(h.obs).all() and np.isfinite(h.dist).all()
    assert np.isfinite(np.asarray(h.data.qacc)).all()
    assert h.done.any(), "random actions topple the body within 200 steps"
    np.testing.assert_array_equal(np.diff(h.episode, axis=0), h.done[1:].astype(int))
    np.testing.assert_array_equal(h.t[h.done], 0)


def test_zero_action_ant_stays_healthy(ant_env):
    """The reset pose is a stable stance: nothing launches or sinks the ant."""
    state = ant_env.reset(ant_env.keys(8))
    for _ in range(100):
        state = ant_env.step(state, ant_env.zeros())
        assert not state.done.any()
    z = np.asarray(state.data.qpos[:, 2])
    assert ((z > 0.35) & (z < 0.8)).all()


# --- slow: stepping the mazes -----------------------------------------------------------------

def _body_geoms_below_wall_top(model: mujoco.MjModel, geom_xpos: np.ndarray, height: float):
    """xy of the centres of wall-colliding geoms lower than the walls (the humanoid may lean over
    its 1 m walls; the ant's thigh and shin capsules do not collide with walls, as in the paper)."""
    body = np.array([g for g in range(model.ngeom) if model.geom_contype[g] & ant.WALL_BIT])
    xyz = geom_xpos[..., body, :].reshape(-1, 3)
    return xyz[xyz[:, 2] < height, :2]


@pytest.mark.slow
@pytest.mark.parametrize("factory,cell,velocity", [
    (ant.make_ant_u_maze, ant.MAZE_CELL, (-4.0, 1.5)),  # a hop: sliding, floor friction stops it
    (humanoid.make_humanoid_u_maze, humanoid.MAZE_CELL, (-3.0, 0.0)),
])
def test_walls_stop_a_body_thrown_at_them(factory, cell, velocity):
    """Start 1 m from the wall at cell (0, 1), thrown at it: the torso reaches the wall, yet no
    body part below the wall top ends up inside it."""
    c = _compile(factory())
    state = c.reset(c.keys(9))
    wall_face, wall_top = 0.5 * cell, 0.5 * cell
    qpos = state.data.qpos.at[:, 0].set(wall_face + 1.0)
    qvel = state.data.qvel.at[:, 0].set(velocity[0]).at[:, 2].set(velocity[1])
    state = state.replace(data=state.data.replace(qpos=qpos, qvel=qvel))
    torso_x, geom_xpos = [], []
    for _ in range(30):
        state = c.step(state, c.zeros())
        live = ~np.asarray(state.done)
        torso_x.append(np.asarray(state.data.qpos[live, 0]))
        geom_xpos.append(np.asarray(state.data.geom_xpos[live]))
    low = _body_geoms_below_wall_top(c.env.mj_model, np.concatenate(geom_xpos), wall_top)
    assert np.concatenate(torso_x).min() < wall_face + 0.5, "never reached the wall"
    assert low[:, 0].min() > wall_face, "a body part passed into the wall"


@pytest.mark.slow
@pytest.mark.parametrize("factory", [ant.make_ant_big_maze, humanoid.make_humanoid_big_maze])
def test_long_maze_rollout_stays_finite(factory):
    c = _compile(factory())
    _, h = _rollout(c, c.reset(c.keys(10)), steps=1000, seed=10)
    assert np.isfinite(h.obs).all()
    wall_top = 0.5 * (ant.MAZE_CELL if c.env.spec.name.startswith("ant") else humanoid.MAZE_CELL)
    low = _body_geoms_below_wall_top(c.env.mj_model, np.asarray(h.data.geom_xpos), wall_top)
    assert not _inside(maze.wall_boxes(c.env.mj_model), low).any()
