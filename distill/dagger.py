"""DAgger: the student drives, the frozen teacher labels every visited state, data aggregates.

Round 0 is driven by the teacher; round k by a per-env, per-step Bernoulli(beta_k) mix of teacher
and student. Every visited state is labelled with the teacher's mean, log std, deterministic action
and its critic's value of that action; the rows are appended to the run's HDF5 file (committed per
round), and the student is refitted: by default a bounded warm start from the previous round's
student (`refit`), or a fresh fit on the aggregate. Behaviour cloning is the same loop with
beta = 1 throughout, so the two compare on equal footing.

Every rollout of a run (collection, evaluation, held-out states) steps `envs` envs at a time (or
`eval_envs` in evaluation) through the env's one compiled step (`rollouts.stepwise_rollout`).

The teacher reads its own observation (which may hold privileged state) and the student its own;
the dataset stores the student's as `obs` and the teacher's as `teacher_obs` where they differ.

The teacher's actor runs inside the rollout only when it may act (beta > 0); the critic, and the
actor when it did not act, label the round's rows afterwards in large chunks (`distill.labels`).

Progress is recorded in `dagger_state.json` after each round; a rerun resumes from the last
committed round (a round whose rows were committed but whose student was not yet fitted is
refitted, never collected twice).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from distill import labels, robust, sharding
from distill.atomic import atomic_path, write_text_atomic
from distill.carry import SEEN, CarryPolicy, evaluate_carry, rollout_carry
from distill.config import from_table
from distill.data import DatasetMeta, RolloutReader, RolloutWriter
from distill.envs import with_episode_length
from distill.envs.base import GoalEnv
from distill.errors import DistillError
from distill.observation import field_sizes, student_fields
from distill.rollouts import (
    EpisodeMetrics,
    Observation,
    deterministic,
    evaluate,
    first_episode_metrics,
    reset_batch,
    run_episodes,
    stepwise_rollout,
)
from distill.students.checkpoint import load_student, save_student
from distill.students.jax_mirror import (
    memory_init,
    memory_reset,
    memory_step,
    student_apply,
    student_params_to_jax,
)
from distill.students.memory import Recurrence, Student, build_student
from distill.students.mlp import MLPStudent
from distill.students.presets import StudentPreset, StudentTrainConfig
from distill.students.round_fit import fit_round
from distill.students.warm_fit import fit_round_bounded
from distill.teachers import networks
from distill.teachers.teacher import COMPUTE_DTYPES, Teacher

log = logging.getLogger(__name__)

STATE_FILE = "dagger_state.json"
HELDOUT_FILE = "heldout.npz"
BETA_SCHEDULES = ("linear", "exponential", "constant")
REFITS = ("warm", "scratch")


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
    eval_envs: int = 0
    """Envs stepped at once when evaluating and drawing the held-out states; 0: `envs`, so a run
    compiles its physics once (tens of seconds on a CPU). With few `envs` and many
    `eval_episodes`, a larger batch here evaluates faster for the price of one more compile."""
    seed: int = 0
    episode_length: int = 0
    """Steps per episode, in collection and evaluation; 0 keeps the env's own. Shorter episodes make
    quick runs of slow teachers possible; success figures then describe the shortened episodes."""
    critic_labels: bool = True
    """Label every row with Q(s, a_teacher, g). Off saves the critic's arithmetic (the column then
    holds NaN); the critic gap is measured on the held-out states either way."""
    label_chunk: int = 4096
    """Rows per jit'd teacher-labelling call after a rollout: large enough that a deep teacher is
    bound by arithmetic, small enough to bound memory."""
    heldout_envs: int = 32
    """Teacher-driven episodes (their own seed, never trained on) whose states measure the critic
    gap of every round and student of a run."""
    heldout_rows: int = 2048
    """States kept from those episodes, evenly spaced."""
    heldout_seed: int = 20_000
    """Seed of the held-out episodes; apart from `seed`, so runs that differ only in their seed
    (and DAgger and behaviour cloning) measure their critic gaps on the same states."""
    teacher_dtype: str = "float32"
    """What the teacher computes its actions and labels in: "bfloat16" halves its memory traffic
    and is faster on GPUs; on CPUs float32 is as fast or faster, hence the default."""
    refit: str = "warm"
    """How each round fits its student. "warm": round k >= 1 continues round k-1's student for
    `refit_steps` gradient steps on batches that mix round k's rows (`refit_new_fraction` of each)
    with a sample of the older rounds' — a cost that does not grow with the aggregate; round 0
    fits a fresh student on its rows for max(`refit_steps`, [train] min_steps) steps. "scratch":
    every round fits a fresh student on every row so far (the [train] table's epochs, min_steps
    and patience), so round k costs O(k). Measured against each other in
    benchmarks/dagger_refit.py."""
    refit_steps: int = 1000
    refit_new_fraction: float = 0.5
    obs_noise: str = "none"
    """Noise on the student's observation in collection and perturbed evaluation: "none",
    "gaussian" or "uniform" (`distill.robust`). The teacher labels from its own clean view."""
    obs_noise_scale: dict[str, float] = field(default_factory=dict, hash=False)
    """Per field of the student's observation (`distill env info`), or per single entry: the
    Gaussian's std or the uniform noise's half-width, in the observation's units."""
    action_delay: int = 0
    """Control steps between computing an action and applying it (0: none)."""
    stale_obs_prob: float = 0.0
    """Probability that the student gets the previous step's observation again."""

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise DistillError(f"beta_schedule {self.beta_schedule!r}: use one of {', '.join(BETA_SCHEDULES)}")
        positive = ("rounds", "envs", "episodes_per_round", "label_chunk", "heldout_envs", "heldout_rows")
        bad = [name for name in positive if getattr(self, name) < 1]
        if bad or self.eval_episodes < 1 or self.episode_length < 0 or self.eval_envs < 0:
            raise DistillError(f"{', '.join(bad) or 'eval_episodes or episode_length'}: "
                               "counts must be >= 1 (episode_length and eval_envs >= 0)")
        if self.refit not in REFITS:
            raise DistillError(f"refit {self.refit!r}: use one of {', '.join(REFITS)}")
        if self.refit_steps < 1 or not 0.0 < self.refit_new_fraction <= 1.0:
            raise DistillError(f"refit_steps = {self.refit_steps}, refit_new_fraction = {self.refit_new_fraction}: "
                               "need refit_steps >= 1 and refit_new_fraction in (0, 1]")
        if self.teacher_dtype not in COMPUTE_DTYPES:
            raise DistillError(f"teacher_dtype {self.teacher_dtype!r}: use one of {', '.join(COMPUTE_DTYPES)}")
        if not (0.0 <= self.beta0 <= 1.0 and 0.0 <= self.beta_decay <= 1.0):
            raise DistillError(f"beta0={self.beta0}, beta_decay={self.beta_decay}: both must be in [0, 1]")
        robust.check_settings(self.obs_noise, self.obs_noise_scale, self.action_delay, self.stale_obs_prob)

    @property
    def perturbed(self) -> bool:
        """Whether the student's view or its actions are perturbed (then evaluation reports both)."""
        return (self.obs_noise != "none" and any(v > 0 for v in self.obs_noise_scale.values())) \
            or self.action_delay > 0 or self.stale_obs_prob > 0

    def perturbation(self, env: GoalEnv) -> robust.Perturbation:
        """The perturbations resolved against the env's student observation."""
        spec = env.spec.student_observation
        return robust.Perturbation.resolve(self.obs_noise, self.obs_noise_scale, self.action_delay,
                                           self.stale_obs_prob, student_fields(env), spec.names)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "[distill]") -> DaggerConfig:
        return from_table(cls, d, where)

    @property
    def eval_batch(self) -> int:
        """Envs stepped at once in evaluation."""
        return self.eval_envs or self.envs

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


def run_env(env: GoalEnv, cfg: DaggerConfig) -> GoalEnv:
    """The env a run collects and evaluates in: `env` with the config's episode length."""
    return with_episode_length(env, cfg.episode_length)


# --- records -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageTimes:
    """Where a round's wall time went, in seconds."""

    physics: float
    """The rollout (MJX steps and the student's actions) minus the teacher's share of it."""
    teacher: float
    """The teacher's actor: its share of the rollout where it acted (timed separately at the same
    batch and multiplied by the steps: an estimate), or its labelling afterwards."""
    critic: float
    write: float
    fit: float
    eval: float


@dataclass(frozen=True)
class FitSummary:
    """The round's fit (`distill.students.fit.FitResult` without its per-epoch history)."""

    loss: str
    loss_final: float
    """Training-split loss of the weights kept."""
    val_loss_final: float | None
    """Validation-split loss (held-out episodes) of the weights kept."""
    best_epoch: int
    epochs: int
    steps: int
    stopped_early: bool
    seconds: float


@dataclass(frozen=True)
class RoundRecord:
    """What one DAgger round did and how the student it fitted does."""

    round: int
    beta: float
    rows: int
    """Rows aggregated after this round."""
    new_rows: int
    """Rows this round collected (0 when resumed from a committed round)."""
    student: EpisodeMetrics
    critic_gap: float
    """Mean Q(s, a_teacher, g) − Q(s, a_student, g) under the frozen critic on the run's held-out
    states (the same states for every round and student of the run)."""
    fit: FitSummary
    behaviour_success: float | None
    """Reached-at-least-once of the β-mixed policy that collected the round."""
    seconds: float
    stages: StageTimes
    labelled_rows_per_s: float
    """new_rows / (physics + teacher + critic + write seconds): collection throughput."""
    student_perturbed: EpisodeMetrics | None = None
    """The student under the run's perturbations (noise, stale observations, delay) on the same goals;
    None when the run has none (`student` is always the clean figure)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundRecord:
        perturbed = d.get("student_perturbed")
        return cls(**{**d, "student": EpisodeMetrics(**d["student"]), "fit": FitSummary(**d["fit"]),
                      "stages": StageTimes(**d["stages"]),
                      "student_perturbed": None if perturbed is None else EpisodeMetrics(**perturbed)})


@dataclass(frozen=True)
class DaggerResult:
    student: MLPStudent
    rounds: list[RoundRecord]
    teacher_metrics: EpisodeMetrics
    dataset: Path
    student_dir: Path


# --- collection --------------------------------------------------------------------------------
@cache
def mixed_policy(teacher_acts: bool, activation: str = "swish"):
    """The β-mixed policy (cached, so it compiles once per variant and batch size: β and both
    networks' weights are parameters, not constants; the physics is the env's shared compiled
    step). Without `teacher_acts` the teacher is left
    out of the loop and the student drives alone (β = 0)."""

    def policy(params, obs: Observation, key):
        student_action = student_apply(params["student"], obs.student)
        if not teacher_acts:
            return student_action, {}
        mean, log_std = networks.actor_dist(params["actor"], obs.teacher, activation=activation)
        teacher_action = jnp.tanh(mean)
        use_teacher = jax.random.uniform(key, (obs.teacher.shape[0],)) < params["beta"]
        action = jnp.where(use_teacher[:, None], teacher_action, student_action)
        return action, {"teacher_mean": mean, "teacher_log_std": log_std, "teacher_action": teacher_action}

    return policy


@dataclass(frozen=True)
class CollectedRound:
    columns: dict[str, np.ndarray]
    behaviour: EpisodeMetrics
    physics_s: float
    teacher_s: float
    critic_s: float


def _actor_step_seconds(actor_params, obs: jax.Array, activation: str = "swish") -> float:
    """Seconds of one actor call on a rollout step's batch (placed as the rollout places it): the
    teacher's per-step share of a rollout. Compiled ahead (cached after the first round), timed once."""
    compiled = jax.jit(networks.actor_dist_fn(activation)).lower(actor_params, obs).compile()
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(actor_params, obs))
    return time.perf_counter() - t0


def collect_round(
    env: GoalEnv, teacher: Teacher, student: MLPStudent, beta: float, cfg: DaggerConfig, round_index: int,
    devices: Sequence[jax.Device] | None = None,
) -> CollectedRound:
    """One round of labelled rows, flattened to [rows, ...] in time-major order; envs and label
    chunks are split over `devices` (default: every device jax sees; see `distill.sharding`)."""
    return _collect(env, teacher, student_params_to_jax(student), beta, cfg, round_index,
                    sharding.env_mesh(cfg.envs, devices))


def _collect(env, teacher, student_params, beta, cfg, round_index, mesh) -> CollectedRound:
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), round_index)
    k_reset, k_roll = jax.random.split(key)
    if mesh is not None:
        state = sharding.reset_split(env, k_reset, cfg.envs, mesh)
        teacher = replace(teacher, actor_params=sharding.replicate(teacher.actor_params, mesh),
                          critic_params=sharding.replicate(teacher.critic_params, mesh))
    else:
        state = reset_batch(env, k_reset, cfg.envs)
    steps_n = env.spec.episode_length * cfg.episodes_per_round
    teacher_acts = beta > 0
    params = sharding.replicate({"actor": teacher.actor_params, "student": student_params,
                                 "beta": jnp.asarray(beta, jnp.float32)}, mesh)
    t0 = time.perf_counter()
    _, steps = stepwise_rollout(env, mixed_policy(teacher_acts, teacher.arch.activation), steps_n, params, state,
                                sharding.replicate(k_roll, mesh))
    steps = sharding.gather(steps)
    rollout_s = time.perf_counter() - t0
    return _labelled_rows(env, teacher, steps, rollout_s, teacher_acts, cfg, round_index, mesh)


def _labelled_rows(env, teacher, steps, rollout_s: float, teacher_acts: bool, cfg: DaggerConfig, round_index: int,
                   mesh, student_view: np.ndarray | None = None) -> CollectedRound:
    """A finished rollout's steps, labelled by the teacher (unless it labelled them while acting),
    flattened into the dataset's columns; `student_view` [T, N, D] replaces the student's
    observation in `obs` (what it read through the robot's perturbations)."""
    T, N = steps.t.shape
    flat = lambda x: np.asarray(x).reshape((T * N,) + np.asarray(x).shape[2:])
    teacher_obs = flat(steps.obs)
    bad = ~np.isfinite(teacher_obs).all(1)
    if bad.any():
        raise DistillError(f"round {round_index}: {int(bad.sum())} non-finite observations from env "
                           f"{env.spec.name}; the simulation diverged")
    t1 = time.perf_counter()
    if teacher_acts:
        actor = labels.ActorLabels(*(flat(steps.extras[k]) for k in
                                     ("teacher_mean", "teacher_log_std", "teacher_action")))
        teacher_s = min(rollout_s, T * _actor_step_seconds(
            teacher.actor_params, sharding.split_rows(np.asarray(steps.obs[0]), mesh), teacher.arch.activation))
    else:
        actor = labels.label_actor(teacher, teacher_obs, cfg.label_chunk, mesh)
        teacher_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    critic = (labels.critic_values(teacher, teacher_obs, actor.action, cfg.label_chunk, mesh=mesh)
              if cfg.critic_labels else np.full(T * N, np.nan, np.float32))
    critic_s = time.perf_counter() - t2
    env_ids = np.broadcast_to(np.arange(N), (T, N))
    episode = (round_index * N + env_ids).astype(np.int64) * 1_000_000 + np.asarray(steps.episode, np.int64)
    columns = {
        "obs": (flat(student_view) if student_view is not None
                else flat(steps.student_obs) if env.spec.asymmetric else teacher_obs),
        "goal": flat(steps.goal),
        "teacher_action": actor.action, "teacher_mean": actor.mean, "teacher_log_std": actor.log_std,
        "critic_value": critic, "behavior_action": flat(steps.action),
        "episode": flat(episode), "t": flat(steps.t), "done": flat(steps.done),
        "success": flat(steps.success).astype(bool),
    }
    if env.spec.asymmetric:
        columns["teacher_obs"] = teacher_obs
    return CollectedRound(columns, first_episode_metrics(steps, env.spec.episode_length),
                          physics_s=rollout_s - (teacher_s if teacher_acts else 0.0),
                          teacher_s=teacher_s, critic_s=critic_s)


def _collect_carry(env, teacher, student_params, policy: CarryPolicy, beta, cfg, round_index, mesh) -> CollectedRound:
    """`_collect` for a student that carries memory or meets the robot's perturbations: the same
    keys, envs and labels; the rows' `obs` are what the student read."""
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), round_index)
    k_reset, k_roll = jax.random.split(key)
    if mesh is not None:
        state = sharding.reset_split(env, k_reset, cfg.envs, mesh)
        teacher = replace(teacher, actor_params=sharding.replicate(teacher.actor_params, mesh),
                          critic_params=sharding.replicate(teacher.critic_params, mesh))
    else:
        state = reset_batch(env, k_reset, cfg.envs)
    steps_n = env.spec.episode_length * cfg.episodes_per_round
    params = sharding.replicate({"actor": teacher.actor_params, "student": student_params,
                                 "beta": jnp.asarray(beta, jnp.float32)}, mesh)
    t0 = time.perf_counter()
    _, _, steps = rollout_carry(env, policy, steps_n, params, state, sharding.split_rows(policy.init(cfg.envs), mesh),
                                sharding.replicate(k_roll, mesh))
    steps = sharding.gather(steps)
    rollout_s = time.perf_counter() - t0
    seen = steps.extras.pop(SEEN)
    return _labelled_rows(env, teacher, steps, rollout_s, policy.teacher_acts, cfg, round_index, mesh,
                          student_view=np.asarray(seen))


def _collect_any(env, teacher, student_params, rec: Recurrence, beta, cfg, round_index, mesh) -> CollectedRound:
    """The plain rollout for a stateless student on clean observations, the carrying one otherwise."""
    perturbation = cfg.perturbation(env)
    if not rec.stateful and not perturbation.active:
        return _collect(env, teacher, student_params, beta, cfg, round_index, mesh)
    return _collect_carry(env, teacher, student_params, CarryPolicy(rec, perturbation, beta > 0, teacher.arch.activation), beta, cfg,
                          round_index, mesh)


# --- the critic gap on held-out states ------------------------------------------------------------
@dataclass(frozen=True)
class HeldOutStates:
    """Teacher-driven states from their own seed, labelled once per run; every round and every
    student of the run is measured on them, so their critic gaps compare."""

    teacher_obs: np.ndarray
    student_obs: np.ndarray
    teacher_action: np.ndarray
    teacher_q: np.ndarray
    student_seq: np.ndarray | None = None
    """For students with memory: the held-out episodes' student observations [T, envs, D], so a
    student reaches each kept state with its memory of the steps before it."""
    starts: np.ndarray | None = None
    """[T, envs]: the first step of an episode (memory starts afresh)."""
    pick: np.ndarray | None = None
    """Flat (time-major) indices into [T, envs] of the kept states, in the order of the rows above."""

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def load(cls, path: Path) -> HeldOutStates:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in z.files})

    @property
    def has_sequences(self) -> bool:
        return self.student_seq is not None


def heldout_states(env: GoalEnv, teacher: Teacher, cfg: DaggerConfig, sequences: bool = False) -> HeldOutStates:
    """`heldout_envs` teacher-driven episodes, run `cfg.eval_batch` at a time; `sequences`: keep the
    episodes' student observations too (for students with memory)."""
    steps = run_episodes(env, deterministic(teacher.act_fn, "teacher"), teacher.actor_params,
                         jax.random.PRNGKey(cfg.heldout_seed), cfg.heldout_envs, env.spec.episode_length,
                         batch=cfg.eval_batch)
    steps = jax.device_get(steps)
    flat = lambda x: np.asarray(x).reshape(-1, np.asarray(x).shape[-1])
    teacher_obs = flat(steps.obs)
    student_obs = flat(steps.student_obs) if steps.student_obs is not None else teacher_obs
    pick = np.unique(np.linspace(0, teacher_obs.shape[0] - 1, cfg.heldout_rows).astype(np.int64))
    teacher_obs, student_obs = teacher_obs[pick], student_obs[pick]
    action = labels.label_actor(teacher, teacher_obs, cfg.label_chunk).action
    q = labels.critic_values(teacher, teacher_obs, action, cfg.label_chunk)
    if not sequences:
        return HeldOutStates(teacher_obs, student_obs, action, q)
    seq = np.asarray(steps.student_obs if steps.student_obs is not None else steps.obs, np.float32)
    return HeldOutStates(teacher_obs, student_obs, action, q, seq, np.asarray(steps.t) == 0, pick)


@jax.jit
def _student_actions(params, obs):
    return student_apply(params, obs)


@partial(jax.jit, static_argnums=(0,))
def _sequence_actions(rec: Recurrence, params, seq: jax.Array, starts: jax.Array) -> jax.Array:
    """A stateful student's actions [T, N, A] stepping through observations [T, N, D], its memory
    starting afresh where `starts` [T, N]."""

    def body(memory, xs):
        obs, start = xs
        action, memory = memory_step(rec, params, memory_reset(rec, memory, start), obs)
        return memory, action

    return jax.lax.scan(body, memory_init(rec, seq.shape[1]), (seq, starts))[1]


def heldout_actions(student: Student, heldout: HeldOutStates) -> np.ndarray:
    """The student's actions at the held-out states; a student with memory steps through their
    episodes to reach each one."""
    rec = Recurrence.of(student)
    params = student_params_to_jax(student)
    if not rec.stateful:
        return np.asarray(_student_actions(params, jnp.asarray(heldout.student_obs)))
    if not heldout.has_sequences:
        raise DistillError("the held-out states were kept without their episodes; a student with memory needs "
                           "them: delete the run's heldout.npz and rerun")
    actions = np.asarray(_sequence_actions(rec, params, jnp.asarray(heldout.student_seq), jnp.asarray(heldout.starts)))
    return actions.reshape(-1, actions.shape[-1])[heldout.pick]


def critic_gap(teacher: Teacher, student: Student, heldout: HeldOutStates, chunk: int = labels.DEFAULT_CHUNK) -> float:
    """Mean Q(s, a_teacher, g) − Q(s, a_student, g) under the frozen critic on held-out states."""
    action = heldout_actions(student, heldout)
    q_student = labels.critic_values(teacher, heldout.teacher_obs, action, chunk)
    return float(np.mean(heldout.teacher_q - q_student))


# --- evaluation ------------------------------------------------------------------------------------
def evaluation_key(cfg: DaggerConfig) -> jax.Array:
    """One key for every evaluation of a run, so teacher, students and exported variants all face
    the same goals."""
    return jax.random.PRNGKey(cfg.seed + 10_000)


def evaluate_student(env: GoalEnv, student: Student, key: jax.Array, episodes: int, batch: int | None = None,
                     perturbation: robust.Perturbation = robust.NONE) -> EpisodeMetrics:
    """The student driving alone, deterministic but for the perturbations (their noise from `key`);
    `batch` envs at a time (a run passes its `envs`, so evaluation reuses the physics compiled for
    collection)."""
    rec = Recurrence.of(student)
    if not rec.stateful and not perturbation.active:
        return evaluate(env, student_apply, student_params_to_jax(student), key, episodes, view="student",
                        batch=batch)
    return evaluate_carry(env, CarryPolicy(rec, perturbation), student_params_to_jax(student), key, episodes,
                          batch=batch)


def evaluate_teacher(env: GoalEnv, teacher: Teacher, key: jax.Array, episodes: int,
                     batch: int | None = None) -> EpisodeMetrics:
    return evaluate(env, teacher.act_fn, teacher.actor_params, key, episodes, view="teacher", batch=batch)


# --- the loop --------------------------------------------------------------------------------------
def _fit_round(preset, train_cfg, spec, dataset: Path, seed: int, log_dir: Path, cfg: DaggerConfig, k: int,
               previous: Student | None, fields: tuple[int, ...] | None = None) -> tuple[Student, FitSummary]:
    """Round k's student. "scratch" (and every student with memory, whose fit walks episodes): a
    fresh student fitted on every committed row, streamed from the file (bounded memory), with the
    validation split by episode and early stopping the train config asks for. "warm" (MLP
    students): `previous` (None in round 0: a fresh one) continued for a bounded number of steps
    (`distill.students.warm_fit`)."""
    if cfg.refit == "scratch" or preset.family != "mlp":
        student, fit = fit_round(dataset, preset, train_cfg, spec.student_input_dim, spec.action_dim, seed, log_dir,
                                 fields=fields)
    else:
        steps = cfg.refit_steps if previous is not None else max(cfg.refit_steps, train_cfg.min_steps)
        student, fit = fit_round_bounded(dataset, previous, preset, train_cfg, spec.student_input_dim,
                                         spec.action_dim, k, steps, cfg.refit_new_fraction, seed, log_dir)
    return student, FitSummary(fit.loss, fit.loss_final, fit.val_loss_final, fit.best_epoch, fit.epochs, fit.steps,
                               fit.stopped_early, fit.seconds)


def check_teacher_fits_env(teacher: Teacher, env: GoalEnv) -> None:
    """The teacher must read the env's teacher observation; the student's may differ."""
    spec, arch = env.spec, teacher.arch
    if (arch.obs_dim, arch.goal_dim, arch.action_dim) != (spec.obs_dim, spec.goal_dim, spec.action_dim):
        raise DistillError(f"teacher {teacher.name} dims ({arch.obs_dim}+{arch.goal_dim} -> {arch.action_dim}) "
                           f"do not match env {spec.name}'s teacher observation "
                           f"({spec.obs_dim}+{spec.goal_dim} -> {spec.action_dim})")


@dataclass
class _Progress:
    """dagger_state.json: the config a run started with and its finished rounds."""

    path: Path
    config: dict[str, Any]
    rounds: list[RoundRecord] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, cfg: DaggerConfig) -> _Progress:
        config = asdict(cfg)
        if not path.is_file():
            return cls(path, config)
        doc = json.loads(path.read_text())
        # Keys added to DaggerConfig since the run started held their defaults then.
        if {**asdict(DaggerConfig()), **doc.get("config", {})} != config:
            raise DistillError(f"{path}: this run was started with another [distill] config; "
                               "use a new --run name or delete the run folder")
        try:
            rounds = [RoundRecord.from_dict(r) for r in doc.get("rounds", [])]
        except (KeyError, TypeError) as exc:
            raise DistillError(f"{path}: round records are unreadable ({exc}); written by an older "
                               "distill? use a new --run name or delete the run folder") from None
        return cls(path, config, rounds)

    def append(self, record: RoundRecord) -> None:
        self.rounds.append(record)
        write_text_atomic(self.path, json.dumps(
            {"config": self.config, "rounds": [asdict(r) for r in self.rounds]}, indent=1))


def teacher_mismatch(teacher: Teacher, env: GoalEnv, measured: EpisodeMetrics) -> str | None:
    """Why the teacher's success here is not believable against its teacher.toml record, or None.

    Far below: under half the recorded success (recorded >= 0.1) or under half the recorded time at
    goal (recorded >= 1 step), or no success at all where the record predicts at least 3 among these
    episodes. Compared only on the env, backend and episode length the record was measured with."""
    recorded = teacher.manifest.metrics if teacher.manifest is not None else None
    if recorded is None or teacher.random_init or env.spec.name != teacher.env:
        return None
    if recorded.episode_length not in (None, env.spec.episode_length):
        return None
    if (recorded.backend or teacher.env_backend) != env.backend:
        return None
    far_below = recorded.success >= 0.1 and measured.success < 0.5 * recorded.success
    if recorded.time_at_goal is not None and recorded.time_at_goal >= 1.0:
        far_below |= measured.time_at_goal < 0.5 * recorded.time_at_goal
    none_at_all = measured.success == 0.0 and recorded.success * measured.episodes >= 3
    if not (far_below or none_at_all):
        return None
    at_goal = (f", {measured.time_at_goal:.1f} steps at goal against {recorded.time_at_goal:.1f}"
               if recorded.time_at_goal is not None else "")
    return (
        f"teacher {teacher.name} succeeds in {measured.success:.1%} of {measured.episodes} episodes on "
        f"{env.spec.name}/{env.backend}{at_goal}, but its teacher.toml records {recorded.success:.1%}: it "
        f"is running in another world than it was trained in (an env or backend mismatch is the usual "
        f"cause; `distill env compare` checks an env against a recorded trajectory); stopped before "
        f"collecting — pass --force to distil anyway"
    )


def run_dagger(
    env: GoalEnv, teacher: Teacher, preset: StudentPreset, train_cfg: StudentTrainConfig,
    cfg: DaggerConfig, dataset_path: Path, student_dir: Path, lineage: dict[str, Any],
    check_teacher: bool = True,
) -> DaggerResult | None:
    """The loop; in a multi-process run only process 0 returns a result (and writes anything), the
    others take their share of each round's collection (`follow_rounds`)."""
    env = run_env(env, cfg)
    spec = env.spec
    check_teacher_fits_env(teacher, env)
    if not sharding.is_writer():
        follow_rounds(env, teacher, preset, cfg)
        return None
    eval_key = evaluation_key(cfg)
    t0 = time.perf_counter()
    teacher_metrics = evaluate_teacher(env, teacher, eval_key, cfg.eval_episodes, cfg.eval_batch)
    log.info("teacher %s: success %.3f, time at goal %.1f/%d, final-step success %.3f (%.0f s)", teacher.name,
             teacher_metrics.success, teacher_metrics.time_at_goal, spec.episode_length,
             teacher_metrics.final_success, time.perf_counter() - t0)
    reason = teacher_mismatch(teacher, env, teacher_metrics) if check_teacher else None
    if reason is not None:
        if jax.process_count() > 1:  # release the other processes, waiting for a round
            student = build_student(preset, spec.student_input_dim, spec.action_dim, seed=cfg.seed)
            _announce_round(sharding.Channel(), -1, student_params_to_jax(student))
        raise DistillError(reason)
    student_dir.mkdir(parents=True, exist_ok=True)
    meta = DatasetMeta.from_env_spec(
        spec, teacher_name=teacher.name, teacher_sha256=teacher.weights_identity or "unknown",
        env_config={"name": spec.name, "backend": env.backend, "episode_length": spec.episode_length,
                    "control_dt": spec.control_dt, "success_radius": spec.success_radius,
                    "goal_indices": list(spec.goal_indices)},
        lineage=lineage,
    )
    progress = _Progress.open(student_dir / STATE_FILE, cfg)
    if not dataset_path.exists():
        RolloutWriter.create(dataset_path, meta).close()
    else:
        RolloutWriter.open(dataset_path, expect_meta=meta).close()

    heldout_path = student_dir / HELDOUT_FILE
    if heldout_path.is_file():
        heldout = HeldOutStates.load(heldout_path)
    else:
        heldout = heldout_states(env, teacher, cfg, sequences=preset.recurrent)
        heldout.save(heldout_path)

    fitted = bool(progress.rounds)
    if fitted:
        last = progress.rounds[-1].round
        snapshot = _round_dir(student_dir, last) / "student"  # the student the next round continues
        student = load_student(snapshot if snapshot.is_dir() else student_dir / "student")
        log.info("resuming %s after round %d", student_dir.name, last)
    else:
        student = build_student(preset, spec.student_input_dim, spec.action_dim, seed=cfg.seed,
                                fields=field_sizes(env))
    channel = sharding.Channel()
    for k in range(len(progress.rounds), cfg.rounds):
        record, student = _round(env, teacher, student, fitted, preset, train_cfg, cfg, k, meta, dataset_path,
                                 student_dir, heldout, eval_key, channel)
        fitted = True
        for folder in (_round_dir(student_dir, k) / "student", student_dir / "student"):
            save_student(student, folder, metadata={"round": k, "teacher": teacher.name})
        progress.append(record)
        m, st = record.student, record.stages
        log.info("round %d: beta %.2f, %d rows, student success %.3f, time at goal %.1f, final-step %.3f, "
                 "critic gap %.4f, fit loss %.2e (%.1f s: physics %.1f, teacher %.1f, critic %.1f, write %.1f, "
                 "fit %.1f, eval %.1f; %.0f labelled rows/s)", k, record.beta, record.rows, m.success,
                 m.time_at_goal, m.final_success, record.critic_gap, record.fit.loss_final, record.seconds,
                 st.physics, st.teacher, st.critic, st.write, st.fit, st.eval, record.labelled_rows_per_s)
        if record.student_perturbed is not None:
            p = record.student_perturbed
            log.info("round %d under %s: student success %.3f, time at goal %.1f, final-step %.3f", k,
                     cfg.perturbation(env).describe(), p.success, p.time_at_goal, p.final_success)
    _announce_round(channel, -1, student_params_to_jax(student))
    return DaggerResult(student=student, rounds=progress.rounds, teacher_metrics=teacher_metrics,
                        dataset=dataset_path, student_dir=student_dir)


def _round_dir(student_dir: Path, k: int) -> Path:
    """Round k's fit log, and its student: a resumed warm refit continues the last finished round's
    student, even when the run stopped after `student/` was overwritten but before the round was
    recorded."""
    return student_dir / "fit_logs" / f"round{k}"


def _round(env, teacher, student, fitted, preset, train_cfg, cfg, k, meta, dataset_path, student_dir, heldout,
           eval_key, channel):
    """Collect (unless committed already), refit, evaluate: one RoundRecord. `fitted`: whether
    `student` is a fitted one (a warm refit continues it) or the untrained round-0 collector."""
    spec = env.spec
    beta = cfg.beta(k)
    t0 = time.perf_counter()
    reader = RolloutReader(dataset_path)
    collected, new_rows, write_s = None, 0, 0.0
    if k not in reader.committed_rounds:
        params = student_params_to_jax(student)
        _announce_round(channel, k, params)
        collected = _collect_any(env, teacher, params, Recurrence.of(student), beta, cfg, k,
                                 sharding.env_mesh(cfg.envs))
        t_write = time.perf_counter()
        with RolloutWriter.open(dataset_path, expect_meta=meta) as w:
            w.append_round(k, collected.columns)
        write_s = time.perf_counter() - t_write
        new_rows = len(collected.columns["t"])
        reader = RolloutReader(dataset_path)
    t_fit = time.perf_counter()
    student, fit = _fit_round(preset, train_cfg, spec, dataset_path, cfg.seed + k, _round_dir(student_dir, k), cfg,
                              k, student if fitted else None, fields=field_sizes(env))
    fit_s = time.perf_counter() - t_fit
    t_eval = time.perf_counter()
    metrics = evaluate_student(env, student, eval_key, cfg.eval_episodes, cfg.eval_batch)
    perturbed = (evaluate_student(env, student, eval_key, cfg.eval_episodes, perturbation=cfg.perturbation(env))
                 if cfg.perturbed else None)
    gap = critic_gap(teacher, student, heldout, cfg.label_chunk)
    eval_s = time.perf_counter() - t_eval
    stages = StageTimes(
        physics=collected.physics_s if collected else 0.0, teacher=collected.teacher_s if collected else 0.0,
        critic=collected.critic_s if collected else 0.0, write=write_s, fit=fit_s, eval=eval_s)
    collect_s = stages.physics + stages.teacher + stages.critic + stages.write
    record = RoundRecord(
        round=k, beta=beta, rows=int(reader.committed_rows), new_rows=new_rows, student=metrics,
        critic_gap=gap, fit=fit, behaviour_success=collected.behaviour.success if collected else None,
        seconds=round(time.perf_counter() - t0, 2), stages=stages,
        labelled_rows_per_s=new_rows / collect_s if collect_s > 0 else 0.0, student_perturbed=perturbed,
    )
    return record, student


# --- several processes -----------------------------------------------------------------------------
def _pack_round(k: int, student_params) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, np.int64(k), *(np.asarray(x) for x in jax.tree_util.tree_leaves(student_params)))
    return buf.getvalue()


def _unpack_round(message: bytes, template) -> tuple[int, Any]:
    with np.load(io.BytesIO(message)) as z:
        arrays = [z[f"arr_{i}"] for i in range(len(z.files))]
    return int(arrays[0]), jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), arrays[1:])


def _announce_round(channel: sharding.Channel, k: int, student_params) -> None:
    """Process 0 tells the others which round to collect next (-1: none) and with which student."""
    if jax.process_count() > 1:
        channel.send(_pack_round(k, student_params))


def follow_rounds(env: GoalEnv, teacher: Teacher, preset: StudentPreset, cfg: DaggerConfig) -> None:
    """A process other than 0: collect each round process 0 announces, on this host's devices of the
    shared mesh, until it announces none. Rows are gathered to every process; only 0 keeps them."""
    spec = env.spec
    template_student = build_student(preset, spec.student_input_dim, spec.action_dim, seed=cfg.seed,
                                     fields=field_sizes(env))
    template, rec = student_params_to_jax(template_student), Recurrence.of(template_student)
    mesh, channel = sharding.env_mesh(cfg.envs), sharding.Channel()
    while (announced := _unpack_round(channel.receive(), template))[0] >= 0:
        k, params = announced
        _collect_any(env, teacher, params, rec, cfg.beta(k), cfg, k, mesh)


def rows_per_round(env: GoalEnv, cfg: DaggerConfig) -> int:
    return cfg.envs * run_env(env, cfg).spec.episode_length * cfg.episodes_per_round
