"""How a DAgger round fits its student: a fresh fit on the aggregate against a bounded warm start.

Same tasks, rounds, envs per round, student, seeds and β schedule as benchmarks/dagger_vs_bc.py
(DAgger only); the two runs of a (task, seed) differ only in `[distill] refit`:

- scratch: every round fits a fresh student on every row so far ([train]: epochs, min_steps,
  patience), so round k costs O(k) and a run O(rounds²);
- warm: round k >= 1 continues round k-1's student for `refit_steps` steps on batches that mix the
  new round's rows with a sample of the older ones (round 0: a fresh student, max(refit_steps,
  min_steps) steps), a cost that does not grow with the aggregate.

Reported per round: student time at goal and final-step success against labels (mean over seeds
± 95% band), fit seconds; per run: fit seconds in all, wall seconds of the rounds.

    python benchmarks/dagger_refit.py [--quick] [--seeds 3]

Writes benchmarks/results/dagger_refit_cpu.{json,md,png}; finished runs are kept in runs/dagger_refit/
and reused when the script is run again.
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
from distill.dagger import DaggerConfig, run_dagger, run_env
from distill.envs import make_env
from distill.paths import project_root
from distill.runlog import console_logging
from distill.students.presets import default_preset_name, get_preset, load_train_config
from distill.teachers import load_teacher

log = logging.getLogger("distill.dagger_refit")

TASKS = {  # as benchmarks/dagger_vs_bc.py
    "maze": ("point_u_maze_32", 4, 10),
    "reacher": ("reacher_8", 16, 8),
}
QUICK_TASKS = {"maze": ("point_u_maze_16", 2, 3), "reacher": ("reacher_8", 4, 3)}
REFITS = ("scratch", "warm")
EVAL_EPISODES = 256
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass(frozen=True)
class Point:
    task: str
    refit: str
    seed: int
    round: int
    labels: int
    time_at_goal: float
    final_success: float
    critic_gap: float
    fit_s: float
    fit_steps: int
    round_s: float
    teacher_time_at_goal: float
    episode_length: int


def run_one(task: str, spec: tuple[str, int, int], preset: str, refit: str, seed: int, root: Path) -> list[Point]:
    teacher_name, envs, rounds = spec
    teacher = load_teacher(teacher_name)
    env = make_env(teacher.env)
    cfg = DaggerConfig(rounds=rounds, envs=envs, eval_episodes=EVAL_EPISODES, eval_envs=EVAL_EPISODES, seed=seed,
                       beta_schedule="exponential", beta0=1.0, beta_decay=0.5, refit=refit)
    folder = root / task / refit / f"seed{seed}"
    result = run_dagger(env, teacher, get_preset(preset), load_train_config(preset), cfg, folder / "rollouts.h5",
                        folder / "student", lineage={"experiment": "dagger_refit", "refit": refit})
    length = run_env(env, cfg).spec.episode_length
    return [Point(task, refit, seed, r.round, r.rows, r.student.time_at_goal, r.student.final_success, r.critic_gap,
                  r.stages.fit, r.fit.steps, r.seconds, result.teacher_metrics.time_at_goal, length)
            for r in result.rounds]


def band(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t)."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), T_975[min(len(v) - 1, 9)] * float(v.std(ddof=1)) / np.sqrt(len(v))


def _pm(values, digits: int) -> str:
    m, h = band(values)
    return f"{m:.{digits}f} ± {h:.{digits}f}"


def summary(points: list[Point], task: str, refit: str) -> dict[str, float]:
    """Per-run totals (mean over seeds) and the last round's figures."""
    mine = [p for p in points if (p.task, p.refit) == (task, refit)]
    seeds = sorted({p.seed for p in mine})
    last = max(p.round for p in mine)
    fit = [sum(p.fit_s for p in mine if p.seed == s) for s in seeds]
    wall = [sum(p.round_s for p in mine if p.seed == s) for s in seeds]
    final = [p for p in mine if p.round == last]
    teacher = np.mean([p.teacher_time_at_goal for p in mine])
    return {"fit_s": fit, "rounds_s": wall, "last_time_at_goal": [p.time_at_goal for p in final],
            "last_final_success": [p.final_success for p in final], "teacher_time_at_goal": float(teacher),
            "last_fit_s": [p.fit_s for p in final]}


def render(points: list[Point], context: dict, wall_s: float) -> str:
    lines = ["# DAgger refits: fresh fit on the aggregate against a bounded warm start", "",
             ("Same tasks, rounds, envs per round, student, seeds and β schedule (0.5^k) as "
              "benchmarks/dagger_vs_bc.py; the two runs of a seed differ only in `[distill] refit`. "
              "Mean over seeds ± the half-width of a 95% confidence interval (Student's t)."), "",
             (f"Host: {context['host']['cpu']} ({context['host']['cpu_count']} cores), load "
              f"{context['host']['loadavg_1m_at_start']} → {context['host']['loadavg_1m_at_end']}; "
              f"wall {wall_s / 60:.0f} min."), ""]
    for task in sorted({p.task for p in points}):
        mine = [p for p in points if p.task == task]
        seeds = len({p.seed for p in mine})
        lines += [(f"## {task} ({seeds} seeds, teacher time at goal {mine[0].teacher_time_at_goal:.1f} / "
                   f"{mine[0].episode_length})"), "",
                  ("| round | labels | scratch time at goal | warm time at goal | scratch final-step | "
                   "warm final-step | scratch fit s | warm fit s |"),
                  "|---|---|---|---|---|---|---|---|"]
        for k in sorted({p.round for p in mine}):
            at_k = [p for p in mine if p.round == k]

            def col(refit: str, field: str, at_k=at_k) -> list[float]:
                return [getattr(p, field) for p in at_k if p.refit == refit]

            labels = at_k[0].labels
            lines.append(f"| {k} | {labels:,} | {_pm(col('scratch', 'time_at_goal'), 1)} | "
                         f"{_pm(col('warm', 'time_at_goal'), 1)} | {_pm(col('scratch', 'final_success'), 3)} | "
                         f"{_pm(col('warm', 'final_success'), 3)} | {_pm(col('scratch', 'fit_s'), 1)} | "
                         f"{_pm(col('warm', 'fit_s'), 1)} |")
        lines += ["", ("| refit | last round time at goal (ratio to teacher) | last round final-step | "
                       "fit s per run | rounds s per run | last round fit s |"), "|---|---|---|---|---|---|"]
        for refit in REFITS:
            s = summary(points, task, refit)
            ratio = np.mean(s["last_time_at_goal"]) / s["teacher_time_at_goal"]
            lines.append(f"| {refit} | {_pm(s['last_time_at_goal'], 1)} ({ratio:.3f}) | "
                         f"{_pm(s['last_final_success'], 3)} | {_pm(s['fit_s'], 0)} | {_pm(s['rounds_s'], 0)} | "
                         f"{_pm(s['last_fit_s'], 1)} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({p.task for p in points})
    fig, axes = plt.subplots(2, len(tasks), figsize=(6 * len(tasks), 7.5), squeeze=False, dpi=110)
    for ti, task in enumerate(tasks):
        mine = [p for p in points if p.task == task]
        teacher = mine[0].teacher_time_at_goal
        for refit, colour in (("scratch", "tab:orange"), ("warm", "tab:blue")):
            rounds = sorted({p.round for p in mine if p.refit == refit})
            labels = [next(p.labels for p in mine if p.round == k) for k in rounds]
            for row, field, scale in ((0, "time_at_goal", teacher), (1, "fit_s", 1.0)):
                stats = [band([getattr(p, field) for p in mine if p.refit == refit and p.round == k]) for k in rounds]
                mean = np.array([m for m, _ in stats]) / scale
                half = np.array([h for _, h in stats]) / scale
                ax = axes[row][ti]
                ax.plot(labels, mean, marker="o", ms=3, color=colour, label=f"refit {refit}")
                ax.fill_between(labels, mean - half, mean + half, color=colour, alpha=0.2)
        axes[0][ti].axhline(0.95, color="grey", ls=":", lw=1, label="95% of the teacher")
        axes[0][ti].set_ylim(-0.02, 1.15)
        axes[0][ti].set_ylabel("time at goal / teacher's")
        axes[1][ti].set_ylabel("fit seconds in the round")
        axes[0][ti].set_title(f"{task}: student success")
        axes[1][ti].set_title(f"{task}: fit time per round")
        for row in (0, 1):
            axes[row][ti].set_xlabel("teacher labels (rows aggregated)")
            axes[row][ti].grid(True, alpha=0.3)
            axes[row][ti].legend(fontsize=8, loc="best")
    fig.suptitle("DAgger refit: fresh fit on the aggregate vs bounded warm start\n(mean over seeds, 95% band)")
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: " + ", ".join(TASKS))
    parser.add_argument("--preset", default=None, help="student preset (default: the presets file's default)")
    parser.add_argument("--quick", action="store_true", help="tiny settings, to try the script")
    parser.add_argument("--out", default=str(project_root() / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    tasks = QUICK_TASKS if args.quick else TASKS
    preset = args.preset or default_preset_name()
    root = project_root() / "runs" / ("dagger_refit_quick" if args.quick else "dagger_refit")
    progress_file = root / "points.json"
    done = [Point(**p) for p in json.loads(progress_file.read_text())] if progress_file.is_file() else []
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    for name in args.tasks.split(","):
        for seed in range(args.seeds):
            for refit in REFITS:
                if any((p.task, p.refit, p.seed) == (name, refit, seed) for p in done):
                    continue
                t = time.perf_counter()
                done += run_one(name, tasks[name], preset, refit, seed, root)
                write_text_atomic(progress_file, json.dumps([asdict(p) for p in done], indent=1))
                log.info("%s refit %s seed %d: %.0f s", name, refit, seed, time.perf_counter() - t)
    import jax

    context = run_context(jax.devices()[0], load_start)
    out = Path(args.out)
    stem = "dagger_refit_cpu" + ("_quick" if args.quick else "")
    summaries = {f"{t}/{r}": summary(done, t, r) for t in sorted({p.task for p in done}) for r in REFITS}
    write_text_atomic(out / f"{stem}.json", json.dumps(
        {"context": context, "preset": preset, "tasks": {k: list(v) for k, v in tasks.items()},
         "summaries": summaries, "points": [asdict(p) for p in done]}, indent=1))
    text = render(done, context, time.perf_counter() - t0)
    write_text_atomic(out / f"{stem}.md", text)
    plot(done, out / f"{stem}.png")
    print(text)
    return 0


if __name__ == "__main__":
    with console_logging():
        sys.exit(main())
