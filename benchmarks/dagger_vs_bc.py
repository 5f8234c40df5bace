"""DAgger against behaviour cloning: student success against the number of teacher labels.

For each task (a teacher and its env), each student preset and each seed, two runs of the same
loop (`distill.dagger.run_dagger`) with the same rounds, envs per round, student and fitting:
DAgger (round 0 teacher-driven, then a β_k = 0.5^k mix of teacher and student drives) and
behaviour cloning (the teacher drives every round). Every round adds the same number of labels,
refits the student on the aggregate, and evaluates it on the run's goals; the critic gap is
measured on held-out teacher states shared by every run of a task.

    python benchmarks/dagger_vs_bc.py [--quick] [--seeds 5]      (make dagger-vs-bc)
    python benchmarks/dagger_vs_bc.py --tasks reacher --seeds 10 --tag reacher10
    python benchmarks/dagger_vs_bc.py --tasks medium_maze --seeds 10 --tag medium_maze10

Writes benchmarks/results/dagger_vs_bc_cpu[_TAG].{json,md,png}; finished runs are kept in
runs/dagger_vs_bc[_TAG]/ and reused when the script is run again (it resumes).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from distill.atomic import write_text_atomic
from distill.bench.jax_timing import run_context
from distill.dagger import DaggerConfig, behaviour_cloning, run_dagger, run_env
from distill.envs import make_env
from distill.paths import project_root
from distill.runlog import console_logging
from distill.students.presets import (
    default_preset_name,
    get_preset,
    load_presets,
    load_train_config,
)
from distill.teachers import load_teacher

log = logging.getLogger("distill.dagger_vs_bc")


@dataclass(frozen=True)
class Task:
    teacher: str
    envs_per_round: int
    rounds: int


TASKS = {
    "maze": Task("point_u_maze_32", envs_per_round=4, rounds=10),
    "reacher": Task("reacher_8", envs_per_round=16, rounds=8),
    "medium_maze": Task("point_medium_maze_32", envs_per_round=2, rounds=10),
}
"""medium_maze (the harder maze, issue #16) is not in the default run (hours on 2 cores): name it with
--tasks medium_maze. Its 600-step episodes give 1,200 labels a round at 2 envs, the U-maze's budget."""
DEFAULT_TASKS = ("maze", "reacher")
QUICK_TASKS = {"maze": Task("point_u_maze_16", 2, 3), "reacher": Task("reacher_8", 4, 3)}
EVAL_EPISODES = 256
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Student's t quantiles (two-sided 95%) for n − 1 degrees of freedom: the bands are mean ± t·s/√n."""


@dataclass(frozen=True)
class Point:
    """One round of one run: how many labels the student had, and how it did."""

    task: str
    preset: str
    method: str
    seed: int
    round: int
    labels: int
    time_at_goal: float
    final_success: float
    success: float
    critic_gap: float
    teacher_time_at_goal: float
    teacher_final_success: float
    episode_length: int


def smallest_preset() -> str:
    presets = load_presets()
    return min(presets.values(), key=lambda p: (p.depth * p.width * p.width, p.width)).name


def run_one(name: str, task: Task, preset: str, method: str, seed: int, root: Path) -> list[Point]:
    teacher = load_teacher(task.teacher)
    env = make_env(teacher.env)
    cfg = DaggerConfig(rounds=task.rounds, envs=task.envs_per_round, eval_episodes=EVAL_EPISODES,
                       eval_envs=EVAL_EPISODES, seed=seed,
                       beta_schedule="exponential", beta0=1.0, beta_decay=0.5)
    if method == "bc":
        cfg = behaviour_cloning(cfg)
    folder = root / name / preset / method / f"seed{seed}"
    result = run_dagger(env, teacher, get_preset(preset), load_train_config(preset), cfg, folder / "rollouts.h5",
                        folder / "student", lineage={"experiment": "dagger_vs_bc", "method": method})
    t = result.teacher_metrics
    return [Point(name, preset, method, seed, r.round, r.rows, r.student.time_at_goal, r.student.final_success,
                  r.student.success, r.critic_gap, t.time_at_goal, t.final_success,
                  run_env(env, cfg).spec.episode_length) for r in result.rounds]


def band(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t)."""
    n = len(values)
    if n < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), T_975[min(n - 1, 9)] * float(values.std(ddof=1)) / np.sqrt(n)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Rank correlation (average ranks for ties)."""
    def ranks(a):
        order = np.argsort(a, kind="stable")
        r = np.empty(len(a))
        r[order] = np.arange(len(a))
        for v in np.unique(a):
            tie = a == v
            r[tie] = r[tie].mean()
        return r
    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    return float(np.corrcoef(rx, ry)[0, 1])


def curves(points: list[Point]):
    """{(task, preset, method): (labels, {metric: (means, halfwidths)})} over seeds."""
    out = {}
    keys = sorted({(p.task, p.preset, p.method) for p in points})
    for key in keys:
        mine = [p for p in points if (p.task, p.preset, p.method) == key]
        labels = sorted({p.labels for p in mine})
        stats = {}
        for metric in ("time_at_goal", "final_success"):
            per = [band(np.array([getattr(p, metric) for p in mine if p.labels == n])) for n in labels]
            stats[metric] = (np.array([m for m, _ in per]), np.array([h for _, h in per]))
        out[key] = (np.array(labels), stats)
    return out


def labels_to_95(points: list[Point], key) -> int | None:
    """The fewest labels at which the seeds' mean time at goal reaches 95% of the teacher's."""
    labels, stats = curves(points)[key]
    teacher = np.mean([p.teacher_time_at_goal for p in points if (p.task, p.preset, p.method) == key])
    first = float(_first_reaching(labels, stats["time_at_goal"][0], 0.95 * teacher))
    return int(first) if np.isfinite(first) else None


def _first_reaching(labels, means: np.ndarray, target: float) -> np.ndarray:
    """The first label at which each curve in `means` ([..., labels]) reaches `target`; inf if none does."""
    reached = means >= target
    return np.where(reached.any(axis=-1), np.asarray(labels, float)[reached.argmax(axis=-1)], np.inf)


def labels_to_95_interval(points: list[Point], key, resamples: int = 2000,
                          seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of `labels_to_95` over seeds (seeds drawn with replacement; inf where a
    resample's mean never reaches 95% of the teacher within the runs' labels)."""
    mine = [p for p in points if (p.task, p.preset, p.method) == key]
    seeds = sorted({p.seed for p in mine})
    labels = sorted({p.labels for p in mine})
    table = np.array([[next(p.time_at_goal for p in mine if p.seed == s and p.labels == n) for n in labels]
                      for s in seeds])
    target = 0.95 * np.mean([p.teacher_time_at_goal for p in mine])
    rng = np.random.default_rng(seed)
    draws = table[rng.integers(0, len(seeds), (resamples, len(seeds)))].mean(axis=1)  # [resamples, labels]
    first = _first_reaching(labels, draws, target)
    low, high = np.percentile(first, [2.5, 97.5], method="inverted_cdf")
    return float(low), float(high)


def _labels(n: float) -> str:
    return f"{int(n):,}" if np.isfinite(n) else "never"


def render(points: list[Point], context: dict, wall_s: float) -> str:
    lines = ["# DAgger against behaviour cloning", "",
             ("Student success against teacher labels; mean over seeds ± the half-width of a 95% confidence "
             "interval (Student's t). Same student, rounds, envs per round and fitting for both methods; DAgger "
             "mixes teacher and student with β_k = 0.5^k after a teacher-driven round 0, behaviour cloning lets "
             "the teacher drive every round. Critic gap on held-out teacher states shared by every run of a task."),
             "", (f"Host: {context['host']['cpu']} ({context['host']['cpu_count']} cores), load "
             f"{context['host']['loadavg_1m_at_start']} → {context['host']['loadavg_1m_at_end']}; wall {wall_s / 60:.0f} min."),
             ""]
    tasks = sorted({p.task for p in points})
    for task in tasks:
        mine = [p for p in points if p.task == task]
        teacher = mine[0]
        seeds = len({p.seed for p in mine})
        lines += [(f"## {task}: teacher time at goal {teacher.teacher_time_at_goal:.1f} / {teacher.episode_length}, "
                  f"final-step success {teacher.teacher_final_success:.3f} ({seeds} seeds)"), "",
                  "| preset | labels | DAgger time at goal | BC time at goal | DAgger final-step | BC final-step |",
                  "|---|---|---|---|---|---|"]
        c = curves(mine)
        for preset in sorted({p.preset for p in mine}):
            labels, dag = c[(task, preset, "dagger")]
            _, bc = c[(task, preset, "bc")]
            for i, n in enumerate(labels):
                def fmt(stats, metric, digits, i=i):
                    return f"{stats[metric][0][i]:.{digits}f} ± {stats[metric][1][i]:.{digits}f}"
                lines.append(f"| {preset} | {n:,} | {fmt(dag, 'time_at_goal', 1)} | {fmt(bc, 'time_at_goal', 1)} | "
                             f"{fmt(dag, 'final_success', 3)} | {fmt(bc, 'final_success', 3)} |")
        lines += ["", ("Labels to reach 95% of the teacher's time at goal (seed mean; in brackets a 95% bootstrap "
                       "interval over seeds, \"never\": not within the runs' labels):"), ""]
        for preset in sorted({p.preset for p in mine}):
            for method in ("dagger", "bc"):
                n = labels_to_95(mine, (task, preset, method))
                budget = max(p.labels for p in mine)
                low, high = labels_to_95_interval(mine, (task, preset, method))
                lines.append(f"- {preset}, {'DAgger' if method == 'dagger' else 'BC'}: "
                             + (f"{n:,} labels" if n is not None else f"never within {budget:,} labels")
                             + f" [{_labels(low)}, {_labels(high)}]")
        rho = spearman(np.array([p.critic_gap for p in mine]), np.array([p.time_at_goal for p in mine]))
        rho_f = spearman(np.array([p.critic_gap for p in mine]), np.array([p.final_success for p in mine]))
        lines += ["", (f"Critic gap vs success over all {len(mine)} (preset, method, seed, round) points: Spearman "
                  f"ρ = {rho:.3f} with time at goal, {rho_f:.3f} with final-step success (negative: a larger gap "
                  "goes with a worse student)."), ""]
    return "\n".join(lines) + "\n"


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({p.task for p in points})
    presets = sorted({p.preset for p in points})
    metrics = (("time_at_goal", "time at goal / teacher's"), ("final_success", "final-step success"))
    fig, axes = plt.subplots(len(tasks) * 2, len(presets), figsize=(5.5 * len(presets), 3.6 * 2 * len(tasks)),
                             squeeze=False, dpi=110)
    c = curves(points)
    for ti, task in enumerate(tasks):
        teacher = next(p for p in points if p.task == task)
        for pi, preset in enumerate(presets):
            for mi, (metric, ylabel) in enumerate(metrics):
                ax = axes[2 * ti + mi][pi]
                scale = teacher.teacher_time_at_goal if metric == "time_at_goal" else 1.0
                ref = 1.0 if metric == "time_at_goal" else teacher.teacher_final_success
                for method, colour in (("dagger", "tab:blue"), ("bc", "tab:orange")):
                    if (task, preset, method) not in c:
                        continue
                    labels, stats = c[(task, preset, method)]
                    mean, half = stats[metric]
                    ax.plot(labels, mean / scale, marker="o", ms=3, color=colour,
                            label="DAgger" if method == "dagger" else "behaviour cloning")
                    ax.fill_between(labels, (mean - half) / scale, (mean + half) / scale, color=colour, alpha=0.2)
                ax.axhline(ref, color="gold", lw=1.5, label="teacher")
                if metric == "time_at_goal":
                    ax.axhline(0.95, color="grey", ls=":", lw=1, label="95% of the teacher")
                ax.set_xscale("log")
                ax.set_ylim(-0.02, 1.15)  # both metrics live in [0, ~1]: bands are clipped to the view
                ax.set_title(f"{task}, {preset}", fontsize=10)
                ax.set_xlabel("teacher labels")
                ax.set_ylabel(ylabel)
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("DAgger vs behaviour cloning: mean over seeds, 95% confidence band", fontsize=12)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated: " + ", ".join(TASKS))
    parser.add_argument("--presets", default=None, help="comma-separated (default: the default and the smallest)")
    parser.add_argument("--quick", action="store_true", help="tiny settings, to try the script")
    parser.add_argument("--out", default=str(project_root() / "benchmarks" / "results"))
    parser.add_argument("--tag", default="", help="suffix of the runs folder and result files, to keep a study apart")
    args = parser.parse_args(argv)
    tasks = QUICK_TASKS if args.quick else TASKS
    unknown = [t for t in args.tasks.split(",") if t not in tasks]
    if unknown:
        raise SystemExit(f"dagger_vs_bc: unknown task {', '.join(unknown)} for this run; use one of "
                         f"{', '.join(tasks)}")
    presets = args.presets.split(",") if args.presets else [default_preset_name(), smallest_preset()]
    suffix = ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    root = project_root() / "runs" / f"dagger_vs_bc{suffix}"
    progress_file = root / "points.json"
    done = [Point(**p) for p in json.loads(progress_file.read_text())] if progress_file.is_file() else []
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    for name in args.tasks.split(","):
        for preset in presets:
            for seed in range(args.seeds):
                for method in ("dagger", "bc"):
                    if any((p.task, p.preset, p.method, p.seed) == (name, preset, method, seed) for p in done):
                        continue
                    t = time.perf_counter()
                    done += run_one(name, tasks[name], preset, method, seed, root)
                    write_text_atomic(progress_file, json.dumps([asdict(p) for p in done], indent=1))
                    log.info("%s %s %s seed %d: %.0f s", name, preset, method, seed, time.perf_counter() - t)
    import jax

    context = run_context(jax.devices()[0], load_start)
    out = Path(args.out)
    stem = f"dagger_vs_bc_cpu{suffix}"
    write_text_atomic(out / f"{stem}.json", json.dumps({"context": context, "tasks": {k: asdict(v) for k, v in tasks.items()},
                                                        "points": [asdict(p) for p in done]}, indent=1))
    text = render(done, context, time.perf_counter() - t0)
    write_text_atomic(out / f"{stem}.md", text)
    plot(done, out / f"{stem}.png")
    print(text)
    return 0


if __name__ == "__main__":
    with console_logging():
        sys.exit(main())
