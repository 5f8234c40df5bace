"""Goal-conditioned reacher: gymnasium's 2-link arm, observed as scaling-crl's reacher.

Observation (10 state + 3 goal), as scaling-crl/JaxGCRL lay it out:
  [0:2]  cos(joint angles)     [2:4] sin(joint angles)
  [4:7]  fingertip position    [7:10] fingertip velocity
  [10:13] target position (goal); goal indices = fingertip position [4:7]
`reacher_egocentric` is the same task with a student that sees only what the arm's own sensors
and a camera on the fingertip would give: joint angles (cos, sin) and velocities, and the target
relative to the fingertip (8 dims: [0:4] cos/sin, [4:6] joint velocities, [6:8] target − tip in
x, y). Its teacher observation is the reacher's, so a reacher teacher labels it.
Physics: gymnasium's reacher.xml (RK4, 0.01 s, gear 200) with 2 frames per control step, the
settings Brax's generalized/MJX pipeline used; scaling-crl's "spring" runs used 0.005 s x 4 frames
and gear 25, so absolute torques differ while the task and observation are the same.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from mujoco import mjx

from distill.envs.assets import load_spec
from distill.envs.base import EnvSpec, MjxGoalEnv, ObservationSpec

LINK0 = 0.1
TIP_FROM_ELBOW = 0.11
ARM_HEIGHT = 0.01
TARGET_RADIUS = 0.2

SPEC = EnvSpec(
    name="reacher",
    obs_dim=10,
    goal_dim=3,
    action_dim=2,
    goal_indices=(4, 5, 6),
    episode_length=50,
    control_dt=0.02,
    success_radius=0.05,
    obs_names=(
        "cos_joint0", "cos_joint1", "sin_joint0", "sin_joint1",
        "tip_x", "tip_y", "tip_z", "tip_vx", "tip_vy", "tip_vz",
        "goal_x", "goal_y", "goal_z",
    ),
    action_names=("joint0_torque", "joint1_torque"),
)


EGOCENTRIC_SPEC = dataclasses.replace(
    SPEC,
    name="reacher_egocentric",
    student=ObservationSpec(
        names=("cos_joint0", "cos_joint1", "sin_joint0", "sin_joint1", "joint0_vel", "joint1_vel",
               "goal_rel_x", "goal_rel_y"),
        goal_dim=2,
    ),
)


class Reacher(MjxGoalEnv):
    def __init__(self, spec: EnvSpec = SPEC) -> None:
        super().__init__(load_spec("reacher.xml").compile(), spec, n_frames=2)

    def sample_initial(self, key):
        k_q, k_qd, k_r, k_a = jax.random.split(key, 4)
        qpos = jnp.asarray(self.mj_model.qpos0) + jax.random.uniform(k_q, (4,), minval=-0.1, maxval=0.1)
        radius = TARGET_RADIUS * jax.random.uniform(k_r)
        angle = 2.0 * jnp.pi * jax.random.uniform(k_a)
        target = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)])
        qpos = qpos.at[2:].set(target)
        qvel = jnp.zeros(4).at[:2].set(jax.random.uniform(k_qd, (2,), minval=-0.005, maxval=0.005))
        goal = jnp.concatenate([target, jnp.array([ARM_HEIGHT])])
        return qpos, qvel, goal

    def _tip(self, data: mjx.Data) -> tuple[jax.Array, jax.Array]:
        """Fingertip position and velocity of the planar 2-link chain, in closed form."""
        q0, q1 = data.qpos[0], data.qpos[1]
        w0, w1 = data.qvel[0], data.qvel[1]
        a, b = q0, q0 + q1
        pos = jnp.stack([
            LINK0 * jnp.cos(a) + TIP_FROM_ELBOW * jnp.cos(b),
            LINK0 * jnp.sin(a) + TIP_FROM_ELBOW * jnp.sin(b),
            jnp.asarray(ARM_HEIGHT),
        ])
        vel = jnp.stack([
            -LINK0 * jnp.sin(a) * w0 - TIP_FROM_ELBOW * jnp.sin(b) * (w0 + w1),
            LINK0 * jnp.cos(a) * w0 + TIP_FROM_ELBOW * jnp.cos(b) * (w0 + w1),
            jnp.asarray(0.0),
        ])
        return pos, vel

    def observe(self, data, goal):
        theta = data.qpos[:2]
        pos, vel = self._tip(data)
        return jnp.concatenate([jnp.cos(theta), jnp.sin(theta), pos, vel])

    def achieved_goal(self, data):
        return self._tip(data)[0]

    def observe_student(self, data, goal):
        theta = data.qpos[:2]
        rel = goal[:2] - self._tip(data)[0][:2]
        return jnp.concatenate([jnp.cos(theta), jnp.sin(theta), data.qvel[:2], rel])


def make_reacher_egocentric() -> Reacher:
    return Reacher(EGOCENTRIC_SPEC)
