"""The paper's ant tasks (`ant`, `ant_u_maze`, `ant_big_maze`, `ant_hardest_maze`) on Brax.

Defined as scaling-crl defines them (commit 8516075, `envs/ant.py`, `envs/ant_maze.py`, with the
arguments its `train.py` passes), on Brax's own `ant.xml` edited in code:
- a `target` body last in the tree, on two limited slide joints (x, y; ±20 m on open ground,
  ±100 m in mazes), holding a contact-free 1 kg sphere of radius 0.9 at z 0.01;
- mazes: a 100 x 100 floor, torso, hip and foot geoms that walls collide with, one box per wall
  cell (4 m cells, 2 m tall), and the start cell in `init_qpos`.
Physics: Brax `spring` at 0.005 s x 10 frames (how scaling-crl trains), or Brax `mjx` (its MJX
branch) at the model's 0.01 s x 5 frames with Newton, 1 iteration, 4 line-search iterations.
Both are 0.05 s per control step.

Observation (29 state + 2 goal):
  [0:15]  q without the target's slide joints: torso xyz, torso quaternion (w, x, y, z), 8 hinges
  [15:29] qd without the target's: torso linear and angular velocity, 8 hinges
  [29:31] goal = target xy; goal indices = torso xy (0, 1); success = torso xy within 0.5 m.
Resets: `init_q + U(±0.1)` on every coordinate (the quaternion is not renormalised, as upstream),
`qd = 0.1 N(0, 1)`, the target's coordinates set to the goal and its velocity to 0. Open-ground
goals lie on a circle of radius 10 m (uniform angle); maze goals are uniform over goal cells.
Episodes last 1,000 steps and end early when the torso leaves z in (0.2, 1.0).
"""

from __future__ import annotations

from xml.etree import ElementTree

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from distill.envs.base import EnvSpec
from distill.envs.brax_env import BraxGoalEnv, BraxPhysics, brax_asset, load_system
from distill.envs.maze import GOAL, RESET, MazeLayout, choose, layout_for, wall_elements

EPISODE_LENGTH = 1000
SUCCESS_RADIUS = 0.5
HEALTHY_Z = (0.2, 1.0)
RESET_NOISE = 0.1
GOAL_DISTANCE = 10.0
MAZE_CELL = 4.0
MAZE_HEIGHT_SCALE = 0.5
PHYSICS = {"spring": (0.005, 10), "mjx": (0.01, 5)}
"""(time step, frames per control step) as Brax 0.10.1 stepped each backend."""
BODY_GEOMS = ("torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom",
              "left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom")


def add_target(root: ElementTree.Element, z: float, radius: float, joint_range: float) -> None:
    """The goal marker: last body of the tree, so its link is the last one (`x.pos[-1]`)."""
    worldbody = root.find("worldbody")
    body = ElementTree.SubElement(worldbody, "body", name="target", pos=f"0 0 {z}")
    for name, axis in (("target_x", "1 0 0"), ("target_y", "0 1 0")):
        ElementTree.SubElement(
            body, "joint", name=name, type="slide", axis=axis, pos="0 0 0", limited="true",
            range=f"{-joint_range} {joint_range}", armature="0", damping="0", stiffness="0",
        )
    ElementTree.SubElement(
        body, "geom", name="target", type="sphere", size=f"{radius}", pos="0 0 0", mass="1",
        contype="0", conaffinity="0", rgba="0.9 0.2 0.2 0.5",
    )


def set_floor_size(root: ElementTree.Element, half_x: float, half_y: float) -> None:
    floor = root.find(".//geom[@name='floor']")
    floor.set("size", " ".join([f"{half_x:g}", f"{half_y:g}", floor.get("size").split()[2]]))


def build_ant_system(layout: MazeLayout | None):
    """Brax's ant.xml edited into the task (see the module docstring), loaded by Brax."""
    root = ElementTree.parse(brax_asset("ant.xml")).getroot()
    init = root.find(".//numeric[@name='init_qpos']")
    qpos = init.get("data").split()
    if layout is not None:
        start = layout.positions(RESET, MAZE_CELL)[0]
        qpos[:2] = [f"{start[0]:g}", f"{start[1]:g}"]
        set_floor_size(root, 100, 100)
        for name in BODY_GEOMS:
            root.find(f".//geom[@name='{name}']").set("conaffinity", "1")
    init.set("data", " ".join(qpos + ["0", "0"]))
    add_target(root, z=0.01, radius=0.9, joint_range=20.0 if layout is None else 100.0)
    if layout is not None:
        wall_elements(root, layout, MAZE_CELL, MAZE_HEIGHT_SCALE)
    return load_system(root)


def joint_names(model: mujoco.MjModel, skip: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Names for each qpos and qvel entry, free joints spelled out per coordinate."""
    qpos, qvel = [], []
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        if name in skip:
            continue
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, model.jnt_bodyid[j])
            qpos += [f"{body}_{c}" for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]
            qvel += [f"{body}_{c}" for c in ("vx", "vy", "vz", "wx", "wy", "wz")]
        else:
            qpos.append(name)
            qvel.append(f"{name}_vel")
    return qpos, qvel


def actuator_names(model: mujoco.MjModel) -> tuple[str, ...]:
    return tuple(
        mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0])
        for a in range(model.nu)
    )


def _ant_spec(name: str, model: mujoco.MjModel, control_dt: float) -> EnvSpec:
    qpos, qvel = joint_names(model, skip=("target_x", "target_y"))
    return EnvSpec(
        name=name,
        obs_dim=len(qpos) + len(qvel),
        goal_dim=2,
        action_dim=model.nu,
        goal_indices=(0, 1),
        episode_length=EPISODE_LENGTH,
        control_dt=control_dt,
        success_radius=SUCCESS_RADIUS,
        obs_names=tuple(qpos + qvel) + ("goal_x", "goal_y"),
        action_names=actuator_names(model),
    )


class Ant(BraxGoalEnv):
    """The ant on open ground (layout None) or in a maze, on a Brax pipeline."""

    healthy_z = HEALTHY_Z

    def __init__(self, name: str, layout: MazeLayout | None = None, backend: str = "spring") -> None:
        sys = build_ant_system(layout)
        timestep, n_frames = PHYSICS.get(backend, (0.0, 0))
        spec = _ant_spec(name, sys.mj_model, timestep * n_frames)
        super().__init__(sys, spec, backend, timestep, n_frames)
        self.layout = layout
        self._init_q = jnp.asarray(self.sys.init_q, jnp.float32)
        if layout is not None:
            self._goals = jnp.asarray(layout.positions(GOAL, MAZE_CELL))

    def sample_initial(self, key):
        k_q, k_v, k_goal = jax.random.split(key, 3)
        nq, nv = self._init_q.shape[0], self.mj_model.nv
        qpos = self._init_q + jax.random.uniform(k_q, (nq,), minval=-RESET_NOISE, maxval=RESET_NOISE)
        qvel = (RESET_NOISE * jax.random.normal(k_v, (nv,))).at[-2:].set(0.0)
        if self.layout is None:
            angle = 2.0 * jnp.pi * jax.random.uniform(k_goal)
            goal = GOAL_DISTANCE * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        else:
            goal = choose(k_goal, self._goals)
        return qpos.at[-2:].set(goal), qvel, goal

    def observe(self, data: BraxPhysics, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([data.pipeline.q[:-2], data.pipeline.qd[:-2]])

    def achieved_goal(self, data: BraxPhysics) -> jax.Array:
        return data.pipeline.q[:2]

    def show_goal(self, mj_data: mujoco.MjData, goal: np.ndarray) -> None:
        mj_data.qpos[-2:] = goal[:2]


def make_ant(backend: str = "spring") -> Ant:
    return Ant("ant", backend=backend)


def make_ant_u_maze(backend: str = "spring", eval_far_goals: bool = False) -> Ant:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far arm of the U."""
    return Ant("ant_u_maze", layout_for("u_maze", eval_far_goals, "ant"), backend)


def make_ant_big_maze(backend: str = "spring", eval_far_goals: bool = False) -> Ant:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far cells."""
    return Ant("ant_big_maze", layout_for("big_maze", eval_far_goals, "ant"), backend)


def make_ant_hardest_maze(backend: str = "spring", eval_far_goals: bool = False) -> Ant:
    """The paper has no far-goal grid for this maze: `eval_far_goals=True` is refused."""
    return Ant("ant_hardest_maze", layout_for("hardest_maze", eval_far_goals, "ant"), backend)
