"""Driving CRL training: the loop, evaluation curve, resumable checkpoints, the final teacher.

A run folder holds `train_state.safetensors` (the whole TrainState, buffer and PRNG key included)
with `train_state.json` (which iteration it is, the config) and `curve.csv`. Both are replaced
atomically, so an interrupted run resumes from its last checkpoint and continues exactly as it
would have.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import distill
from distill.atomic import write_bytes_atomic, write_text_atomic
from distill.envs import make_env
from distill.errors import DistillError
from distill.progress import progress_bar
from distill.rollouts import (
    EpisodeMetrics,
    Steps,
    deterministic,
    evaluate,
    first_episode_alive,
    first_episode_metrics,
    run_episodes,
)
from distill.teachers import checkpoint, crl, networks

STATE_FILE = "train_state.safetensors"
STATE_META = "train_state.json"
CURVE_FILE = "curve.csv"
SCHEDULE_FIELDS = ("total_env_steps", "eval_every", "eval_episodes", "checkpoint_every")
"""Config fields a resumed run may change: when to stop, evaluate and checkpoint. Everything else
shapes the state or the learning, so it must match the checkpoint's."""
CURVE_FIELDS = (
    "iteration", "env_steps", "sgd_steps", "wall_s", "success", "time_at_goal", "final_success",
    "final_distance", "actor_loss", "critic_loss", "critic_accuracy", "entropy", "alpha",
    "reach_mean", "reach_p95", "goal_radius", "ring_success",
)
"""reach: how far the evaluated teacher's achieved goal gets from its start (see `reach`);
goal_radius, ring_success: the goal curriculum's outer radius and its last window's success."""
OPTIONAL_LEAVES = (".curriculum",)
"""State leaves a checkpoint may lack (written before they existed): the fresh state's are kept."""


def _leaf_name(path) -> str:
    return jax.tree_util.keystr(path)


def save_state(run_dir: Path, ts: crl.TrainState, cfg: crl.CRLConfig, extra: dict[str, Any]) -> None:
    leaves = jax.tree_util.tree_flatten_with_path(ts)[0]
    flat = {}
    for path, leaf in leaves:
        arr = np.asarray(jax.device_get(leaf))
        if arr.dtype == np.uint32 or jax.dtypes.issubdtype(arr.dtype, jax.dtypes.prng_key):
            arr = np.asarray(arr, np.uint32)
        flat[_leaf_name(path)] = np.array(arr, order="C")  # keeps 0-d leaves 0-d
    write_bytes_atomic(run_dir / STATE_FILE, st_save(flat))
    meta = {"iteration": int(ts.iteration), "config": asdict(cfg), **extra}
    write_text_atomic(run_dir / STATE_META, json.dumps(meta, indent=1))


def load_state(run_dir: Path, template: crl.TrainState) -> crl.TrainState:
    flat = st_load((run_dir / STATE_FILE).read_bytes())
    leaves, _ = jax.tree_util.tree_flatten_with_path(template)
    restored = []
    for path, leaf in leaves:
        name = _leaf_name(path)
        if name == ".env_state.student_obs" and name not in flat:  # written before envs had one:
            name = ".env_state.obs"  # a symmetric env's student observation is its observation
        if name not in flat and name.startswith(OPTIONAL_LEAVES):
            restored.append(leaf)
            continue
        if name not in flat:
            raise DistillError(f"{run_dir / STATE_FILE}: checkpoint lacks {name}; it was written by another config")
        arr = flat[name]
        if arr.shape != leaf.shape:
            raise DistillError(f"{run_dir / STATE_FILE}: {name} has shape {arr.shape}, expected {leaf.shape}")
        restored.append(jax.numpy.asarray(arr, dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), restored)


def _write_curve(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(run_dir / CURVE_FILE, buf.getvalue())


def _read_curve(run_dir: Path, upto_iteration: int) -> list[dict[str, Any]]:
    path = run_dir / CURVE_FILE
    if not path.is_file():
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(f) if int(r["iteration"]) <= upto_iteration]


def evaluate_actor(env, actor, key, episodes: int) -> EpisodeMetrics:
    """The deterministic actor, reading the teacher's (maybe privileged) observation."""
    return evaluate(env, networks.actor_act, actor, key, episodes)


@dataclass(frozen=True)
class Reach:
    """How far the achieved goal moved from its episode's first step: mean and 95th percentile of
    each episode's farthest point."""

    mean: float
    p95: float


def reach_distances(steps: Steps, goal_indices: tuple[int, ...]) -> np.ndarray:
    """Each env's farthest achieved goal from its first step, over its first episode (a rollout
    started at reset, teacher observations; steps after the first `done` are masked out)."""
    achieved = np.asarray(steps.obs)[..., list(goal_indices)]
    return (np.linalg.norm(achieved - achieved[:1], axis=-1) * first_episode_alive(steps.done)).max(0)


def reach(steps: Steps, goal_indices: tuple[int, ...]) -> Reach:
    farthest = reach_distances(steps, goal_indices)
    return Reach(float(farthest.mean()), float(np.percentile(farthest, 95)))


def evaluate_with_reach(env, actor, key, episodes: int) -> tuple[EpisodeMetrics, Reach]:
    """`evaluate_actor`'s figures (the same episodes) and how far the teacher got from its starts."""
    length = env.spec.episode_length
    steps = run_episodes(env, deterministic(networks.actor_act), actor, key, episodes, length)
    return first_episode_metrics(steps, length), reach(steps, env.spec.goal_indices)


def curve_eval_key(cfg: crl.CRLConfig) -> jax.Array:
    """The goals every curve row is evaluated on (the same each time, so rows compare)."""
    return jax.random.PRNGKey(cfg.seed + 1)


def final_eval_key(cfg: crl.CRLConfig) -> jax.Array:
    """The exported teacher's evaluation: other goals than the curve's."""
    return jax.random.PRNGKey(cfg.seed + 2)


def train(cfg: crl.CRLConfig, run_dir: Path, resume: bool = False, max_iterations: int | None = None,
          progress: bool = True) -> tuple[crl.TrainState, list[dict[str, Any]], float]:
    """Trains (or resumes) and returns the final state, the curve rows and the wall time spent."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = make_env(cfg.env)
    if not env.spec.goal_indices:
        raise DistillError(f"env {cfg.env!r} has no goal indices in its state (its goal is relative to the "
                           "robot), so CRL cannot relabel future states as goals; train on another env")
    ts = crl.init_state(cfg, env)
    rows: list[dict[str, Any]] = []
    wall_before = 0.0
    if resume and (run_dir / STATE_FILE).is_file():
        meta = json.loads((run_dir / STATE_META).read_text())
        now = json.loads(json.dumps(asdict(cfg)))
        default = asdict(crl.CRLConfig())  # keys a checkpoint predates held their defaults
        changed = sorted(k for k in now if k not in SCHEDULE_FIELDS and meta["config"].get(k, default[k]) != now[k])
        if changed:
            raise DistillError(f"{run_dir / STATE_META}: checkpoint config differs from this run's in "
                               f"{', '.join(changed)}; use a new run folder or the same config (only "
                               f"{', '.join(SCHEDULE_FIELDS)} may change on resume)")
        ts = load_state(run_dir, ts)
        rows = _read_curve(run_dir, int(ts.iteration))
        wall_before = float(meta.get("wall_s", 0.0))
    total = cfg.iterations if max_iterations is None else min(cfg.iterations, max_iterations)
    start_it = int(ts.iteration)
    eval_key = curve_eval_key(cfg)
    t0 = time.perf_counter()
    bar = progress_bar(range(start_it, total), f"CRL {cfg.env}", enabled=progress, initial=start_it, total=total,
                       unit="it")
    metrics: dict[str, Any] = {}
    for _ in bar:
        ts, metrics = crl.iteration(cfg, env, ts)
        it = int(ts.iteration)
        wall = wall_before + time.perf_counter() - t0
        if it % cfg.eval_every == 0 or it == total:
            ev, got = evaluate_with_reach(env, ts.actor, eval_key, cfg.eval_episodes)
            ring = {k: round(float(v), 5) for k, v in metrics.items() if k in ("goal_radius", "ring_success")}
            row = {"iteration": it, "env_steps": int(ts.env_steps), "sgd_steps": int(ts.sgd_steps),
                   "wall_s": round(wall, 2), **{k: round(v, 5) for k, v in ev.as_dict().items()
                                               if k in CURVE_FIELDS},
                   **{k: round(float(v), 5) for k, v in metrics.items() if k in CURVE_FIELDS},
                   "reach_mean": round(got.mean, 4), "reach_p95": round(got.p95, 4),
                   **(ring if cfg.goal_curriculum else {"goal_radius": "", "ring_success": ""})}
            rows.append(row)
            bar.set_postfix(success=f"{ev.success:.2f}", at_goal=f"{ev.time_at_goal:.1f}",
                            alpha=f"{float(metrics['alpha']):.3f}")
        if it % cfg.checkpoint_every == 0 or it == total:
            save_state(run_dir, ts, cfg, {"wall_s": wall})
            _write_curve(run_dir, rows)
    return ts, rows, wall_before + time.perf_counter() - t0


def export_teacher(
    cfg: crl.CRLConfig, ts: crl.TrainState, out_dir: Path, name: str, wall_s: float,
    final: EpisodeMetrics, curve_file: str | None = None,
) -> Path:
    env = make_env(cfg.env)
    arch = crl.arch_for(cfg, env)
    device = jax.devices()[0]
    return checkpoint.save_teacher(
        out_dir, name=name, env=cfg.env, backend=env.backend, arch=arch, actor=jax.device_get(ts.actor),
        critic=jax.device_get(ts.critic),
        provenance={"source": "trained with distill's CRL trainer", "distill_version": distill.__version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        metrics={**final.as_dict(), "evaluated": "deterministic actor tanh(mean), fresh goals"},
        training={"config": asdict(cfg), "env_steps": int(ts.env_steps), "sgd_steps": int(ts.sgd_steps),
                  "wall_s": round(wall_s, 1), "device": f"{device.platform}:{device.device_kind}",
                  "host": f"{platform.machine()} x{__import__('os').cpu_count()} cores",
                  **({"curve": curve_file} if curve_file else {})},
    )
