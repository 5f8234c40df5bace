"""DAgger: the student drives, the frozen teacher labels every visited state, data aggregates.

Round 0 is driven by the teacher; round k by a per-env, per-step Bernoulli(beta_k) mix of teacher
and student. Every visited state is labelled with the teacher's mean, log std, deterministic action
and its critic's value of that action; the rows are appended to the run's HDF5 file (committed per
round), and the student is refitted on the aggregate. Behaviour cloning is the same loop with
beta = 1 throughout, so the two compare on equal footing.

Progress is recorded in `dagger_state.json` after each round; a rerun resumes from the last
committed round (a round whose rows were committed but whose student was not yet fitted is
refitted, never collected twice).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from distill.atomic import write_text_atomic
from distill.config import from_table
from distill.data import DatasetMeta, RolloutReader, RolloutWriter
from distill.envs.base import MjxGoalEnv
from distill.errors import DistillError
from distill.rollouts import EpisodeMetrics, evaluate, first_episode_metrics, reset_batch, rollout
from distill.students.checkpoint import load_student, save_student
from distill.students.fit import fit_normalizer, fit_student
from distill.students.jax_mirror import student_apply, student_params_to_jax
from distill.students.mlp import MLPStudent, build_student
from distill.students.presets import StudentPreset, StudentTrainConfig
from distill.teachers import networks
from distill.teachers.teacher import Teacher

STATE_FILE = "dagger_state.json"
BETA_SCHEDULES = ("linear", "exponential", "constant")


@dataclass(frozen=True)
class DaggerConfig:
    rounds: int = 5
    """Rounds including round 0 (teacher-driven)."""
    envs: int = 128
    """Parallel envs collecting each round."""
    episodes_per_round: int = 1
    """Full episodes each env runs per round."""
    beta_schedule: str = "exponential"
    """How much the teacher drives round k >= 1 (round 0 is always the teacher):
    exponential beta0 * decay^k, linear beta0 * (1 - k / (rounds - 1)), constant beta0."""
    beta0: float = 1.0
    beta_decay: float = 0.5
    eval_episodes: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise DistillError(f"beta_schedule {self.beta_schedule!r}: use one of {', '.join(BETA_SCHEDULES)}")
        if self.rounds < 1 or self.envs < 1 or self.episodes_per_round < 1:
            raise DistillError("rounds, envs and episodes_per_round must be >= 1")
        if not (0.0 <= self.beta0 <= 1.0 and 0.0 <= self.beta_decay <= 1.0):
            raise DistillError(f"beta0={self.beta0}, beta_decay={self.beta_decay}: both must be in [0, 1]")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DaggerConfig:
        return from_table(cls, d, "[distill]")

    def beta(self, round_index: int) -> float:
        if round_index == 0:
            return 1.0
        if self.beta_schedule == "constant":
            return self.beta0
        if self.beta_schedule == "exponential":
            return self.beta0 * self.beta_decay ** round_index
        return self.beta0 * max(0.0, 1.0 - round_index / max(self.rounds - 1, 1))


def behaviour_cloning(cfg: DaggerConfig) -> DaggerConfig:
    """The same loop with the teacher driving every round."""
    return DaggerConfig(**{**asdict(cfg), "beta_schedule": "constant", "beta0": 1.0})


@cache
def mixed_policy(obs_dim: int):
    """The β-mixed policy for an env with `obs_dim` state dims; cached so the rollout compiles once
    for all rounds (β and both networks' weights are parameters, not constants)."""

    def policy(params, obs, key):
        return _mixed_action(params, obs, key, obs_dim)

    return policy


def _mixed_action(params, obs, key, obs_dim: int):
    """Teacher labels every state; a Bernoulli(beta) per env decides who acts."""
    actor, critic, student, beta = params["actor"], params["critic"], params["student"], params["beta"]
    mean, log_std = networks.actor_dist(actor, obs)
    teacher_action = jnp.tanh(mean)
    student_action = student_apply(student, obs)
    use_teacher = jax.random.uniform(key, (obs.shape[0],)) < beta
    action = jnp.where(use_teacher[:, None], teacher_action, student_action)
    q = networks.critic_value(critic, obs[:, :obs_dim], teacher_action, obs[:, obs_dim:])
    extras = {"teacher_mean": mean, "teacher_log_std": log_std, "teacher_action": teacher_action,
              "critic_value": q, "used_teacher": use_teacher}
    return action, extras


def _policy_params(teacher: Teacher, student: MLPStudent, beta: float) -> dict[str, Any]:
    return {
        "actor": teacher.actor_params, "critic": teacher.critic_params,
        "student": student_params_to_jax(student), "beta": jnp.asarray(beta, jnp.float32),
    }


def collect_round(
    env: MjxGoalEnv, teacher: Teacher, student: MLPStudent, beta: float, cfg: DaggerConfig, round_index: int,
) -> tuple[dict[str, np.ndarray], EpisodeMetrics]:
    """One round of labelled rows, flattened to [rows, ...] in time-major order."""
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), round_index)
    k_reset, k_roll = jax.random.split(key)
    state = reset_batch(env, k_reset, cfg.envs)
    steps_n = env.spec.episode_length * cfg.episodes_per_round
    _, steps = rollout(env, mixed_policy(teacher.arch.obs_dim), steps_n, _policy_params(teacher, student, beta), state, k_roll)
    steps = jax.device_get(steps)
    behaviour = first_episode_metrics(steps, env.spec.episode_length)
    T, N = steps.t.shape
    env_ids = np.broadcast_to(np.arange(N), (T, N))
    episode = (round_index * N + env_ids).astype(np.int64) * 1_000_000 + np.asarray(steps.episode, np.int64)
    flat = lambda x: np.asarray(x).reshape((T * N,) + np.asarray(x).shape[2:])
    columns = {
        "obs": flat(steps.obs), "goal": flat(steps.goal),
        "teacher_action": flat(steps.extras["teacher_action"]),
        "teacher_mean": flat(steps.extras["teacher_mean"]),
        "teacher_log_std": flat(steps.extras["teacher_log_std"]),
        "behavior_action": flat(steps.action), "critic_value": flat(steps.extras["critic_value"]),
        "episode": flat(episode), "t": flat(steps.t), "done": flat(steps.done),
        "success": flat(steps.success).astype(bool),
    }
    bad = ~np.isfinite(columns["obs"]).all(1)
    if bad.any():
        raise DistillError(f"round {round_index}: {int(bad.sum())} non-finite observations from env "
                           f"{env.spec.name}; the simulation diverged")
    return columns, behaviour


@partial(jax.jit, static_argnums=(4,))
def _critic_gap(critic, obs, teacher_action, student_action, obs_dim: int):
    s, g = obs[:, :obs_dim], obs[:, obs_dim:]
    return networks.critic_value(critic, s, teacher_action, g) - networks.critic_value(critic, s, student_action, g)


def critic_gap(teacher: Teacher, student: MLPStudent, obs: np.ndarray, teacher_action: np.ndarray) -> float:
    """Mean Q(s, a_teacher, g) - Q(s, a_student, g) under the frozen critic."""
    student_action = student_apply(student_params_to_jax(student), jnp.asarray(obs))
    gap = _critic_gap(teacher.critic_params, jnp.asarray(obs), jnp.asarray(teacher_action), student_action,
                      teacher.arch.obs_dim)
    return float(jnp.mean(gap))


def evaluation_key(cfg: DaggerConfig) -> jax.Array:
    """One key for every evaluation of a run, so teacher, students and exported variants all face
    the same goals."""
    return jax.random.PRNGKey(cfg.seed + 10_000)


def evaluate_student(env: MjxGoalEnv, student: MLPStudent, key: jax.Array, episodes: int) -> EpisodeMetrics:
    return evaluate(env, student_apply, student_params_to_jax(student), key, episodes)


def evaluate_teacher(env: MjxGoalEnv, teacher: Teacher, key: jax.Array, episodes: int) -> EpisodeMetrics:
    return evaluate(env, networks.actor_act, teacher.actor_params, key, episodes)


@dataclass(frozen=True)
class DaggerResult:
    student: MLPStudent
    rounds: list[dict[str, Any]]
    teacher_metrics: EpisodeMetrics
    dataset: Path
    student_dir: Path


def _fit_round(preset, train_cfg, spec, obs, target, seed) -> tuple[MLPStudent, dict[str, Any]]:
    mean, std = fit_normalizer(obs)
    student = build_student(preset, spec.input_dim, spec.action_dim, mean, std, seed=seed)
    fit = fit_student(student, obs, target, train_cfg, seed=seed, progress=True)
    return student, fit


def run_dagger(
    env: MjxGoalEnv, teacher: Teacher, preset: StudentPreset, train_cfg: StudentTrainConfig,
    cfg: DaggerConfig, dataset_path: Path, student_dir: Path, lineage: dict[str, Any],
    log=print,
) -> DaggerResult:
    spec = env.spec
    if (teacher.arch.obs_dim, teacher.arch.goal_dim, teacher.arch.action_dim) != (
            spec.obs_dim, spec.goal_dim, spec.action_dim):
        raise DistillError(f"teacher {teacher.name} dims ({teacher.arch.obs_dim}+{teacher.arch.goal_dim} -> "
                           f"{teacher.arch.action_dim}) do not match env {spec.name} "
                           f"({spec.obs_dim}+{spec.goal_dim} -> {spec.action_dim})")
    student_dir.mkdir(parents=True, exist_ok=True)
    meta = DatasetMeta.from_env_spec(
        spec, teacher_name=teacher.name, teacher_sha256=teacher.weights_sha256 or "random-init",
        env_config={"name": spec.name, "episode_length": spec.episode_length, "control_dt": spec.control_dt,
                    "success_radius": spec.success_radius, "goal_indices": list(spec.goal_indices)},
        lineage=lineage,
    )
    state_path = student_dir / STATE_FILE
    progress = json.loads(state_path.read_text()) if state_path.is_file() else {"rounds": []}
    if progress.get("config") not in (None, asdict(cfg)):
        raise DistillError(f"{state_path}: this run was started with another [distill] config; "
                           "use a new --run name or delete the run folder")
    done_rounds: list[dict[str, Any]] = progress["rounds"]
    writer = RolloutWriter.create(dataset_path, meta) if not dataset_path.exists() else \
        RolloutWriter.open(dataset_path, expect_meta=meta)
    writer.close()

    eval_key = evaluation_key(cfg)
    teacher_metrics = evaluate_teacher(env, teacher, eval_key, cfg.eval_episodes)
    log(f"teacher {teacher.name}: success {teacher_metrics.success:.3f}, time at goal "
        f"{teacher_metrics.time_at_goal:.1f}/{spec.episode_length}, final-step success "
        f"{teacher_metrics.final_success:.3f}")

    if done_rounds:
        student = load_student(student_dir / "student")
        log(f"resuming {student_dir.name} after round {done_rounds[-1]['round']}")
    else:
        student = build_student(preset, spec.input_dim, spec.action_dim, seed=cfg.seed)
    for k in range(len(done_rounds), cfg.rounds):
        beta = cfg.beta(k)
        t0 = time.perf_counter()
        reader = RolloutReader(dataset_path)
        behaviour = None
        if k not in reader.committed_rounds:
            columns, behaviour = collect_round(env, teacher, student, beta, cfg, k)
            with RolloutWriter.open(dataset_path, expect_meta=meta) as w:
                w.append_round(k, columns)
            reader = RolloutReader(dataset_path)
        data = reader.read(("obs", "teacher_action"))
        this_round = reader.read(("obs", "teacher_action"), rounds=[k])
        student, fit = _fit_round(preset, train_cfg, spec, data["obs"], data["teacher_action"], cfg.seed + k)
        metrics = evaluate_student(env, student, eval_key, cfg.eval_episodes)
        gap = critic_gap(teacher, student, this_round["obs"], this_round["teacher_action"])
        save_student(student, student_dir / "student", metadata={"round": k, "teacher": teacher.name})
        record = {
            "round": k, "beta": beta, "rows": int(reader.committed_rows),
            "student": metrics.as_dict(), "critic_gap": gap, "fit_loss": fit["loss_final"],
            "behaviour_success": behaviour.success if behaviour else None,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        done_rounds.append(record)
        write_text_atomic(state_path, json.dumps({"config": asdict(cfg), "rounds": done_rounds}, indent=1))
        log(f"round {k}: beta {beta:.2f}, {record['rows']} rows, student success {metrics.success:.3f}, "
            f"time at goal {metrics.time_at_goal:.1f}, final-step {metrics.final_success:.3f}, "
            f"critic gap {gap:.4f}, fit loss {fit['loss_final']:.2e} ({record['seconds']} s)")
    return DaggerResult(student=student, rounds=done_rounds, teacher_metrics=teacher_metrics,
                        dataset=dataset_path, student_dir=student_dir)


def rows_per_round(env: MjxGoalEnv, cfg: DaggerConfig) -> int:
    return cfg.envs * env.spec.episode_length * cfg.episodes_per_round
