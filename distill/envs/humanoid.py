"""Goal-conditioned humanoid and humanoid mazes: gymnasium's humanoid.xml in scaling-crl's task.

Observation (268 state + 3 goal), laid out as scaling-crl's humanoid (Brax "spring" backend):
  [0:26]    qpos, the target's two slide joints included (24 humanoid + 2)
  [26:51]   qvel, likewise (23 + 2)
  [51:171]  12 bodies x 10: Brax's spring "com inertia" = flattened 3x3 I + m (|p|^2 I - p p^T)
            and the mass m, where p is the body's COM minus the COM of all 12 bodies. Spring
            replaced every body inertia by the identity (spring_inertia_scale = 1), so only the
            parallel-axis term varies.
  [171:243] 12 bodies x 6: m / M * (velocity of the body's COM), then its angular velocity (world)
  [243:268] qfrc_actuator (25)
  [268:271] goal = (target x, target y, 1.25); goal indices = torso xyz (0, 1, 2)
Bodies: torso, lwaist, pelvis, right_thigh, right_shin, left_thigh, left_shin, right_upper_arm,
right_lower_arm, left_upper_arm, left_lower_arm, target (`fusestatic` folds the jointless feet into
the shins, as Brax's loader did). Success: torso xyz within 0.5 m of the goal (z goal 1.25).
Episodes: 1,000 steps of 0.015 s; they end early when the torso leaves z in [1.0, 2.0].
Resets are noise-free (the paper's reset_noise_scale is 0): standing at the origin with a goal at
U(1, 5) m and a uniform angle, or at the maze's reset cell with a uniform goal cell (2 m cells).
Actions in [-1, 1] scale to the ±0.4 control range, times gymnasium's gears (Brax spring used 350
and 100 instead; docs/envs_physics.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from distill.envs.ant import (
    FLOOR_BIT,
    WALL_BIT,
    actuator_names,
    add_target,
    joint_names,
    use_mjx_solver,
)
from distill.envs.assets import load_spec
from distill.envs.base import EnvSpec, MjxGoalEnv
from distill.envs.maze import (
    GOAL,
    RESET,
    MazeLayout,
    add_walls,
    choose,
    layout_for,
    limit_geom_pairs,
)

TIMESTEP = 0.003
N_FRAMES = 5
EPISODE_LENGTH = 1000
SUCCESS_RADIUS = 0.5
HEALTHY_Z = (1.0, 2.0)
TARGET_Z = 1.25
GOAL_DISTANCE = (1.0, 5.0)
MAZE_CELL = 2.0
MAZE_HEIGHT_SCALE = 0.5
FLOOR_GEOMS = ("right_foot", "left_foot", "right_shin1", "left_shin1")
"""The only geoms that can reach the floor while the torso is above 1.0 m (healthy): the rest of
the body stays >= 0.13 m up, so dropping their floor pairs changes nothing before termination."""
WALL_PAIRS = 8


def build_humanoid_model(layout: MazeLayout | None) -> mujoco.MjModel:
    spec = load_spec("humanoid.xml")
    use_mjx_solver(spec, TIMESTEP)
    for tendon in list(spec.tendons):
        spec.delete(tendon)
    body_geoms = [g for g in spec.geoms if g.name != "floor"]
    wall_bit = WALL_BIT if layout is not None else 0
    for geom in body_geoms:
        geom.contype = (FLOOR_BIT if geom.name in FLOOR_GEOMS else 0) | wall_bit
        geom.conaffinity = 0
    spec.geom("floor").contype, spec.geom("floor").conaffinity = 0, FLOOR_BIT
    if layout is not None:
        add_walls(spec, layout, MAZE_CELL, MAZE_HEIGHT_SCALE, contype=0, conaffinity=WALL_BIT)
        limit_geom_pairs(spec, WALL_PAIRS)
        extent = MAZE_CELL * max(layout.shape)
        spec.geom("floor").pos = [0.5 * extent, 0.5 * extent, 0.0]
        spec.geom("floor").size = [extent, extent, 0.125]
    add_target(spec, height=TARGET_Z, radius=SUCCESS_RADIUS)
    for geom in spec.geoms:
        geom.margin = 0.0
    return spec.compile()


def _humanoid_spec(name: str, model: mujoco.MjModel) -> EnvSpec:
    qpos, qvel = joint_names(model)
    bodies = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(1, model.nbody)]
    inertia = [
        n for b in bodies
        for n in [f"{b}_inertia_{r}{c}" for r in "xyz" for c in "xyz"] + [f"{b}_mass"]
    ]
    velocity = [
        f"{b}_{c}" for b in bodies for c in ("com_vx", "com_vy", "com_vz", "wx", "wy", "wz")
    ]
    forces = [f"qfrc_actuator_{n.removesuffix('_vel')}" for n in qvel]
    names = qpos + qvel + inertia + velocity + forces
    return EnvSpec(
        name=name,
        obs_dim=len(names),
        goal_dim=3,
        action_dim=model.nu,
        goal_indices=(0, 1, 2),
        episode_length=EPISODE_LENGTH,
        control_dt=TIMESTEP * N_FRAMES,
        success_radius=SUCCESS_RADIUS,
        obs_names=tuple(names) + ("goal_x", "goal_y", "goal_z"),
        action_names=actuator_names(model),
    )


class Humanoid(MjxGoalEnv):
    """The humanoid on open ground (layout None) or in a maze."""

    healthy_z = HEALTHY_Z

    def __init__(self, name: str, layout: MazeLayout | None = None) -> None:
        model = build_humanoid_model(layout)
        super().__init__(model, _humanoid_spec(name, model), n_frames=N_FRAMES)
        self.layout = layout
        self._mass = jnp.asarray(model.body_mass[1:], jnp.float32)
        self._root = np.asarray(model.body_rootid[1:])
        low, high = model.actuator_ctrlrange.T
        self._ctrl_mid = jnp.asarray(0.5 * (high + low), jnp.float32)
        self._ctrl_half = jnp.asarray(0.5 * (high - low), jnp.float32)
        if layout is not None:
            self._starts = jnp.asarray(layout.positions(RESET, MAZE_CELL))
            self._goals = jnp.asarray(layout.positions(GOAL, MAZE_CELL))

    def sample_initial(self, key):
        k_start, k_goal, k_dist = jax.random.split(key, 3)
        qpos = jnp.asarray(self.mj_model.qpos0, jnp.float32)
        if self.layout is None:
            dist = jax.random.uniform(k_dist, minval=GOAL_DISTANCE[0], maxval=GOAL_DISTANCE[1])
            angle = 2.0 * jnp.pi * jax.random.uniform(k_goal)
            target = dist * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        else:
            qpos = qpos.at[:2].set(choose(k_start, self._starts))
            target = choose(k_goal, self._goals)
        goal = jnp.concatenate([target, jnp.array([TARGET_Z])])
        return qpos.at[-2:].set(target), jnp.zeros(self.mj_model.nv), goal

    def apply_action(self, data: mjx.Data, action: jax.Array) -> mjx.Data:
        return data.replace(ctrl=self._ctrl_mid + self._ctrl_half * jnp.clip(action, -1.0, 1.0))

    def observe(self, data: mjx.Data, goal: jax.Array) -> jax.Array:
        mass = self._mass
        com_i = data.xipos[1:]
        p = com_i - jnp.sum(mass[:, None] * com_i, axis=0) / jnp.sum(mass)
        outer = p[:, :, None] * p[:, None, :]
        parallel = jnp.sum(p * p, axis=-1)[:, None, None] * jnp.eye(3) - outer
        inertia = jnp.eye(3) + mass[:, None, None] * parallel
        cinert = jnp.concatenate([inertia.reshape(-1, 9), mass[:, None]], axis=-1)
        ang, lin = data.cvel[1:, :3], data.cvel[1:, 3:]
        offset = com_i - data.subtree_com[self._root]
        com_vel = lin + jnp.cross(ang, offset)
        cvel = jnp.concatenate([mass[:, None] / jnp.sum(mass) * com_vel, ang], axis=-1)
        return jnp.concatenate([
            data.qpos, data.qvel, cinert.ravel(), cvel.ravel(), data.qfrc_actuator,
        ])

    def achieved_goal(self, data: mjx.Data) -> jax.Array:
        return data.qpos[:3]


def make_humanoid() -> Humanoid:
    return Humanoid("humanoid")


def make_humanoid_u_maze(eval_far_goals: bool = False) -> Humanoid:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far arm of the U."""
    return Humanoid("humanoid_u_maze", layout_for("u_maze", eval_far_goals))


def make_humanoid_big_maze(eval_far_goals: bool = False) -> Humanoid:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far cells."""
    return Humanoid("humanoid_big_maze", layout_for("big_maze", eval_far_goals))
