"""Does depth matter on a maze? Final-step success and time at goal against env steps, per depth.

Reads the training curves of the study's recipes (teachers named `<env>_<depth>` and
`<env>_<depth>_seed<k>`, e.g. point_medium_maze_4, point_medium_maze_4_seed1; same width, env
steps and everything else but depth and seed), from runs/teachers/NAME/curve.csv (a training in
progress) or teachers/NAME/curve.csv (a finished one), and writes one PNG (two panels: final-step
success and time at goal against env steps; a thin line per seed, a thick one for the mean) and a
table (per depth: seeds, env steps reached, the last row's figures, env steps to 80% final-step
success, training hours) to benchmarks/results/depth_<env>.{md,json,png}.

    python benchmarks/depth_study.py --env point_medium_maze
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from distill.atomic import write_text_atomic
from distill.paths import project_root, teachers_dir

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.8


@dataclass(frozen=True)
class Curve:
    name: str
    depth: int
    seed: int
    env_steps: np.ndarray
    final_success: np.ndarray
    time_at_goal: np.ndarray
    wall_s: np.ndarray

    def steps_to(self, target: float) -> int | None:
        """Env steps of the first row at or above `target` final-step success (None: never)."""
        hit = np.flatnonzero(self.final_success >= target)
        return int(self.env_steps[hit[0]]) if hit.size else None


def study_names(names: list[str], env: str) -> dict[str, tuple[int, int]]:
    """name -> (depth, seed) for the names that follow `<env>_<depth>[_seed<k>]` (seed 0 unnamed)."""
    pattern = re.compile(rf"^{re.escape(env)}_(\d+)(?:_seed(\d+))?$")
    out = {}
    for name in names:
        m = pattern.match(name)
        if m:
            out[name] = (int(m.group(1)), int(m.group(2) or 0))
    return out


def read_curve(path: Path, name: str, depth: int, seed: int) -> Curve:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    col = lambda k: np.asarray([float(r[k]) for r in rows], np.float64)
    return Curve(name, depth, seed, col("env_steps"), col("final_success"), col("time_at_goal"), col("wall_s"))


def find_curves(env: str, root: Path | None = None) -> list[Curve]:
    """The live curve of each study run where one exists, else the shipped one."""
    root = root or project_root()
    names = sorted({p.name for base in (root / "runs" / "teachers", teachers_dir()) if base.is_dir()
                    for p in base.iterdir() if p.is_dir()})
    curves = []
    for name, (depth, seed) in sorted(study_names(names, env).items(), key=lambda kv: kv[1]):
        for path in (root / "runs" / "teachers" / name / "curve.csv", teachers_dir() / name / "curve.csv"):
            if path.is_file():
                curves.append(read_curve(path, name, depth, seed))
                break
    return curves


@dataclass(frozen=True)
class DepthRow:
    depth: int
    seeds: int
    env_steps: int
    """The fewest env steps any seed of this depth reached (the rows compare there)."""
    final_success: float
    final_success_min: float
    final_success_max: float
    time_at_goal: float
    steps_to_target: list
    """Per seed: env steps to 80% final-step success (None: not yet)."""
    hours: float
    """Mean training wall time to the compared env steps."""


def summarise(curves: list[Curve]) -> list[DepthRow]:
    rows = []
    for depth in sorted({c.depth for c in curves}):
        group = [c for c in curves if c.depth == depth]
        upto = int(min(c.env_steps[-1] for c in group))
        last = [int(np.flatnonzero(c.env_steps <= upto)[-1]) for c in group]
        fs = [float(c.final_success[i]) for c, i in zip(group, last)]
        rows.append(DepthRow(
            depth=depth, seeds=len(group), env_steps=upto, final_success=float(np.mean(fs)),
            final_success_min=min(fs), final_success_max=max(fs),
            time_at_goal=float(np.mean([c.time_at_goal[i] for c, i in zip(group, last)])),
            steps_to_target=[c.steps_to(TARGET) for c in group],
            hours=float(np.mean([c.wall_s[i] for c, i in zip(group, last)]) / 3600),
        ))
    return rows


def markdown(env: str, rows: list[DepthRow], curves: list[Curve]) -> str:
    lines = [f"# Does depth matter on {env}?", "",
             (f"Same recipe but depth and seed (runs: {', '.join(c.name for c in curves)}); the deterministic actor "
              "on the curve's fixed goals. Each depth's figures are at the fewest env steps any of its seeds "
              "reached."), "",
             ("| depth | seeds | env steps | final-step success (min-max) | time at goal | env steps to 80% final-step "
             "(per seed) | training h |"),
             "|---:|---:|---:|---|---:|---|---:|"]
    for r in rows:
        to = ", ".join(f"{s:,}" if s is not None else "not yet" for s in r.steps_to_target)
        lines.append(f"| {r.depth} | {r.seeds} | {r.env_steps:,} | {r.final_success:.3f} "
                     f"({r.final_success_min:.3f}-{r.final_success_max:.3f}) | {r.time_at_goal:.1f} | {to} | "
                     f"{r.hours:.2f} |")
    return "\n".join(lines) + "\n"


def plot(env: str, curves: list[Curve], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, depth in enumerate(sorted({c.depth for c in curves})):
        group = [c for c in curves if c.depth == depth]
        colour = colours[k % len(colours)]
        for ax, field in zip(axes, ("final_success", "time_at_goal")):
            for c in group:
                ax.plot(c.env_steps / 1e6, getattr(c, field), color=colour, lw=0.8, alpha=0.45)
            n = min(len(c.env_steps) for c in group)
            mean = np.mean([getattr(c, field)[:n] for c in group], axis=0)
            ax.plot(group[0].env_steps[:n] / 1e6, mean, color=colour, lw=2.2,
                    label=f"depth {depth} ({len(group)} seed{'s' if len(group) > 1 else ''})")
    axes[0].set_ylabel("final-step success")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].axhline(TARGET, color="grey", lw=0.8, ls="--")
    axes[1].set_ylabel("time at goal (steps)")
    for ax in axes:
        ax.set_xlabel("env steps (millions)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"CRL teachers on {env}: depth against env steps (thin: seeds, thick: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="point_medium_maze")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    curves = find_curves(args.env)
    if not curves:
        raise SystemExit(f"depth_study: no curves of runs named {args.env}_<depth>[_seed<k>] in runs/teachers/ "
                         "or teachers/")
    rows = summarise(curves)
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"depth_{args.env}"
    write_text_atomic(stem.with_suffix(".json"), json.dumps(
        {"env": args.env, "target_final_success": TARGET, "rows": [asdict(r) for r in rows],
         "runs": [{"name": c.name, "depth": c.depth, "seed": c.seed, "rows": len(c.env_steps)} for c in curves]},
        indent=1))
    write_text_atomic(stem.with_suffix(".md"), markdown(args.env, rows, curves))
    plot(args.env, curves, stem.with_suffix(".png"))
    print(markdown(args.env, rows, curves))
    print(f"wrote {stem}.md, .json and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
