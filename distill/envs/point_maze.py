"""Point-mass mazes: Gymnasium-Robotics' PointMaze (D4RL's maze2d task) in MJX.

The model is the asset `gymnasium-robotics` ships (`envs/assets/point/point.xml`: a sphere of
radius 0.1 on slide joints x and y, motors of gear 100, joint damping 1, no gravity, 0.01 s
timestep, Euler), and the layouts are that package's `U_MAZE`, `MEDIUM_MAZE` and `LARGE_MAZE`
(`envs/maze/maps.py`), read from the installed files rather than copied. As there:
  cells are 1 m, walls 0.4 m high; cell (i, j) is centred at
  x = (j + 0.5) - width / 2, y = height / 2 - (i + 0.5) (row i runs along -y, column j along x);
  every free cell can hold the goal or the start; the goal is a uniform free cell plus U(±0.25)
  noise on x and y, the start a uniform free cell more than 0.5 m from that goal, plus the same
  noise; velocity starts at zero;
  actions in [-1, 1]², the velocity is clipped to ±5 m/s before every step, one physics step per
  action (control at 100 Hz); success = ball within 0.45 m of the goal;
  episodes of 300 (U), 600 (medium) and 800 (large) steps.
Observation (4 state + 2 goal): [0:2] ball x, y  [2:4] ball vx, vy  [4:6] goal x, y;
goal indices (0, 1).

`point_u_maze_blind` is the U maze with a velocity-blind student: it sees the ball's position and the
goal ([0:2] ball x, y  [2:4] goal x, y), as a robot with a position sensor and no velocity estimate
would, while its teacher keeps the full observation (a `point_u_maze` teacher labels it). The ball
carries momentum (speeds up to 5 m/s, damping 1), so a student that sees one position cannot tell
how fast it is going: the task for students with memory (history or recurrent).

Differences from Gymnasium-Robotics, none of which changes the task:
- The goal stays fixed for the whole episode (D4RL's evaluation protocol); Gymnasium's default
  `continuing_task` draws a new goal when the ball reaches one. Episodes end only on time.
- The ball does not collide with the floor: it moves only in x and y, there is no gravity and the
  contact is frictionless (condim 1), so that contact could only push along z, which has no joint.
- Newton with 2 iterations instead of 20: frictionless sphere-box contacts converge at once (driven
  into walls at the speed cap, the ball goes 4.6 cm deep at worst with either setting: one 0.01 s
  step of travel at 5 m/s; tests check it never goes further).
- MJX's broad phase keeps the 4 nearest sphere-wall pairs (the ball can touch at most 3 walls).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from distill.envs.base import EnvSpec, MjxGoalEnv, ObservationSpec
from distill.envs.maze import limit_geom_pairs
from distill.errors import DistillError

CELL = 1.0
WALL_HEIGHT = 0.4
POSITION_NOISE = 0.25
START_CLEARANCE = 0.5
"""The start cell's centre must be this far from the (noisy) goal, as Gymnasium-Robotics draws it."""
MAX_SPEED = 5.0
SUCCESS_RADIUS = 0.45
WALL_PAIRS = 4
WALL_RGBA = (0.7, 0.5, 0.3, 1.0)
MAZES = {
    # env name: (layout name in gymnasium_robotics/envs/maze/maps.py, episode length)
    "point_u_maze": ("U_MAZE", 300),
    "point_medium_maze": ("MEDIUM_MAZE", 600),
    "point_large_maze": ("LARGE_MAZE", 800),
}


def _package_dir() -> Path:
    """gymnasium_robotics' folder, found without importing it (its import registers dozens of
    envs and prints notices)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise DistillError("gymnasium-robotics is not installed: `pip install gymnasium-robotics` "
                           "provides the point-maze asset and layouts")
    return Path(next(iter(spec.submodule_search_locations)))


def point_asset() -> Path:
    path = _package_dir() / "envs" / "assets" / "point" / "point.xml"
    if not path.is_file():
        raise DistillError(f"gymnasium-robotics does not ship {path}; install gymnasium-robotics>=1.2")
    return path


@cache
def maze_map(name: str) -> tuple[tuple[int, ...], ...]:
    """A layout of maps.py as rows of 0 (free) / 1 (wall), read with `ast.literal_eval`."""
    path = _package_dir() / "envs" / "maze" / "maps.py"
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name):
            rows = ast.literal_eval(node.value)
            if not rows or any(len(r) != len(rows[0]) or set(r) - {0, 1} for r in rows):
                raise DistillError(f"{path}: {name} is not a rectangular grid of 0 and 1")
            return tuple(tuple(int(c) for c in r) for r in rows)
    raise DistillError(f"{path} has no layout {name}; gymnasium-robotics changed its maps")


def cell_centres(rows: tuple[tuple[int, ...], ...], value: int) -> np.ndarray:
    """World xy of the centres of the cells holding `value`, Gymnasium-Robotics' convention."""
    height, width = len(rows), len(rows[0])
    return np.asarray(
        [((j + 0.5) * CELL - 0.5 * width * CELL, 0.5 * height * CELL - (i + 0.5) * CELL)
         for i, row in enumerate(rows) for j, c in enumerate(row) if c == value],
        dtype=np.float32,
    ).reshape(-1, 2)


def build_model(rows: tuple[tuple[int, ...], ...]) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(point_asset()))
    spec.option.iterations = 2
    spec.option.ls_iterations = 4
    spec.geom("ground").contype = 0
    spec.geom("ground").conaffinity = 0
    ball = spec.geom("particle_geom")
    ball.rgba = (0.1, 0.3, 0.9, 1.0)
    ball.contype, ball.conaffinity = 1, 0
    half = 0.5 * CELL
    for k, (x, y) in enumerate(cell_centres(rows, 1)):
        spec.worldbody.add_geom(
            name=f"wall_{k}", type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=[float(x), float(y), 0.5 * WALL_HEIGHT], size=[half, half, 0.5 * WALL_HEIGHT],
            contype=0, conaffinity=1, rgba=WALL_RGBA,
        )
    limit_geom_pairs(spec, WALL_PAIRS)
    target = spec.worldbody.add_body(name="target", mocap=True)
    target.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.1, 0, 0], contype=0,
                    conaffinity=0, rgba=[0.9, 0.2, 0.2, 0.8])
    target.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[SUCCESS_RADIUS, 0.002, 0],
                    pos=[0, 0, -0.09], contype=0, conaffinity=0, rgba=[0.2, 0.9, 0.3, 0.35])
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 960
    return spec.compile()


def _spec(name: str, episode_length: int, control_dt: float) -> EnvSpec:
    return EnvSpec(
        name=name, obs_dim=4, goal_dim=2, action_dim=2, goal_indices=(0, 1),
        episode_length=episode_length, control_dt=control_dt, success_radius=SUCCESS_RADIUS,
        obs_names=("ball_x", "ball_y", "ball_vx", "ball_vy", "goal_x", "goal_y"),
        action_names=("force_x", "force_y"),
    )


BLIND_STUDENT = ObservationSpec(names=("ball_x", "ball_y", "goal_x", "goal_y"), goal_dim=2)
"""The velocity-blind student's observation: position and goal, no velocity."""


class PointMaze(MjxGoalEnv):
    """A force-controlled ball in a maze; see the module docstring for the task."""

    def __init__(self, name: str, layout_of: str | None = None, student: ObservationSpec | None = None) -> None:
        layout, episode_length = MAZES[layout_of or name]
        self.rows = maze_map(layout)
        model = build_model(self.rows)
        spec = dataclasses.replace(_spec(name, episode_length, float(model.opt.timestep)), student=student)
        super().__init__(model, spec, n_frames=1)
        self.free_cells = cell_centres(self.rows, 0)
        self._free = jnp.asarray(self.free_cells)

    def sample_initial(self, key):
        k_goal, k_goal_noise, k_start, k_start_noise = jax.random.split(key, 4)
        noise = lambda k: jax.random.uniform(k, (2,), minval=-POSITION_NOISE, maxval=POSITION_NOISE)
        n = self._free.shape[0]
        goal = self._free[jax.random.randint(k_goal, (), 0, n)] + noise(k_goal_noise)
        far = jnp.linalg.norm(self._free - goal, axis=-1) > START_CLEARANCE * CELL
        start = self._free[jax.random.choice(k_start, n, p=far / far.sum())] + noise(k_start_noise)
        return start, jnp.zeros(2), goal

    def apply_action(self, data: mjx.Data, action: jax.Array) -> mjx.Data:
        return data.replace(ctrl=jnp.clip(action, -1.0, 1.0),
                            qvel=jnp.clip(data.qvel, -MAX_SPEED, MAX_SPEED))

    def observe(self, data, goal):
        return jnp.concatenate([data.qpos, data.qvel])

    def observe_student(self, data, goal):
        """The velocity-blind student (`point_u_maze_blind`): position, then goal."""
        return jnp.concatenate([data.qpos, goal])

    def achieved_goal(self, data):
        return data.qpos

    def show_goal(self, mj_data: mujoco.MjData, goal: np.ndarray) -> None:
        mj_data.mocap_pos[0, :2] = goal


def make_point_u_maze() -> PointMaze:
    return PointMaze("point_u_maze")


def make_point_u_maze_blind() -> PointMaze:
    return PointMaze("point_u_maze_blind", layout_of="point_u_maze", student=BLIND_STUDENT)


def make_point_medium_maze() -> PointMaze:
    return PointMaze("point_medium_maze")


def make_point_large_maze() -> PointMaze:
    return PointMaze("point_large_maze")
