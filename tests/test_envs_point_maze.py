"""Point mazes: layouts and walls as Gymnasium-Robotics builds them, D4RL's goal and start draws,
walls that hold, clipped velocity, determinism and a new goal on every reset."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from distill.envs import make_env, with_episode_length
from distill.envs.maze import wall_boxes
from distill.envs.point_maze import CELL, MAX_SPEED, MAZES, POSITION_NOISE, maze_map, point_asset
from distill.rollouts import batched_reset, batched_step

N = 8
"""Envs per batch in every test here: reset and step compile once, for this batch size."""
BALL = 0.1


def _reference_maze(layout: str, tmp_path, monkeypatch):
    """Gymnasium-Robotics' own maze builder: its model and its goal/start cells. It writes its XML
    into the system temp folder and never deletes it, so the temp folder is pointed at tmp_path."""
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints notices on import
        from gymnasium_robotics.envs.maze import maps
        from gymnasium_robotics.envs.maze.maze_v4 import Maze
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    maze, xml = Maze.make_maze(str(point_asset()), getattr(maps, layout), 1, 0.4)
    assert tmp_path in Path(xml).parents
    return maze, mujoco.MjModel.from_xml_path(xml)


@pytest.mark.parametrize("name", sorted(MAZES))
def test_layout_and_walls_match_gymnasium_robotics(name, tmp_path, monkeypatch):
    env = make_env(name)
    layout, episode_length = MAZES[name]
    spec = env.spec
    assert (spec.obs_dim, spec.goal_dim, spec.action_dim, spec.goal_indices) == (4, 2, 2, (0, 1))
    assert spec.episode_length == episode_length and spec.control_dt == pytest.approx(0.01)
    assert spec.success_radius == 0.45
    assert spec.obs_names[:2] == ("ball_x", "ball_y") and spec.obs_names[4:] == ("goal_x", "goal_y")
    maze, ref = _reference_maze(layout, tmp_path, monkeypatch)
    blocks = [g for g in range(ref.ngeom) if (mujoco.mj_id2name(ref, mujoco.mjtObj.mjOBJ_GEOM, g) or "").startswith("block_")]
    ref_boxes = np.asarray([[ref.geom_pos[g][0] - ref.geom_size[g][0], ref.geom_pos[g][0] + ref.geom_size[g][0],
                             ref.geom_pos[g][1] - ref.geom_size[g][1], ref.geom_pos[g][1] + ref.geom_size[g][1]]
                            for g in blocks])
    ours = wall_boxes(env.mj_model)
    assert len(ours) == len(ref_boxes) == sum(map(sum, maze_map(layout)))
    np.testing.assert_allclose(np.sort(ours, axis=0), np.sort(ref_boxes, axis=0), atol=1e-6)
    ref_free = np.asarray(maze.unique_goal_locations)
    np.testing.assert_allclose(np.sort(env.free_cells, axis=0), np.sort(ref_free, axis=0), atol=1e-6)
    ball = mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_GEOM, "particle_geom")
    assert env.mj_model.geom_size[ball][0] == BALL and env.mj_model.body_mass[1] == pytest.approx(4.18879, rel=1e-4)


@pytest.fixture(scope="module")
def u_maze():
    return make_env("point_u_maze")


@pytest.fixture(scope="module")
def u_steps(u_maze):
    return batched_reset(u_maze), batched_step(u_maze)


def test_goals_and_starts_follow_d4rl(u_maze, u_steps):
    reset, _ = u_steps
    states = [reset(keys) for keys in jax.random.split(jax.random.PRNGKey(0), 256).reshape(-1, N, 2)]
    goal = np.concatenate([np.asarray(s.goal) for s in states])
    start = np.concatenate([np.asarray(s.obs[:, :2]) for s in states])
    obs = np.concatenate([np.asarray(s.obs) for s in states])
    cells = u_maze.free_cells

    def nearest(points):
        d = np.abs(points[:, None, :] - cells[None]).max(-1)
        return d.min(1), d.argmin(1)

    for points in (goal, start):
        offset, _ = nearest(points)
        assert offset.max() <= POSITION_NOISE + 1e-6
    _, start_cell = nearest(start)
    assert (np.linalg.norm(cells[start_cell] - goal, axis=-1) > 0.5 * CELL).all()
    assert len(np.unique(np.round(goal, 3), axis=0)) > 200  # noisy, spread over the cells
    np.testing.assert_array_equal(obs[:, 2:4], 0.0)
    np.testing.assert_array_equal(obs[:, 4:], goal)


def test_walls_hold_and_velocity_is_clipped(u_maze, u_steps):
    reset, step = u_steps
    state = reset(jax.random.split(jax.random.PRNGKey(1), N))
    boxes = wall_boxes(u_maze.mj_model)
    key = jax.random.PRNGKey(2)
    positions, speeds = [], []
    for t in range(200):  # full force in a direction held for 40 steps: slams into walls at 5 m/s
        direction = jax.random.uniform(jax.random.fold_in(key, t // 40), (N, 2), minval=-1, maxval=1)
        state = step(state, jnp.sign(direction))
        positions.append(np.asarray(state.data.qpos))
        speeds.append(np.abs(np.asarray(state.data.qvel)).max())
    pos = np.concatenate(positions)
    # At the 5 m/s cap the ball moves 5 cm per 0.01 s step, so a contact can begin up to that deep
    # (MuJoCo on the CPU with the asset's 20 solver iterations goes as deep); it must never get further.
    slack = 0.06
    inside = ((pos[:, None, 0] > boxes[None, :, 0] - BALL + slack) & (pos[:, None, 0] < boxes[None, :, 1] + BALL - slack)
              & (pos[:, None, 1] > boxes[None, :, 2] - BALL + slack) & (pos[:, None, 1] < boxes[None, :, 3] + BALL - slack))
    assert not inside.any(), "the ball went more than a step's travel into a wall"
    assert max(speeds) < MAX_SPEED + 0.5  # clipped before each step, plus one step of acceleration
    assert max(speeds) > 3.0  # and it did get going


def test_deterministic_and_new_goal_on_every_reset(u_maze, u_steps):
    reset, step = u_steps
    length = u_maze.spec.episode_length
    keys = jax.random.split(jax.random.PRNGKey(3), N)
    action = jnp.full((N, 2), 0.3, jnp.float32)
    runs = []
    for _ in range(2):
        state, goals, dones = reset(keys), [], []
        for _ in range(2 * length + 2):
            state = step(state, action)
            goals.append(state.goal)
            dones.append(state.done)
        runs.append((np.stack(jax.device_get(goals)), np.stack(jax.device_get(dones)), np.asarray(state.obs)))
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    goals, dones = runs[0][0], runs[0][1]
    first, second = length - 1, 2 * length - 1
    assert dones[first].all() and dones[second].all() and dones.sum() == 2 * N
    assert (np.abs(goals[first] - goals[first - 1]).max(-1) > 0).all()  # every env drew a new goal at its reset
    assert (np.abs(goals[second] - goals[second - 1]).max(-1) > 0).all()
    assert (goals[first + 1 : second] == goals[first]).all()  # and kept it for the episode
    short = with_episode_length(u_maze, 5)
    assert short.spec.episode_length == 5 and u_maze.spec.episode_length == 300
    assert with_episode_length(u_maze, 5) is short and with_episode_length(u_maze, 0) is u_maze
