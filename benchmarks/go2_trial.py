"""The Go2 curriculum trial: did the teacher learn to walk to goals, and how far does it get?

Reads a Go2 training's curve (runs/teachers/NAME/curve.csv while it trains, teachers/NAME/curve.csv
once shipped, teachers/NAME/curve_cpu.csv for a committed trial without weights) and the random
policy's floor (teachers/NAME/random_baseline.csv, computed and written if missing), then evaluates
the latest actor (the run's checkpoint, else the shipped weights) and the random policy on the same
fresh goals (the env's own 1-3 m ring): each episode's reach (the base's farthest distance from its
start), its goal's distance and whether it got there.
Writes benchmarks/results/go2_trial_NAME.{md,json,png}: success, curriculum ring and reach against
env steps, and the reach distribution of the actor against the random policy.

    python benchmarks/go2_trial.py [--name go2_4_curriculum] [--episodes 128] [--no-eval]

The issue's bar to ship a Go2 teacher: >= 50% success on goals >= 1 m away.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from distill.atomic import write_text_atomic
from distill.paths import project_root, teachers_dir

RESULTS = Path(__file__).resolve().parent / "results"
SHIP_BAR = 0.5
DISTANCE_BINS = (1.0, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class Curve:
    """The training curve's columns (one entry per evaluation row)."""

    env_steps: np.ndarray
    wall_s: np.ndarray
    success: np.ndarray
    final_success: np.ndarray
    final_distance: np.ndarray
    reach_mean: np.ndarray
    reach_p95: np.ndarray
    goal_radius: np.ndarray
    """The curriculum's outer radius (NaN without a curriculum)."""
    ring_success: np.ndarray


@dataclass(frozen=True)
class Baseline:
    success: float
    final_success: float
    reach_mean: float
    reach_p95: float


@dataclass(frozen=True)
class ReachSample:
    """Per episode, on the same goals for every policy."""

    policy: str
    reach: np.ndarray
    goal_distance: np.ndarray
    """The goal's distance from where the episode started."""
    success: np.ndarray
    """1 if the base was ever within the success radius of the goal in the episode."""
    progress: np.ndarray
    """How much closer to the goal the base ever got than where it started (m): reach spent on the
    goal's direction. A policy that walks to its goal has progress close to its reach; one that
    drifts has progress near zero."""


@dataclass(frozen=True)
class BinRow:
    lo: float
    hi: float
    episodes: int
    success: float | None


@dataclass(frozen=True)
class Summary:
    name: str
    env_steps: int
    hours: float
    last_success: float
    last_final_success: float
    best_success: float
    best_success_env_steps: int
    last_reach_mean: float
    last_reach_p95: float
    goal_radius: float | None
    ring_success: float | None
    random_success: float
    random_reach_mean: float
    random_reach_p95: float
    ships: bool
    """Whether the latest evaluation clears the bar (>= 50% success on >= 1 m goals)."""


def _float(v: str) -> float:
    return float(v) if v not in ("", None) else float("nan")


def read_curve(path: Path) -> Curve:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"go2_trial: {path} has no rows yet; wait for the first evaluation (every eval_every iterations)")
    col = lambda k: np.asarray([_float(r.get(k, "")) for r in rows], np.float64)
    return Curve(col("env_steps"), col("wall_s"), col("success"), col("final_success"), col("final_distance"),
                 col("reach_mean"), col("reach_p95"), col("goal_radius"), col("ring_success"))


def read_baseline(path: Path, goals: str = "curve") -> Baseline:
    with open(path) as f:
        for row in csv.DictReader(f):
            if row["goals"] == goals:
                return Baseline(float(row["success"]), float(row["final_success"]), float(row["reach_mean"]),
                                float(row["reach_p95"]))
    raise SystemExit(f"go2_trial: {path} has no {goals!r} row; rerun `distill teacher baseline`")


def success_by_distance(sample: ReachSample, bins: tuple[float, ...] = DISTANCE_BINS) -> list[BinRow]:
    """Success per goal-distance band [lo, hi) (the last band includes hi)."""
    rows = []
    for k, (lo, hi) in enumerate(itertools.pairwise(bins)):
        last = k == len(bins) - 2
        mine = (sample.goal_distance >= lo) & ((sample.goal_distance <= hi) if last else (sample.goal_distance < hi))
        n = int(mine.sum())
        rows.append(BinRow(lo, hi, n, float(sample.success[mine].mean()) if n else None))
    return rows


def summarise(name: str, curve: Curve, baseline: Baseline) -> Summary:
    best = int(np.argmax(curve.success))
    radius = curve.goal_radius[-1]
    return Summary(
        name=name, env_steps=int(curve.env_steps[-1]), hours=float(curve.wall_s[-1] / 3600),
        last_success=float(curve.success[-1]), last_final_success=float(curve.final_success[-1]),
        best_success=float(curve.success[best]), best_success_env_steps=int(curve.env_steps[best]),
        last_reach_mean=float(curve.reach_mean[-1]), last_reach_p95=float(curve.reach_p95[-1]),
        goal_radius=None if np.isnan(radius) else float(radius),
        ring_success=None if np.isnan(curve.ring_success[-1]) else float(curve.ring_success[-1]),
        random_success=baseline.success, random_reach_mean=baseline.reach_mean, random_reach_p95=baseline.reach_p95,
        ships=bool(curve.success[-1] >= SHIP_BAR),
    )


def find_run(name: str) -> tuple[Path, Path | None]:
    """The curve to read and the run folder holding a checkpoint (None: only shipped files)."""
    run = project_root() / "runs" / "teachers" / name
    # curve_cpu.csv: the committed curve of a trial that shipped no weights (e.g. go2_4, go2_4_curriculum)
    for path in (run / "curve.csv", teachers_dir() / name / "curve.csv", teachers_dir() / name / "curve_cpu.csv"):
        if path.is_file():
            return path, run if (run / "train_state.safetensors").is_file() else None
    raise SystemExit(f"go2_trial: no curve for {name!r} in runs/teachers/{name}/ or teachers/{name}/; "
                     f"train it first: distill teacher train --name {name}")


def evaluate_samples(name: str, run: Path | None, episodes: int) -> list[ReachSample]:
    """The latest actor and the random policy on the final evaluation's goals, per episode."""
    import jax

    from distill.envs import make_env
    from distill.rollouts import deterministic, first_episode_alive, run_episodes, uniform_random
    from distill.teachers import crl, load_teacher, networks
    from distill.teachers.train_cli import config_for
    from distill.teachers.trainer import final_eval_key, load_state, reach_distances

    cfg = config_for(name, None)
    env = make_env(cfg.env)
    if run is not None:
        actor = load_state(run, crl.init_state(cfg, env)).actor
    else:
        actor = load_teacher(name).actor_params
    key = final_eval_key(cfg)
    length = env.spec.episode_length
    samples = []
    for label, policy, params in (("teacher", deterministic(networks.actor_act), actor),
                                  ("random", uniform_random(env.spec.action_dim), None)):
        steps = run_episodes(env, policy, params, key, episodes, length)
        alive = first_episode_alive(steps.done)
        achieved0 = np.asarray(steps.obs)[0][..., list(env.spec.goal_indices)]
        goal_distance = np.linalg.norm(np.asarray(steps.goal)[0] - achieved0, axis=-1)
        closest = np.where(alive, np.asarray(steps.dist, np.float64), np.inf).min(0)
        success = (np.asarray(steps.success, np.float64) * alive).max(0)
        samples.append(ReachSample(label, reach_distances(steps, env.spec.goal_indices), goal_distance, success,
                                   goal_distance - closest))
        del steps
    jax.clear_caches()
    return samples


def markdown(s: Summary, samples: list[ReachSample]) -> str:
    lines = [f"# Go2 trial: {s.name}", "",
             (f"{s.env_steps:,} env steps in {s.hours:.2f} h of training. The curve evaluates the deterministic actor on "
              "the env's own goals (1-3 m from the start, success within 0.5 m); the curriculum commands goals on a "
              "ring that widens with success during collection only."), "",
             "| | success | final-step success | reach mean (m) | reach p95 (m) |", "|---|---:|---:|---:|---:|",
             (f"| teacher, latest curve row | {s.last_success:.3f} | {s.last_final_success:.3f} | {s.last_reach_mean:.3f} "
             f"| {s.last_reach_p95:.3f} |"),
             (f"| teacher, best curve row ({s.best_success_env_steps:,} env steps) | {s.best_success:.3f} | | | |"
              if s.best_success > 0 else "| teacher, best curve row (none succeeded) | 0.000 | | | |"),
             f"| uniform random policy | {s.random_success:.3f} | | {s.random_reach_mean:.3f} | {s.random_reach_p95:.3f} |",
             ""]
    if s.goal_radius is not None:
        lines += [f"Curriculum: outer radius {s.goal_radius:.1f} m, its last window's success {s.ring_success:.3f}.", ""]
    if samples:
        lines += [(f"Fresh goals ({len(samples[0].reach)} episodes, the final evaluation's): success by the goal's "
                  "distance from the start."), "",
                  "| goal distance (m) | episodes | " + " | ".join(f"{x.policy} success" for x in samples) + " |",
                  "|---|---:|" + "---:|" * len(samples)]
        per = [success_by_distance(x) for x in samples]
        for k, row in enumerate(per[0]):
            cells = " | ".join("-" if p[k].success is None else f"{p[k].success:.3f}" for p in per)
            lines.append(f"| {row.lo:.1f}-{row.hi:.1f} | {row.episodes} | {cells} |")
        lines += ["", "Reach (the base's farthest distance from its start) on the same episodes: " + "; ".join(
            f"{x.policy} mean {x.reach.mean():.3f} m, median {np.median(x.reach):.3f}, p95 "
            f"{np.percentile(x.reach, 95):.3f}, share beyond 1 m {np.mean(x.reach >= 1.0):.3f}" for x in samples), "",
            ("Progress toward the goal (its distance at the start minus the closest the base got; reach spent on "
             "the goal's direction): " + "; ".join(
                 f"{x.policy} mean {x.progress.mean():.3f} m ({x.progress.mean() / max(x.reach.mean(), 1e-9):.0%} of "
                 f"its mean reach)" for x in samples)), ""]
    verdict = ("clears" if s.ships else "does not clear")
    lines.append(f"The latest evaluation {verdict} the bar to ship (success >= {SHIP_BAR:.0%} on goals >= 1 m away).")
    return "\n".join(lines) + "\n"


def plot(s: Summary, curve: Curve, samples: list[ReachSample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    x = curve.env_steps / 1e6
    ax = axes[0, 0]
    ax.plot(x, curve.success, label="success (ever within 0.5 m)")
    ax.plot(x, curve.final_success, label="final-step success")
    ax.axhline(s.random_success, color="grey", ls=":", label="random policy")
    ax.axhline(SHIP_BAR, color="tab:red", lw=0.8, ls="--", label="bar to ship")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("on the env's 1-3 m goals")
    ax.set_title("success against env steps")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[0, 1]
    if not np.all(np.isnan(curve.goal_radius)):
        ax.plot(x, curve.goal_radius, color="tab:purple", label="ring outer radius (m)")
        ax.set_ylabel("radius (m)")
        twin = ax.twinx()
        twin.plot(x, curve.ring_success, color="tab:green", lw=0.9, label="ring success (collection)")
        twin.set_ylim(-0.02, 1.02)
        twin.set_ylabel("ring success")
        ax.legend(loc="upper left", fontsize=8)
        twin.legend(loc="upper right", fontsize=8)
    ax.set_title("goal curriculum")
    ax = axes[1, 0]
    ax.plot(x, curve.reach_mean, label="teacher reach, mean")
    ax.plot(x, curve.reach_p95, label="teacher reach, p95")
    ax.axhline(s.random_reach_mean, color="grey", ls=":", label="random, mean")
    ax.axhline(s.random_reach_p95, color="grey", ls="--", lw=0.8, label="random, p95")
    ax.axhline(1.0, color="tab:red", lw=0.8, ls="--", label="nearest env goal (1 m)")
    ax.set_ylabel("farthest from start (m)")
    ax.set_title("reach against env steps")
    ax.legend(loc="upper left", fontsize=8)
    for a in (axes[0, 0], axes[0, 1], axes[1, 0]):
        a.set_xlabel("env steps (millions)")
        a.grid(alpha=0.3)
    ax = axes[1, 1]
    if samples:
        top = max(1.2, max(float(x_.reach.max()) for x_ in samples) * 1.05)
        edges = np.linspace(0, top, 31)
        for sample in samples:
            ax.hist(sample.reach, bins=edges, alpha=0.55, label=f"{sample.policy} ({len(sample.reach)} episodes)")
        ax.axvline(0.5, color="black", lw=0.8, ls=":", label="success radius 0.5 m")
        ax.axvline(1.0, color="tab:red", lw=0.8, ls="--", label="nearest env goal 1 m")
        ax.set_xlabel("reach: farthest from start in an episode (m)")
        ax.set_ylabel("episodes")
        ax.legend(fontsize=8)
    ax.set_title("reach distribution, latest actor vs random (fresh goals)")
    fig.suptitle(f"{s.name}: {s.env_steps / 1e6:.1f} M env steps, {s.hours:.2f} h on 2 CPU cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="go2_4_curriculum")
    ap.add_argument("--episodes", type=int, default=128)
    ap.add_argument("--no-eval", action="store_true", help="only the curve and the baseline (no MJX compile)")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    curve_path, run = find_run(args.name)
    baseline_path = teachers_dir() / args.name / "random_baseline.csv"
    if not baseline_path.is_file():
        from distill.teachers.baseline import random_baseline
        from distill.teachers.train_cli import config_for

        write_text_atomic(baseline_path, random_baseline(config_for(args.name, None)).csv_text())
    curve = read_curve(curve_path)
    summary = summarise(args.name, curve, read_baseline(baseline_path))
    samples = [] if args.no_eval else evaluate_samples(args.name, run, args.episodes)
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"go2_trial_{args.name}"
    write_text_atomic(stem.with_suffix(".json"), json.dumps({
        "summary": asdict(summary), "curve": str(curve_path.relative_to(project_root())),
        "bins": {x.policy: [asdict(b) for b in success_by_distance(x)] for x in samples},
        "reach": {x.policy: [round(float(v), 4) for v in x.reach] for x in samples},
    }, indent=1))
    text = markdown(summary, samples)
    write_text_atomic(stem.with_suffix(".md"), text)
    plot(summary, curve, samples, stem.with_suffix(".png"))
    print(text)
    print(f"wrote {stem}.md, .json and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
