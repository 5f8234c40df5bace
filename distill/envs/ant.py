"""Goal-conditioned ant and ant mazes: gymnasium's ant.xml, edited into JaxGCRL/scaling-crl's task.

Observation (29 state + 2 goal), as scaling-crl lays it out:
  [0:15]  qpos without the target's slide joints: torso xyz, torso quaternion (w, x, y, z), 8 hinges
  [15:29] qvel without the target's: torso linear (world) and angular (local) velocity, 8 hinges
  [29:31] goal = target xy; goal indices = torso xy (0, 1); success = torso xy within 0.5 m.
Episodes last 1,000 steps of 0.05 s and end early when the torso leaves z in [0.2, 1.0].
Resets: the paper's init pose (the asset's `init_qpos`) plus U(+-0.1) on qpos and 0.1 N(0, 1) on
qvel, then lifted just enough that no foot starts inside the floor. Plain `ant` draws goals on a
circle of radius 10 m around the origin (uniform angle), as JaxGCRL's ant does; the mazes start at
the layout's reset cell and draw a goal cell uniformly.
Contacts follow JaxGCRL's ant assets: feet spheres touch the floor and walls, torso and hips touch
walls only, no self-collisions. Physics notes: docs/envs_physics.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

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

TIMESTEP = 0.01
N_FRAMES = 5
EPISODE_LENGTH = 1000
SUCCESS_RADIUS = 0.5
HEALTHY_Z = (0.2, 1.0)
RESET_NOISE = 0.1
GOAL_DISTANCE = 10.0
MAZE_CELL = 4.0
MAZE_HEIGHT_SCALE = 0.5
FOOT_RADIUS = 0.08
ANKLE_GEOMS = ("left_ankle_geom", "right_ankle_geom", "third_ankle_geom", "fourth_ankle_geom")
WALL_PAIRS = 8
"""MJX broad phase: per collision group (sphere-box, capsule-box) only the nearest pairs collide."""

FLOOR_BIT, WALL_BIT = 1, 2
"""Contact bits: a geom whose contype has a bit collides with geoms whose conaffinity has it."""


def use_mjx_solver(spec: mujoco.MjSpec, timestep: float) -> None:
    """The solver settings Brax's MJX pipeline used for ant and humanoid (see envs_physics.md)."""
    opt = spec.option
    opt.timestep = timestep
    opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    opt.iterations = 1
    opt.ls_iterations = 4
    opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    spec.compiler.fusestatic = True


def add_target(spec: mujoco.MjSpec, height: float, radius: float) -> None:
    """A 1 kg sphere on two unlimited slide joints (x, y) that collides with nothing.

    It is a body with joints, not a mocap site, because the paper's observations include its
    qpos/qvel (humanoid) and its mass (humanoid body inertias)."""
    body = spec.worldbody.add_body(name="target", pos=[0.0, 0.0, height])
    for name, axis in (("target_x", [1.0, 0.0, 0.0]), ("target_y", [0.0, 1.0, 0.0])):
        body.add_joint(
            name=name, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=axis,
            limited=mujoco.mjtLimited.mjLIMITED_FALSE, armature=0.0, damping=0.0, stiffness=0.0,
        )
    body.add_geom(
        name="target", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[radius, 0.0, 0.0], mass=1.0,
        contype=0, conaffinity=0, rgba=[0.9, 0.2, 0.2, 0.5],
    )


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
            qvel += [f"{body}_{c}" for c in ("vx", "vy", "vz", "wx_local", "wy_local", "wz_local")]
        else:
            qpos.append(name)
            qvel.append(f"{name}_vel")
    return qpos, qvel


def actuator_names(model: mujoco.MjModel) -> tuple[str, ...]:
    return tuple(
        mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0])
        for a in range(model.nu)
    )


def build_ant_model(layout: MazeLayout | None) -> tuple[mujoco.MjModel, np.ndarray]:
    """The compiled model and its initial qpos (the asset's `init_qpos`, target at 0)."""
    spec = load_spec("ant.xml")
    init_qpos = spec.numeric("init_qpos")
    init = np.concatenate([np.asarray(init_qpos.data), np.zeros(2)])
    spec.delete(init_qpos)
    use_mjx_solver(spec, TIMESTEP)
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = 0, 0
    spec.geom("floor").conaffinity = FLOOR_BIT
    foot_bits = FLOOR_BIT | (WALL_BIT if layout else 0)
    for name in ANKLE_GEOMS:
        ankle = spec.geom(name)
        ankle.parent.add_geom(
            name=name.replace("ankle", "foot"), type=mujoco.mjtGeom.mjGEOM_SPHERE,
            pos=list(ankle.fromto[3:]), size=[FOOT_RADIUS, 0.0, 0.0], mass=0.0,
            contype=foot_bits, conaffinity=0,
        )
    if layout is not None:
        for name in ("torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom"):
            spec.geom(name).contype = WALL_BIT
        add_walls(spec, layout, MAZE_CELL, MAZE_HEIGHT_SCALE, contype=0, conaffinity=WALL_BIT)
        limit_geom_pairs(spec, WALL_PAIRS)
        extent = MAZE_CELL * max(layout.shape)
        spec.geom("floor").pos = [0.5 * extent, 0.5 * extent, 0.0]
        spec.geom("floor").size = [extent, extent, 40.0]
    add_target(spec, height=0.01, radius=SUCCESS_RADIUS)
    for geom in spec.geoms:
        geom.margin = 0.0
    return spec.compile(), init


def _ant_spec(name: str, model: mujoco.MjModel) -> EnvSpec:
    qpos, qvel = joint_names(model, skip=("target_x", "target_y"))
    return EnvSpec(
        name=name,
        obs_dim=len(qpos) + len(qvel),
        goal_dim=2,
        action_dim=model.nu,
        goal_indices=(0, 1),
        episode_length=EPISODE_LENGTH,
        control_dt=TIMESTEP * N_FRAMES,
        success_radius=SUCCESS_RADIUS,
        obs_names=tuple(qpos + qvel) + ("goal_x", "goal_y"),
        action_names=actuator_names(model),
    )


class Ant(MjxGoalEnv):
    """The ant on open ground (layout None) or in a maze."""

    healthy_z = HEALTHY_Z

    def __init__(self, name: str, layout: MazeLayout | None = None) -> None:
        model, init_qpos = build_ant_model(layout)
        super().__init__(model, _ant_spec(name, model), n_frames=N_FRAMES)
        self.layout = layout
        self._init_qpos = jnp.asarray(init_qpos, jnp.float32)
        self._feet = np.array([
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n.replace("ankle", "foot"))
            for n in ANKLE_GEOMS
        ])
        if layout is not None:
            self._starts = jnp.asarray(layout.positions(RESET, MAZE_CELL))
            self._goals = jnp.asarray(layout.positions(GOAL, MAZE_CELL))

    def sample_initial(self, key):
        k_q, k_v, k_start, k_goal = jax.random.split(key, 4)
        nq, nv = self.mj_model.nq, self.mj_model.nv
        noise = jax.random.uniform(k_q, (nq,), minval=-RESET_NOISE, maxval=RESET_NOISE)
        qpos = self._init_qpos + noise
        qpos = qpos.at[3:7].set(qpos[3:7] / jnp.linalg.norm(qpos[3:7]))
        qpos = qpos.at[2].add(self._floor_clearance(qpos))
        qvel = (RESET_NOISE * jax.random.normal(k_v, (nv,))).at[-2:].set(0.0)
        if self.layout is None:
            angle = 2.0 * jnp.pi * jax.random.uniform(k_goal)
            goal = GOAL_DISTANCE * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        else:
            qpos = qpos.at[:2].set(choose(k_start, self._starts))
            goal = choose(k_goal, self._goals)
        return qpos.at[-2:].set(goal), qvel, goal

    def _floor_clearance(self, qpos: jax.Array) -> jax.Array:
        """How far to lift the torso so no foot starts inside the floor.

        The paper's noise (U(+-0.1) on z, on the quaternion and on the hips) sinks a foot up to
        0.3 m into the floor in 95% of resets. Brax's spring contacts pushed it out gently;
        MuJoCo's resolve it within ~0.02 s and launch the ant past the healthy z of 1.0."""
        data = mjx.kinematics(self.mjx_model, self.make_data().replace(qpos=qpos))
        return jnp.maximum(0.0, jnp.max(FOOT_RADIUS - data.geom_xpos[self._feet, 2]))

    def observe(self, data: mjx.Data, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([data.qpos[:-2], data.qvel[:-2]])

    def achieved_goal(self, data: mjx.Data) -> jax.Array:
        return data.qpos[:2]


def make_ant() -> Ant:
    return Ant("ant")


def make_ant_u_maze(eval_far_goals: bool = False) -> Ant:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far arm of the U."""
    return Ant("ant_u_maze", layout_for("u_maze", eval_far_goals))


def make_ant_big_maze(eval_far_goals: bool = False) -> Ant:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far cells."""
    return Ant("ant_big_maze", layout_for("big_maze", eval_far_goals))


def make_ant_hardest_maze(eval_far_goals: bool = False) -> Ant:
    """The paper has no far-goal grid for this maze: `eval_far_goals=True` is refused."""
    return Ant("ant_hardest_maze", layout_for("hardest_maze", eval_far_goals))
