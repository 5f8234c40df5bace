"""The paper's humanoid tasks (`humanoid`, `humanoid_u_maze`, `humanoid_big_maze`,
`humanoid_hardest_maze`) on Brax.

Defined as scaling-crl defines them (commit 8516075, `envs/humanoid.py`, `envs/humanoid_maze.py`),
on Brax's own `humanoid.xml` edited in code: every geom collides by default (contype 1), a
`target` body last in the tree at z 1.25 on two limited slide joints (±20 m open, ±100 m in mazes)
with a contact-free 1 kg sphere of radius 0.5, a 40 x 40 floor (100 x 100 in mazes), and in mazes
one box per wall cell (2 m cells, 1 m tall).

Physics, as Brax 0.10.1 stepped it:
- `spring` (how scaling-crl trains): 10 frames; gears 350 for the 11 leg and abdomen motors and
  100 for the 6 arm motors. Time step 0.0015 s in the mazes, but **0.003 s on open ground**:
  scaling-crl sets 0.0015 there through `opt.timestep`, which Brax 0.10.1's spring ignored, so the
  open-ground humanoid takes 0.03 s per control step and the mazes 0.015 s.
- `mjx` (its MJX branch): the model's 0.003 s x 5 frames and gears (100/300/200/25); Newton,
  1 iteration, 4 line-search iterations.

Observation (268 state + 3 goal):
  [0:26]    q, the target's two slide joints included
  [26:51]   qd, likewise
  [51:171]  12 links x 10: inertia about the whole body's centre of mass (flattened 3 x 3) and
            mass. Spring uses its own inertia form (diag(I)^(1 - spring_inertia_scale), which is
            the identity for this model, plus the parallel-axis term); mjx the real inertias.
  [171:243] 12 links x 6: m / M x (velocity of the link's centre of mass), angular velocity
  [243:268] actuator forces (Brax's `actuator.to_tau` of the applied control)
  [268:271] goal = (target x, target y, 1.25); goal indices = torso xyz (0, 1, 2)
Success: torso xyz within 0.5 m of the goal. Actions in [-1, 1] scale to the ±0.4 control range.
Resets are noise-free: standing at the origin with a goal at U(1, 5) m and a uniform angle, or at
a reset cell of the maze with a uniform goal cell. Episodes last 1,000 steps and end early when the
torso leaves z in (1.0, 2.0).
"""

from __future__ import annotations

from xml.etree import ElementTree

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from distill.envs.ant import actuator_names, add_target, joint_names, set_floor_size
from distill.envs.base import EnvSpec
from distill.envs.brax_env import BraxGoalEnv, BraxPhysics, brax_asset, load_system
from distill.envs.maze import GOAL, RESET, MazeLayout, choose, layout_for, wall_elements

EPISODE_LENGTH = 1000
SUCCESS_RADIUS = 0.5
HEALTHY_Z = (1.0, 2.0)
TARGET_Z = 1.25
GOAL_DISTANCE = (1.0, 5.0)
MAZE_CELL = 2.0
MAZE_HEIGHT_SCALE = 0.5
N_FRAMES = {"spring": 10, "mjx": 5}
SPRING_TIMESTEP = {"open": 0.003, "maze": 0.0015}
MJX_TIMESTEP = 0.003
SPRING_GEARS = (350.0,) * 11 + (100.0,) * 6


def build_humanoid_system(layout: MazeLayout | None):
    """Brax's humanoid.xml edited into the task (see the module docstring), loaded by Brax."""
    root = ElementTree.parse(brax_asset("humanoid.xml")).getroot()
    root.find("default/geom").set("contype", "1")
    set_floor_size(root, *((40, 40) if layout is None else (100, 100)))
    add_target(root, z=TARGET_Z, radius=0.5, joint_range=20.0 if layout is None else 100.0)
    if layout is not None:
        wall_elements(root, layout, MAZE_CELL, MAZE_HEIGHT_SCALE)
    return load_system(root)


def _humanoid_spec(name: str, model: mujoco.MjModel, control_dt: float) -> EnvSpec:
    qpos, qvel = joint_names(model)
    links = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or f"link{b}" for b in range(1, model.nbody)]
    inertia = [
        n for b in links
        for n in [f"{b}_inertia_{r}{c}" for r in "xyz" for c in "xyz"] + [f"{b}_mass"]
    ]
    velocity = [f"{b}_{c}" for b in links for c in ("com_vx", "com_vy", "com_vz", "wx", "wy", "wz")]
    forces = [f"actuator_force_{n.removesuffix('_vel')}" for n in qvel]
    names = qpos + qvel + inertia + velocity + forces
    return EnvSpec(
        name=name,
        obs_dim=len(names),
        goal_dim=3,
        action_dim=model.nu,
        goal_indices=(0, 1, 2),
        episode_length=EPISODE_LENGTH,
        control_dt=control_dt,
        success_radius=SUCCESS_RADIUS,
        obs_names=tuple(names) + ("goal_x", "goal_y", "goal_z"),
        action_names=actuator_names(model),
    )


class Humanoid(BraxGoalEnv):
    """The humanoid on open ground (layout None) or in a maze, on a Brax pipeline."""

    healthy_z = HEALTHY_Z

    def __init__(self, name: str, layout: MazeLayout | None = None, backend: str = "spring") -> None:
        sys = build_humanoid_system(layout)
        n_frames = N_FRAMES.get(backend, 0)
        if backend == "spring":
            timestep = SPRING_TIMESTEP["open" if layout is None else "maze"]
            sys = sys.replace(actuator=sys.actuator.replace(gear=jnp.asarray(SPRING_GEARS, jnp.float32)))
        else:
            timestep = MJX_TIMESTEP
        spec = _humanoid_spec(name, sys.mj_model, timestep * n_frames)
        super().__init__(sys, spec, backend, timestep, n_frames)
        self.layout = layout
        low, high = np.asarray(self.sys.actuator.ctrl_range, np.float32).T
        self._ctrl_low, self._ctrl_span = jnp.asarray(low), jnp.asarray(high - low)
        self._init_q = jnp.asarray(self.sys.init_q, jnp.float32)
        if layout is not None:
            self._starts = jnp.asarray(layout.positions(RESET, MAZE_CELL))
            self._goals = jnp.asarray(layout.positions(GOAL, MAZE_CELL))

    def scale_action(self, action: jax.Array) -> jax.Array:
        return (jnp.clip(action, -1.0, 1.0) + 1.0) * 0.5 * self._ctrl_span + self._ctrl_low

    def sample_initial(self, key):
        k_start, k_goal, k_dist = jax.random.split(key, 3)
        qpos = self._init_q
        if self.layout is None:
            dist = jax.random.uniform(k_dist, minval=GOAL_DISTANCE[0], maxval=GOAL_DISTANCE[1])
            angle = 2.0 * jnp.pi * jax.random.uniform(k_goal)
            target = dist * jnp.stack([jnp.cos(angle), jnp.sin(angle)])
        else:
            qpos = qpos.at[:2].set(choose(k_start, self._starts))
            target = choose(k_goal, self._goals)
        goal = jnp.concatenate([target, jnp.array([TARGET_Z])])
        return qpos.at[-2:].set(target), jnp.zeros(self.mj_model.nv), goal

    def _link_inertia(self):
        """Link inertias as this backend's observation uses them (spring: its own form)."""
        inertia = self.sys.link.inertia
        if self.backend != "spring":
            return inertia
        diag = jax.vmap(jnp.diagonal)(inertia.i) ** (1 - self.sys.spring_inertia_scale)
        return inertia.replace(
            i=jax.vmap(jnp.diag)(diag), mass=inertia.mass ** (1 - self.sys.spring_mass_scale)
        )

    def observe(self, data: BraxPhysics, goal: jax.Array) -> jax.Array:
        from brax import actuator
        from brax.base import Transform

        state = data.pipeline
        inertia = self._link_inertia()
        total = jnp.sum(inertia.mass)
        x_i = state.x.vmap().do(inertia.transform)
        com = jnp.sum(inertia.mass[:, None] * x_i.pos, axis=0) / total
        about_com = x_i.replace(pos=x_i.pos - com).vmap().do(inertia)
        com_inertia = jnp.hstack([about_com.i.reshape(about_com.i.shape[0], -1), inertia.mass[:, None]])
        xd_i = Transform.create(pos=x_i.pos - state.x.pos).vmap().do(state.xd)
        com_velocity = jnp.hstack([inertia.mass[:, None] * xd_i.vel / total, xd_i.ang])
        forces = actuator.to_tau(self.sys, data.ctrl, state.q, state.qd)
        return jnp.concatenate([state.q, state.qd, com_inertia.ravel(), com_velocity.ravel(), forces])

    def achieved_goal(self, data: BraxPhysics) -> jax.Array:
        return data.pipeline.q[:3]

    def show_goal(self, mj_data: mujoco.MjData, goal: np.ndarray) -> None:
        mj_data.qpos[-2:] = goal[:2]


def make_humanoid(backend: str = "spring") -> Humanoid:
    return Humanoid("humanoid", backend=backend)


def make_humanoid_u_maze(backend: str = "spring", eval_far_goals: bool = False) -> Humanoid:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far arm of the U."""
    return Humanoid("humanoid_u_maze", layout_for("u_maze", eval_far_goals), backend)


def make_humanoid_big_maze(backend: str = "spring", eval_far_goals: bool = False) -> Humanoid:
    """`eval_far_goals=True`: the paper's evaluation grid, goals only in the far cells."""
    return Humanoid("humanoid_big_maze", layout_for("big_maze", eval_far_goals), backend)


def make_humanoid_hardest_maze(backend: str = "spring", eval_far_goals: bool = False) -> Humanoid:
    """The paper has no far-goal grid for this maze: `eval_far_goals=True` is refused."""
    return Humanoid("humanoid_hardest_maze", layout_for("hardest_maze", eval_far_goals), backend)
