"""When memory matters: a velocity-blind point-maze student, MLP against history against GRU, clean and
with the robot's noise and delay.

The teacher (`point_u_maze_32`, shipped) sees the ball's position and velocity; the students of
`point_u_maze_blind` see only the position and the goal. Two sweeps of the same presets
(`distill sweep --env point_u_maze_blind`, so each preset gets its own DAgger run, its files exported
at three precisions, evaluated on the same goals and timed at batch 1 on the exported files):

- clean: `configs/point_maze_blind.toml`;
- noisy: `configs/point_maze_blind_noisy.toml` (Gaussian noise on the ball's position and the goal,
  every action one control step late) — distilled and evaluated under them.

    python benchmarks/memory_matters.py [--presets mlp_2x256,hist4_2x256,gru64_2x128]

Each sweep writes its own table, JSON and Pareto PNG (benchmarks/results/sweep_blind_clean_cpu.*,
sweep_blind_noisy_cpu.*); this script adds the summary per family (fp32 files): success against
the teacher's, p99 latency, and each fp32 file's sim2sim (plain MuJoCo against MJX, same goals) in
benchmarks/results/memory_blind_maze_cpu.{md,json,png}. Finished runs are reused when it is run again.
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

from distill.atomic import atomic_path, write_text_atomic
from distill.bench.jax_timing import run_context
from distill.paths import project_root, students_dir
from distill.pipeline import load_dagger_config
from distill.report import RunReport
from distill.runlog import console_logging
from distill.sweep.records import SweepReport
from distill.sweep.run import SweepRequest, run_sweep

log = logging.getLogger("distill.memory_matters")

TEACHER = "point_u_maze_32"
ENV = "point_u_maze_blind"
PRESETS = ("mlp_2x256", "hist4_2x256", "gru64_2x128")
CONDITIONS = {"clean": "configs/point_maze_blind.toml", "noisy": "configs/point_maze_blind_noisy.toml"}


@dataclass(frozen=True)
class Row:
    """One student (fp32 file) in one condition."""

    condition: str
    preset: str
    shape: str
    params: int
    time_at_goal_ratio: float
    """Time at goal over the teacher's (clean, same goals), under the condition's perturbations."""
    final_success: float
    clean_time_at_goal_ratio: float
    """The same file evaluated without perturbations."""
    p99_ms: float
    """ONNX Runtime, one CPU thread, batch 1, state fed back for the GRU."""
    median_ms: float
    critic_gap: float
    sim2sim: list[dict]
    """Per setting (clean, and perturbed where the run had perturbations): time at goal and final-step
    success in MJX and in plain MuJoCo."""


def _rows(condition: str, sweep: SweepReport) -> list[Row]:
    teacher = sweep.teacher_success.time_at_goal
    rows = []
    for e in (e for e in sweep.entries if e.precision == "fp32"):
        m = sweep.score(e)
        report = RunReport.load(students_dir() / e.run)
        sims = [{"perturbed": s.perturbed, "mjx_time_at_goal": s.mjx.time_at_goal,
                 "mujoco_time_at_goal": s.mujoco.time_at_goal, "mjx_final_success": s.mjx.final_success,
                 "mujoco_final_success": s.mujoco.final_success, "episodes": s.mujoco.episodes}
                for s in report.sim2sim]
        rows.append(Row(condition, e.preset, e.shape, e.params, m.time_at_goal / teacher, m.final_success,
                        e.success.time_at_goal / teacher, e.ort.p99_ms, e.ort.median_ms, e.critic_gap, sims))
    return rows


def render(rows: list[Row], sweeps: dict[str, SweepReport], context: dict, wall_s: float) -> str:
    first = next(iter(sweeps.values()))
    ts = first.teacher_success
    noisy = sweeps.get("noisy")
    lines = [
        "# When memory matters: the velocity-blind point maze",
        "",
        (f"Teacher `{first.teacher.name}` sees the ball's position and velocity (time at goal {ts.time_at_goal:.1f} / "
         f"{ts.episode_length}, final-step success {ts.final_success:.3f} on the evaluation goals); the students of "
         f"`{ENV}` see the ball's position and the goal only. Each preset has its own DAgger run per condition "
         "(same teacher, [distill] config and seeds); all files are evaluated on the same 256 goals."),
        "",
        (f"noisy: distilled and evaluated under {noisy.perturbation} (the teacher labels from its clean view)."
         if noisy is not None else ""),
        "",
        (f"Host: {context['host']['cpu']} ({context['host']['cpu_count']} cores), load "
         f"{context['host']['loadavg_1m_at_start']} → {context['host']['loadavg_1m_at_end']}; wall {wall_s / 60:.0f} min."),
        "",
        ("ratio: time at goal over the teacher's (fp32 files). p99: batch 1 in ONNX Runtime, one CPU thread, on the "
        "exported file (a GRU's state fed back each call)."),
        "",
        ("| student | family | params | clean: ratio | clean: final-step | noisy: ratio | noisy: final-step | "
        "noisy-trained, clean eval: ratio | p99 ms (clean run) | p99 ms (noisy run) |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r.condition, r.preset): r for r in rows}
    for preset in dict.fromkeys(r.preset for r in rows):
        c, n = by.get(("clean", preset)), by.get(("noisy", preset))
        any_row = c or n
        cell = lambda r, f: "—" if r is None else f(r)
        lines.append(
            f"| {preset} | {any_row.shape} | {any_row.params:,} | {cell(c, lambda r: f'{r.time_at_goal_ratio:.3f}')} | "
            f"{cell(c, lambda r: f'{r.final_success:.3f}')} | {cell(n, lambda r: f'{r.time_at_goal_ratio:.3f}')} | "
            f"{cell(n, lambda r: f'{r.final_success:.3f}')} | {cell(n, lambda r: f'{r.clean_time_at_goal_ratio:.3f}')} | "
            f"{cell(c, lambda r: f'{r.p99_ms:.4f}')} | {cell(n, lambda r: f'{r.p99_ms:.4f}')} |")
    lines += ["", "## Sim2sim: each fp32 file in plain MuJoCo (C engine) against MJX, same goals", "",
              ("| condition | student | setting | time at goal MJX | time at goal MuJoCo | final-step MJX | "
              "final-step MuJoCo | episodes |"), "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for s in r.sim2sim:
            lines.append(f"| {r.condition} | {r.preset} | {'perturbed' if s['perturbed'] else 'clean'} | "
                         f"{s['mjx_time_at_goal']:.1f} | {s['mujoco_time_at_goal']:.1f} | {s['mjx_final_success']:.3f} | "
                         f"{s['mujoco_final_success']:.3f} | {s['episodes']} |")
    lines += ["", "Per-precision tables and Pareto plots: "
              + ", ".join(f"`benchmarks/results/sweep_{s.name.removeprefix('sweep-')}_cpu.md`" for s in sweeps.values())]
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    presets = list(dict.fromkeys(r.preset for r in rows))
    by = {(r.condition, r.preset): r for r in rows}
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    x = np.arange(len(presets))
    for i, (condition, colour) in enumerate((("clean", "tab:blue"), ("noisy", "tab:orange"))):
        vals = [by[(condition, p)].time_at_goal_ratio if (condition, p) in by else np.nan for p in presets]
        bars = ax.bar(x + (i - 0.5) * 0.38, vals, 0.38, color=colour,
                      label=condition + (" (noise + 1-step delay)" if condition == "noisy" else ""))
        for b, v in zip(bars, vals):
            if np.isfinite(v):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    labels = [f"{p}\n{next(r.shape for r in rows if r.preset == p)}" for p in presets]
    ax.set_xticks(x, labels, fontsize=8)
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="teacher (sees velocity)")
    ax.set_ylabel("time at goal / teacher's (fp32 file)")
    ax.set_title("velocity-blind point maze: students with and without memory")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated student presets")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated: clean, noisy")
    parser.add_argument("--latency-calls", type=int, default=2000, help="timed calls per file")
    parser.add_argument("--out", default=str(project_root() / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    presets = tuple(p for p in args.presets.split(",") if p)
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    sweeps = {}
    for condition in args.conditions.split(","):
        config = load_dagger_config(project_root() / CONDITIONS[condition])
        sweeps[condition] = run_sweep(SweepRequest(teacher=TEACHER, presets=presets, config=config,
                                                   name=f"sweep-blind_{condition}", env=ENV,
                                                   latency_calls=args.latency_calls))
        log.info("sweep blind_%s finished", condition)
    rows = [row for condition, sweep in sweeps.items() for row in _rows(condition, sweep)]
    import jax

    context = run_context(jax.devices()[0], load_start)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    write_text_atomic(out / "memory_blind_maze_cpu.json", json.dumps(
        {"context": context, "teacher": TEACHER, "env": ENV, "presets": list(presets),
         "conditions": {c: CONDITIONS[c] for c in sweeps}, "wall_s": wall,
         "sweeps": {c: s.to_dict() for c, s in sweeps.items()}, "rows": [asdict(r) for r in rows]}, indent=1))
    text = render(rows, sweeps, context, wall)
    write_text_atomic(out / "memory_blind_maze_cpu.md", text)
    plot(rows, out / "memory_blind_maze_cpu.png")
    print(text)
    return 0


if __name__ == "__main__":
    with console_logging():
        sys.exit(main())
