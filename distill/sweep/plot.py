"""The sweep's picture: success against p99 latency (log x), the budget line, the Pareto front,
the teacher as a reference point."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from distill.atomic import atomic_path
from distill.sweep.records import SweepReport

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}


def plot_sweep(sweep: SweepReport, path: Path) -> Path:
    teacher_time = sweep.teacher_success.time_at_goal or float("nan")
    ratio = lambda e: sweep.score(e).time_at_goal / teacher_time
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    presets = sorted({e.preset for e in sweep.entries}, key=lambda p: min(e.params for e in sweep.entries
                                                                          if e.preset == p))
    colours = {p: plt.cm.viridis(i / max(len(presets) - 1, 1)) for i, p in enumerate(presets)}
    for e in sweep.entries:
        ax.scatter(e.ort.p99_ms, ratio(e), marker=MARKERS.get(e.precision, "x"), s=70, color=colours[e.preset],
                   edgecolor="black", linewidth=0.5, zorder=3)
        if e.device is not None:  # the robot's own figure, joined to the host's
            ax.scatter(e.device.p99_ms, ratio(e), marker=MARKERS.get(e.precision, "x"), s=110,
                       facecolor="none", edgecolor="crimson", linewidth=1.5, zorder=4)
            ax.plot([e.ort.p99_ms, e.device.p99_ms], [ratio(e)] * 2, color="crimson", lw=0.8, ls=":")
    front = sweep.pareto()
    ax.step([e.p99_ms for e in front], [ratio(e) for e in front], where="post", color="black", lw=1.2,
            zorder=2, label="Pareto front (time at goal up, p99 down)")
    ax.scatter([e.p99_ms for e in front], [ratio(e) for e in front], s=190, facecolor="none", edgecolor="black",
               linewidth=1.2, zorder=2, label="on the front")
    ax.scatter(sweep.teacher_ort.p99_ms, 1.0, marker="*", s=260, color="gold", edgecolor="black", zorder=5,
               label=f"teacher {sweep.teacher.name} (actor, ONNX Runtime)")
    ax.axvline(sweep.budget_p99_ms, color="crimson", ls="--", lw=1.2,
               label=f"{sweep.target} budget p99 ≤ {sweep.budget_p99_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("p99 latency at batch 1, ms (ONNX Runtime, 1 CPU thread on this host; red rings: on the robot)")
    perturbed = f"\nunder {sweep.perturbation} (teacher: clean)" if sweep.perturbed else ""
    ax.set_ylabel("time at goal / teacher's" + (" (perturbed)" if sweep.perturbed else ""))
    ax.set_title(f"{sweep.name}: students of {sweep.teacher.name} on {sweep.env}{perturbed}")
    shapes = {e.preset: e.shape for e in sweep.entries}
    for p in presets:
        ax.scatter([], [], marker="o", color=colours[p], label=f"{p} ({shapes[p]})")
    for precision, marker in MARKERS.items():
        ax.scatter([], [], marker=marker, color="grey", label=precision)
    ax.grid(True, which="both", alpha=0.3)
    # below the axes: inside, it hides the low-success students a blind or noisy sweep puts bottom right
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return path
