"""The goal-conditioned environment interface every env implements, whatever its physics.

An env is a pair of pure functions, `reset(key) -> EnvState` and `step(state, action) -> EnvState`,
so that `jax.vmap` batches it and `jax.jit`/`jax.lax.scan` roll it out. `step` auto-resets: when an
episode ends, the returned state already belongs to the next episode, with a freshly drawn goal
(JaxGCRL #53 never redrew it), while `done`, `success` and `dist` still describe the step that ended.

The physics is a backend behind four hooks (`init_physics`, `step_physics`, `qpos`, `qvel`):
`MjxGoalEnv` steps MuJoCo's MJX directly (the envs we train teachers in); `distill.envs.brax_env`
steps Brax's own pipelines (`spring`, `mjx`), which is what the paper's teachers were trained in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
import mujoco

with contextlib.redirect_stdout(io.StringIO()):  # mjx prints a notice when its optional warp backend is absent
    from mujoco import mjx


@dataclass(frozen=True)
class ObservationSpec:
    """One observation vector: named entries, state first and the goal's `goal_dim` entries last."""

    names: tuple[str, ...]
    goal_dim: int

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def state_dim(self) -> int:
        return self.dim - self.goal_dim


@dataclass(frozen=True)
class EnvSpec:
    """Static description of an env: what a teacher, a dataset and a robot need to agree on.

    `obs_dim`, `goal_dim` and `obs_names` describe the teacher's observation, which may hold
    privileged simulator state; `student` describes what the robot's sensors give, when that
    differs (None: the student sees what the teacher sees)."""

    name: str
    obs_dim: int
    """State dims of the observation (the part before the goal)."""
    goal_dim: int
    action_dim: int
    goal_indices: tuple[int, ...]
    """Indices into the state that hold the achieved goal, used to relabel future states as goals."""
    episode_length: int
    control_dt: float
    success_radius: float
    obs_names: tuple[str, ...]
    """One name per observation dim (state then goal), written into datasets and deploy files."""
    action_names: tuple[str, ...]
    student: ObservationSpec | None = None

    @property
    def input_dim(self) -> int:
        """The teacher's input: state followed by goal."""
        return self.obs_dim + self.goal_dim

    @property
    def teacher_observation(self) -> ObservationSpec:
        return ObservationSpec(self.obs_names, self.goal_dim)

    @property
    def student_observation(self) -> ObservationSpec:
        return self.student if self.student is not None else self.teacher_observation

    @property
    def student_input_dim(self) -> int:
        return self.student_observation.dim

    @property
    def asymmetric(self) -> bool:
        """Whether teacher and student observe different vectors."""
        return self.student is not None


@dataclass(frozen=True)
class ActionSemantics:
    """What an action in [-1, 1] means to the machine that executes it: written into deploy files
    so the robot-side controller applies the policy the way the simulator did."""

    names: tuple[str, ...]
    control_hz: float
    meaning: str = "normalised actuator command in [-1, 1] (the env's ctrl range)"
    low: float = -1.0
    high: float = 1.0
    joint_order: tuple[str, ...] = ()
    """Joints the actions drive, in action order (empty when actions are not joint targets)."""
    default_pose: tuple[float, ...] = ()
    """Joint positions (rad) that a zero action holds."""
    action_scale: float | None = None
    """Radians per unit action around the default pose."""
    kp: float | None = None
    kd: float | None = None
    torque_limits: tuple[float, ...] = ()
    """Per-joint |torque| bound (N·m) the PD output is clipped to."""
    control_law: str = ""


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class EnvState:
    """One env's state. Batched states carry a leading env axis on every leaf."""

    data: Any
    """The physics state: `mjx.Data` for MJX envs, a Brax pipeline state for Brax envs."""
    obs: jax.Array
    """State followed by goal, exactly what the teacher's actor reads."""
    student_obs: jax.Array
    """What the student reads (the robot's sensors); the same array as `obs` unless the env's
    spec declares a separate student observation."""
    goal: jax.Array
    t: jax.Array
    """Steps taken in the current episode."""
    episode: jax.Array
    """Episodes started by this env so far; tells trajectories apart for goal relabelling."""
    done: jax.Array
    """True on the step that ended an episode (the state returned is already the next one's)."""
    success: jax.Array
    """Whether the state the last action led to is within the success radius."""
    dist: jax.Array
    """Distance to the goal of the state the last action led to."""
    key: jax.Array

    def replace(self, **changes) -> EnvState:
        return dataclasses.replace(self, **changes)


class GoalEnv:
    """Shared machinery of our goal envs: metrics, early termination, auto-reset with a new goal.

    Subclasses provide the physics (four hooks) and the task (the hooks below them). Everything
    here is a pure function of its inputs, so one instance can be shared by every jit'd caller.
    """

    spec: EnvSpec
    n_frames: int
    backend: str
    """The physics pipeline: "mjx" (MuJoCo's MJX) or one of Brax's ("spring", "mjx")."""
    mj_model: mujoco.MjModel
    """The compiled MuJoCo model the physics was built from (rendering, plain-MuJoCo replays)."""
    healthy_z: tuple[float, float] | None = None
    """Torso/base height band outside which an episode ends early (the paper's ant and humanoid)."""
    obs_groups: tuple[tuple[str, int, int], ...] | None = None
    """(field, start, stop) of each field of the teacher's observation, where an env names them;
    None: `distill env info` groups the names by their stems."""
    student_obs_groups: tuple[tuple[str, int, int], ...] | None = None
    """The same for the student's observation, where the spec declares one."""
    obs_notes: Mapping[str, str] = MappingProxyType({})
    """Per observation field (of either table), what the robot must compute to fill it (units,
    frame, offsets)."""
    goal_frame: str = "world frame, the same coordinates as the achieved goal"
    """The frame the goal part of the student's observation (what the robot feeds) is in."""

    # --- physics hooks -----------------------------------------------------------------------
    def init_physics(self, qpos: jax.Array, qvel: jax.Array) -> Any:
        """The physics state at these generalized coordinates, with derived quantities computed."""
        raise NotImplementedError

    def step_physics(self, physics: Any, action: jax.Array) -> Any:
        """Applies a policy action in [-1, 1] and advances one control step (`n_frames` steps)."""
        raise NotImplementedError

    def qpos(self, physics: Any) -> jax.Array:
        raise NotImplementedError

    def qvel(self, physics: Any) -> jax.Array:
        raise NotImplementedError

    def physics_summary(self) -> str:
        """One line for `distill env info`: engine, solver, time step."""
        return self.backend

    # --- hooks -------------------------------------------------------------------------------
    def sample_initial(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Returns (qpos, qvel, goal) for a new episode."""
        raise NotImplementedError

    def observe(self, data: Any, goal: jax.Array) -> jax.Array:
        """Returns the state part of the observation (length spec.obs_dim)."""
        raise NotImplementedError

    def achieved_goal(self, data: Any) -> jax.Array:
        """The position that success is measured on (length spec.goal_dim)."""
        raise NotImplementedError

    def observe_student(self, data: Any, goal: jax.Array) -> jax.Array:
        """The student's observation (length `spec.student.dim`); only called when the spec
        declares one, so envs whose student sees what the teacher sees need not define it."""
        raise NotImplementedError(f"{self.spec.name} declares a student observation but no hook")

    def action_semantics(self) -> ActionSemantics:
        """What the robot must do with an action; envs whose actions are joint targets say so."""
        return ActionSemantics(names=self.spec.action_names, control_hz=1.0 / self.spec.control_dt)

    def is_unhealthy(self, data: Any) -> jax.Array:
        """Early termination: the root body's height outside `healthy_z`, if an env sets it."""
        if self.healthy_z is None:
            return jnp.asarray(False)
        z = self.qpos(data)[2]
        return (z < self.healthy_z[0]) | (z > self.healthy_z[1])

    # --- interface ---------------------------------------------------------------------------
    def observation(self, data: Any, goal: jax.Array) -> jax.Array:
        """State followed by goal, as the teacher's actor reads it."""
        return jnp.concatenate([self.observe(data, goal), goal])

    def observations(self, data: Any, goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(teacher's, student's) observation; one array twice when they are the same."""
        obs = self.observation(data, goal)
        return obs, (self.observe_student(data, goal) if self.spec.asymmetric else obs)

    def _start(self, key: jax.Array, episode: jax.Array) -> EnvState:
        key, init_key = jax.random.split(key)
        qpos, qvel, goal = self.sample_initial(init_key)
        data = self.init_physics(qpos, qvel)
        obs, student_obs = self.observations(data, goal)
        return EnvState(
            data=data,
            obs=obs,
            student_obs=student_obs,
            goal=goal,
            t=jnp.zeros((), jnp.int32),
            episode=episode,
            done=jnp.zeros((), bool),
            success=jnp.zeros((), jnp.float32),
            dist=jnp.linalg.norm(self.achieved_goal(data) - goal),
            key=key,
        )

    def reset(self, key: jax.Array) -> EnvState:
        return self._start(key, jnp.zeros((), jnp.int32))

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        data = self.step_physics(state.data, action)
        dist = jnp.linalg.norm(self.achieved_goal(data) - state.goal)
        success = (dist < self.spec.success_radius).astype(jnp.float32)
        t = state.t + 1
        done = (t >= self.spec.episode_length) | self.is_unhealthy(data)
        obs, student_obs = self.observations(data, state.goal)
        stepped = state.replace(
            data=data,
            obs=obs,
            student_obs=student_obs,
            t=t,
            done=done,
            success=success,
            dist=dist,
        )
        fresh = self._start(state.key, state.episode + 1)
        fresh = fresh.replace(done=done, success=success, dist=dist)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), fresh, stepped)


class MjxGoalEnv(GoalEnv):
    """An env whose physics is MuJoCo's MJX, stepped directly: our MuJoCo-native envs.

    Subclasses build an `mujoco.MjModel`, then fill in the task hooks."""

    backend = "mjx"

    def __init__(self, mj_model: mujoco.MjModel, spec: EnvSpec, n_frames: int) -> None:
        self.mj_model = mj_model
        # MJX's default device is jax.devices()[0], which in a multi-host run is process 0's.
        self.device = jax.local_devices()[0]
        self.mjx_model = mjx.put_model(mj_model, device=self.device)
        self.spec = spec
        self.n_frames = n_frames
        control_dt = float(mj_model.opt.timestep) * n_frames
        if abs(control_dt - spec.control_dt) > 1e-9:
            raise ValueError(f"{spec.name}: control_dt {spec.control_dt} != timestep x n_frames")

    def make_data(self) -> mjx.Data:
        return mjx.make_data(self.mjx_model, device=self.device)

    def apply_action(self, data: mjx.Data, action: jax.Array) -> mjx.Data:
        """Writes a policy action in [-1, 1] into the controls."""
        return data.replace(ctrl=jnp.clip(action, -1.0, 1.0))

    def init_physics(self, qpos: jax.Array, qvel: jax.Array) -> mjx.Data:
        return mjx.forward(self.mjx_model, self.make_data().replace(qpos=qpos, qvel=qvel))

    def step_physics(self, physics: mjx.Data, action: jax.Array) -> mjx.Data:
        def substep(d, _):
            return mjx.step(self.mjx_model, d), None

        data, _ = jax.lax.scan(substep, self.apply_action(physics, action), None, length=self.n_frames)
        return data

    def qpos(self, physics: mjx.Data) -> jax.Array:
        return physics.qpos

    def qvel(self, physics: mjx.Data) -> jax.Array:
        return physics.qvel

    def physics_summary(self) -> str:
        opt = self.mj_model.opt
        solver = mujoco.mjtSolver(opt.solver).name.removeprefix("mjSOL_").title()
        cone = mujoco.mjtCone(opt.cone).name.removeprefix("mjCONE_").lower()
        return (
            f"MuJoCo/MJX {mujoco.__version__}, {solver} solver, {opt.iterations} iteration(s), "
            f"{opt.ls_iterations} line-search, {cone} cone"
        )
