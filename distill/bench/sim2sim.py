"""Sim2sim: an exported ONNX policy in plain MuJoCo (the C engine, through the `mujoco` package), one
env at a time, stepped as a robot-side controller steps its robot: read the sensors, run the policy
(ONNX Runtime, its state carried by `OnnxPolicy`), write the command, let the physics run one control
period (`n_frames` physics steps), repeat.

The twin reuses the env's own definitions rather than a second copy of them: the compiled `mj_model`
(same MJCF, solver and contacts as MJX is given), `sample_initial` for the start state and goal (from
the same keys the MJX evaluation splits, so the goals are the same), and the observation, goal,
health and actuation hooks, which read fields (`qpos`, `qvel`, `ctrl`, ...) that `mujoco.MjData`
holds too. The hooks are jnp code written for `mjx.Data`; here they run on a `FieldView` of the
MjData fields they read (found by running them once), jit-compiled once per env. Differences between
the two engines (MJX's collision and solver implementations, float32 against float64) are what this
measures.

The same perturbations as in MJX apply (`distill.robust.NumpyPerturbation`, noise seeded from the
evaluation key), so a student trained with noise and delay meets them here too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from distill import robust
from distill.bench.onnx_success import key_seed, run_onnx_episodes
from distill.envs.base import MjxGoalEnv
from distill.errors import DistillError
from distill.export.stepper import OnnxPolicy
from distill.progress import progress_bar
from distill.rollouts import EpisodeMetrics, episode_metrics

MATRIX_FIELDS = frozenset({"xmat", "ximat", "geom_xmat", "site_xmat", "cam_xmat", "light_xmat"})
"""Rotation matrices: MjData stores them flat (n, 9), MJX as (n, 3, 3)."""


def _read_field(data: mujoco.MjData, name: str) -> np.ndarray:
    try:
        value = np.array(getattr(data, name))
    except AttributeError:
        raise DistillError(f"the env's hooks read data.{name}, which mujoco.MjData does not have; this env cannot "
                           "run in plain MuJoCo") from None
    return value.reshape(-1, 3, 3) if name in MATRIX_FIELDS else value


class FieldView:
    """What the env's hooks see in place of `mjx.Data`: named arrays, `replace` for the actuation
    hook. Probing (with `source` set) reads fields from an MjData on demand and records them."""

    def __init__(self, fields: dict[str, Any], source: mujoco.MjData | None = None,
                 replaced: frozenset[str] = frozenset()) -> None:
        object.__setattr__(self, "_fields", dict(fields))
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "replaced", replaced)

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name not in fields:
            source = object.__getattribute__(self, "_source")
            if source is None or name.startswith("_"):
                raise AttributeError(f"data.{name} was not read when the hooks were probed")
            fields[name] = _read_field(source, name)
        return fields[name]

    def replace(self, **changes: Any) -> FieldView:
        return FieldView({**self._fields, **changes}, self._source, self.replaced | frozenset(changes))

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self._fields)


class MujocoTwin:
    """One env of `env`'s task in plain MuJoCo."""

    def __init__(self, env: MjxGoalEnv) -> None:
        if not isinstance(env, MjxGoalEnv):
            raise DistillError(f"{env.spec.name} steps through Brax's {env.backend} pipeline, whose hooks do not "
                               "read MjData: plain MuJoCo replays the MuJoCo-native envs (reacher, point mazes, Go2)")
        self.env = env
        self.model = env.mj_model
        self.data = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, self.data)
        probe = FieldView({}, self.data)
        goal = np.zeros(env.spec.goal_dim, np.float32)
        env.observations(probe, goal)
        env.achieved_goal(probe)
        env.is_unhealthy(probe)
        self.sensed = tuple(sorted(probe.fields))
        acted = env.apply_action(FieldView({}, self.data), np.zeros(env.spec.action_dim, np.float32))
        self.actuated_in = tuple(sorted(acted.fields))
        self.written = tuple(sorted(acted.replaced))
        unknown = [n for n in self.written if not hasattr(self.data, n)]
        if unknown:
            raise DistillError(f"{env.spec.name}'s actuation writes {unknown}, which mujoco.MjData does not have")

        def sense(fields, goal):
            view = FieldView(fields)
            student = env.observations(view, goal)[1]
            return student, env.achieved_goal(view), jnp.asarray(env.is_unhealthy(view))

        def actuate(fields, action):
            view = env.apply_action(FieldView(fields), action)
            return {n: getattr(view, n) for n in self.written}

        self._sense, self._actuate = jax.jit(sense), jax.jit(actuate)

    def reset(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def sense(self, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """(student observation, achieved goal, unhealthy) of the current state."""
        fields = {n: _read_field(self.data, n) for n in self.sensed}
        student, achieved, unhealthy = self._sense(fields, goal)
        return np.asarray(student, np.float32), np.asarray(achieved), bool(unhealthy)

    def step(self, action: np.ndarray) -> None:
        """Writes the command as the env's actuation hook does, then one control period of physics."""
        fields = {n: _read_field(self.data, n) for n in self.actuated_in}
        for name, value in self._actuate(fields, np.asarray(action, np.float32)).items():
            target = getattr(self.data, name)
            target[...] = np.asarray(value, np.float64).reshape(target.shape)
        for _ in range(self.env.n_frames):
            mujoco.mj_step(self.model, self.data)


def initial_states(env: MjxGoalEnv, key: jax.Array, episodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(qpos, qvel, goal) of each episode, exactly as `rollouts.reset_batch` draws them from the key
    an evaluation resets with (`MjxGoalEnv.reset` splits its key, then samples from the second half)."""
    k_reset, _ = jax.random.split(key)
    keys = jax.random.split(k_reset, episodes)
    qpos, qvel, goal = jax.vmap(lambda k: env.sample_initial(jax.random.split(k)[1]))(keys)
    return np.asarray(qpos), np.asarray(qvel), np.asarray(goal, np.float32)


@dataclass(frozen=True)
class EngineRun:
    """Per-step records [episode_length, episodes] of one engine's evaluation."""

    done: np.ndarray
    success: np.ndarray
    dist: np.ndarray
    steps_per_s: float = 0.0

    def metrics(self, episode_length: int) -> EpisodeMetrics:
        return episode_metrics(self.done, self.success, self.dist, episode_length)


def run_mujoco(env: MjxGoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int,
               perturbation: robust.Perturbation = robust.NONE, progress: bool = True) -> EngineRun:
    """`episodes` episodes of the file in plain MuJoCo, one after the other, from the evaluation's starts."""
    twin = MujocoTwin(env)
    policy = OnnxPolicy(onnx_path, batch=1)
    spec = env.spec
    if (policy.step_dim, policy.action_dim) != (spec.student_input_dim, spec.action_dim):
        raise DistillError(f"{onnx_path} reads {policy.step_dim} and acts in {policy.action_dim}; env {spec.name}'s "
                           f"student reads {spec.student_input_dim} and acts in {spec.action_dim}")
    qpos, qvel, goals = initial_states(env, key, episodes)
    _, k_roll = jax.random.split(key)
    robot = robust.NumpyPerturbation(perturbation, 1, policy.step_dim, policy.action_dim, key_seed(k_roll))
    length = spec.episode_length
    done = np.zeros((length, episodes), bool)
    success = np.zeros((length, episodes), np.float32)
    dist = np.zeros((length, episodes), np.float32)
    steps, t0 = 0, time.perf_counter()
    for e in progress_bar(range(episodes), f"MuJoCo x ONNX {Path(onnx_path).name}", enabled=progress,
                          unit="episode", leave=False):
        twin.reset(qpos[e], qvel[e])
        policy.reset()
        robot.reset(np.ones(1, bool))
        obs, _, _ = twin.sense(goals[e])
        for t in range(length):
            seen = robot.perceive(obs[None]) if perturbation.active else obs[None]
            twin.step(robot.actuate(policy.act(seen))[0])
            obs, achieved, unhealthy = twin.sense(goals[e])
            dist[t, e] = np.linalg.norm(achieved - goals[e])
            success[t, e] = dist[t, e] < spec.success_radius
            done[t, e] = t + 1 >= length or unhealthy
            steps += 1
            if done[t, e]:
                break
    return EngineRun(done, success, dist, steps / max(time.perf_counter() - t0, 1e-9))


@dataclass(frozen=True)
class Sim2Sim:
    """One file on the same goals in both engines, with the paired difference's sampling error."""

    mjx: EpisodeMetrics
    mujoco: EpisodeMetrics
    time_at_goal_diff: float
    """MuJoCo − MJX, steps per episode."""
    time_at_goal_se: float
    """Standard error of that mean difference over the (paired) episodes."""
    final_success_diff: float
    final_success_se: float
    mujoco_steps_per_s: float

    @property
    def within_sampling_error(self) -> bool:
        """Both differences within 3 standard errors (or a small floor where both engines agree on
        almost every episode and the error is ~0)."""
        return (abs(self.time_at_goal_diff) <= 3 * self.time_at_goal_se + 0.5
                and abs(self.final_success_diff) <= 3 * self.final_success_se + 0.02)


def _per_episode(run: EngineRun) -> tuple[np.ndarray, np.ndarray]:
    """Each episode's time at goal and final-step success (its first episode, as `episode_metrics`)."""
    ended_before = np.concatenate([np.zeros_like(run.done[:1]), np.cumsum(run.done, 0)[:-1] > 0], 0)
    alive = ~ended_before
    last = np.maximum(alive.sum(0) - 1, 0)
    return (run.success * alive).sum(0), run.success[last, np.arange(run.done.shape[1])]


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def compare_engines(env: MjxGoalEnv, onnx_path: str | Path, key: jax.Array, episodes: int,
                    perturbation: robust.Perturbation = robust.NONE, progress: bool = True,
                    mjx: EngineRun | None = None, batch: int | None = None) -> Sim2Sim:
    """The file in MJX (`batch` envs at a time, `distill.bench.onnx_success`; or `mjx`, already run)
    and in plain MuJoCo, same starts, goals and perturbation settings."""
    length = env.spec.episode_length
    if mjx is None:
        mjx = EngineRun(*run_onnx_episodes(env, onnx_path, key, episodes, progress, perturbation, batch))
    plain = run_mujoco(env, onnx_path, key, episodes, perturbation, progress)
    (t_mjx, f_mjx), (t_mj, f_mj) = _per_episode(mjx), _per_episode(plain)
    dt, se_t = _paired(t_mjx, t_mj)
    df, se_f = _paired(f_mjx, f_mj)
    return Sim2Sim(mjx.metrics(length), plain.metrics(length), dt, se_t, df, se_f, plain.steps_per_s)


def supports_plain_mujoco(env: MjxGoalEnv) -> str | None:
    """None when the env's hooks run on MjData fields (every MuJoCo-native env), else why not."""
    try:
        MujocoTwin(env)
    except DistillError as exc:
        return str(exc)
    except (AttributeError, TypeError, ValueError, NotImplementedError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
