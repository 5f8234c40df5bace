"""The sweep as typed records: one `SweepEntry` per exported student file (its size, success in MJX,
latency at batch 1, the robot's own timing once brought back), `SweepReport` holding them with the
teacher as a reference point, the Pareto front, the best file within the budget, and the table.

Fairness: every preset gets its own DAgger run (`distill run` with the same teacher, [distill]
config and seeds), so each student is trained on the states its own policy visits, and every
policy — teacher, students, their fp16 / int8 files — is evaluated on the same goals (the run's
evaluation key) and its critic gap measured on the same held-out teacher states.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from distill.bench.latency import LatencyResult
from distill.errors import DistillError
from distill.report import TeacherInfo
from distill.rollouts import EpisodeMetrics
from distill.ship.robot.trtexec_summary import DeviceTiming

SWEEP_JSON, SWEEP_MD, SWEEP_PNG = "sweep.json", "sweep.md", "sweep.png"
FAIRNESS = ("each preset has its own DAgger run with the same teacher, [distill] config and seeds; all "
            "policies and precisions are evaluated on the same goals and their critic gaps measured on the "
            "same held-out teacher states")


def mlp_flops(input_dim: int, depth: int, width: int, action_dim: int) -> int:
    """Floating-point operations of one student forward pass: 2 per multiply-add of each Gemm, plus
    one per bias, activation (ELU, final tanh) and normaliser entry (subtract, divide)."""
    sizes = [input_dim] + [width] * depth + [action_dim]
    gemms = sum(2 * a * b + b for a, b in itertools.pairwise(sizes))
    return gemms + 2 * input_dim + width * depth + action_dim


def gru_flops(input_dim: int, hidden: int, layers: int) -> int:
    """One step of a GRU stack: per layer the three gates' input and recurrent products (2 per
    multiply-add), their two biases, and ~8 per unit for the sigmoids, tanh and the state update."""
    total, width = 0, input_dim
    for _ in range(layers):
        total += 2 * 3 * hidden * (width + hidden) + 6 * hidden + 8 * hidden
        width = hidden
    return total


def student_flops(obs_dim: int, family: str, depth: int, width: int, action_dim: int, history: int = 1,
                  hidden: int = 0, layers: int = 0) -> int:
    """One control step of a student of any family (`obs_dim`: one observation's width)."""
    if family == "gru":
        head = mlp_flops(hidden, depth, width, action_dim) - 2 * hidden  # its input is not normalised
        return 2 * obs_dim + gru_flops(obs_dim, hidden, layers) + head
    return mlp_flops(obs_dim * (history if family == "history" else 1), depth, width, action_dim)


@dataclass(frozen=True)
class SweepEntry:
    """One exported student file: its size, its success in MJX, its latency at batch 1."""

    run: str
    preset: str
    depth: int
    width: int
    params: int
    flops: int
    precision: str
    file: str
    """Relative to the project root where the file lies inside it (`distill.paths.relative_to_root`)."""
    sha256: str
    success: EpisodeMetrics
    critic_gap: float
    """Mean Q(s, a_teacher, g) − Q(s, a_file, g) on the run's held-out teacher states."""
    action_err_max: float
    """fp32: |ONNX − PyTorch|; fp16 / int8: |file − fp32 ONNX| on dataset rows."""
    action_err_mean: float | None
    ort: LatencyResult
    """ONNX Runtime, one CPU thread, on this host."""
    torch_eager: LatencyResult | None = None
    cuda_graph: LatencyResult | None = None
    device: DeviceTiming | None = None
    """The robot's own trtexec figures for this file, once a ship bundle brought them back."""
    family: str = "mlp"
    history: int = 1
    hidden: int = 0
    layers: int = 0
    success_perturbed: EpisodeMetrics | None = None
    """Under the sweep's perturbations (noise, stale observations, delay), same goals; None without."""

    @property
    def p99_ms(self) -> float:
        """The p99 the budget verdict rests on: the robot's when measured there, else this host's."""
        return self.device.p99_ms if self.device is not None else self.ort.p99_ms

    @property
    def label(self) -> str:
        return f"{self.preset} {self.precision}"

    @property
    def shape(self) -> str:
        """The student's family and size, e.g. "MLP 2x256", "history 4, MLP 2x256", "GRU 1x64 + 1x128"."""
        if self.family == "gru":
            return f"GRU {self.layers}x{self.hidden} + {self.depth}x{self.width}"
        if self.family == "history":
            return f"history {self.history}, MLP {self.depth}x{self.width}"
        return f"MLP {self.depth}x{self.width}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepEntry:
        opt = lambda v, kind: None if v is None else kind(**v)
        return cls(**{**d, "success": EpisodeMetrics(**d["success"]), "ort": LatencyResult(**d["ort"]),
                      "torch_eager": opt(d.get("torch_eager"), LatencyResult),
                      "cuda_graph": opt(d.get("cuda_graph"), LatencyResult),
                      "device": opt(d.get("device"), DeviceTiming),
                      "success_perturbed": opt(d.get("success_perturbed"), EpisodeMetrics)})


@dataclass(frozen=True)
class SweepReport:
    name: str
    env: str
    teacher: TeacherInfo
    teacher_success: EpisodeMetrics
    teacher_ort: LatencyResult
    """The teacher's actor exported like a student (TensorRT-8.5-ready ONNX), same backend."""
    target: str
    target_device: str
    budget_p99_ms: float
    control_hz: float
    host: str
    config: dict[str, Any]
    entries: tuple[SweepEntry, ...]
    fairness: str = FAIRNESS
    wall_s: float = 0.0
    random_init: bool = False
    env_name: str = ""
    """The env the students were distilled in, where it is not the teacher's (e.g. a blind student)."""
    perturbation: str = ""
    """The sweep's perturbations ("" or "none": none); with some, success under them is the figure
    the Pareto front and the verdict rest on."""

    @property
    def perturbed(self) -> bool:
        return any(e.success_perturbed is not None for e in self.entries)

    def score(self, entry: SweepEntry) -> EpisodeMetrics:
        """The success figures a file is judged by: under the perturbations when the sweep has them."""
        return entry.success_perturbed if self.perturbed and entry.success_perturbed is not None else entry.success

    @property
    def latency_device(self) -> str:
        """"cuda" when the sweep's latencies include PyTorch CUDA-graph timings (it ran on a GPU
        host), else "cpu": read from the entries, not from the host that writes the files."""
        return "cuda" if any(e.cuda_graph is not None for e in self.entries) else "cpu"

    def meets_budget(self, entry: SweepEntry) -> bool:
        return entry.p99_ms <= self.budget_p99_ms

    def pareto(self) -> tuple[SweepEntry, ...]:
        """Entries no other entry beats on both axes (time at goal up, p99 down), fastest first."""
        t = lambda e: self.score(e).time_at_goal
        front = [e for e in self.entries if not any(
            t(o) >= t(e) and o.p99_ms <= e.p99_ms and (t(o) > t(e) or o.p99_ms < e.p99_ms) for o in self.entries)]
        return tuple(sorted(front, key=lambda e: e.p99_ms))

    def best_within_budget(self) -> SweepEntry | None:
        """The most successful file (time at goal, then final-step success) whose p99 fits the budget;
        the faster of equals."""
        fits = [e for e in self.entries if self.meets_budget(e)]
        if not fits:
            return None
        return min(fits, key=lambda e: (-self.score(e).time_at_goal, -self.score(e).final_success, e.p99_ms))

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["entries"] = [e.to_dict() for e in self.entries]
        return doc

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepReport:
        return cls(**{**d, "teacher": TeacherInfo(**d["teacher"]),
                      "teacher_success": EpisodeMetrics(**d["teacher_success"]),
                      "teacher_ort": LatencyResult(**d["teacher_ort"]),
                      "entries": tuple(SweepEntry.from_dict(e) for e in d["entries"])})

    @classmethod
    def load(cls, directory: str | Path) -> SweepReport:
        path = Path(directory) / SWEEP_JSON
        if not path.is_file():
            raise DistillError(f"{path} not found: run `distill sweep` first (or pass --sweep with its folder)")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (KeyError, TypeError, ValueError) as exc:
            raise DistillError(f"{path}: not a sweep this distill reads ({exc}); rerun `distill sweep`") from None


def attach_device_timings(sweep: SweepReport, timings: list[DeviceTiming]) -> tuple[SweepReport, list[DeviceTiming]]:
    """Each timing goes to the entry whose file it was measured on (by the ONNX's sha256); returns
    the updated sweep and the timings that matched no entry."""
    by_sha = {t.model_sha256: t for t in timings if t.model_sha256}
    entries = tuple(replace(e, device=by_sha.get(e.sha256, e.device)) for e in sweep.entries)
    unmatched = [t for t in timings if t.model_sha256 not in {e.sha256 for e in entries}]
    return replace(sweep, entries=entries), unmatched



# --- the table ----------------------------------------------------------------------------------
def _ms(r: LatencyResult | None) -> str:
    return "—" if r is None else f"{r.median_ms:.4f} / {r.p99_ms:.4f}"


def render_sweep(sweep: SweepReport) -> str:
    t, ts = sweep.teacher, sweep.teacher_success
    front = {e.label for e in sweep.pareto()}
    lines = []
    if sweep.random_init:
        lines += ["WARNING: random-init teacher: success figures are meaningless (systems benchmark only).", ""]
    perturbed = sweep.perturbed
    extra_head = " perturbed time at goal (ratio) | perturbed final-step |" if perturbed else ""
    lines += [
        f"# Student sweep `{sweep.name}`: latency against success",
        "",
        (f"teacher `{t.name}` (env {sweep.env}, actor depth {t.actor_depth}, critic depth {t.critic_depth}, width "
         f"{t.width}); target `{sweep.target}` ({sweep.target_device}): p99 ≤ {sweep.budget_p99_ms:g} ms at "
         f"{sweep.control_hz:g} Hz. Host: {sweep.host}."),
        "",
        f"Fair comparison: {sweep.fairness}.",
        "",
        *([(f"Perturbed: every student was distilled and is evaluated under {sweep.perturbation} (the teacher labels "
            "from its clean view); the clean columns evaluate the same files without them. The Pareto front and "
            "the verdict use the perturbed time at goal."), ""] if perturbed else []),
        ("time at goal: steps within the success radius per episode (the paper's metric); ratio: over the "
         "teacher's. Latency at batch 1, median / p99 ms: ONNX Runtime on one CPU thread for every file, PyTorch "
         "eager for fp32. Robot p99: trtexec on the target, where brought back (`distill bench --device-timings`); "
         "the budget verdict uses it when present, else this host's ONNX Runtime p99 (indicative only)."),
        "",
        ("| student | family | precision | params | FLOPs | reached | time at goal (ratio) | final-step | final dist |"
         f"{extra_head} critic gap | action err max / mean | ORT ms | torch eager ms | robot p99 ms | budget | Pareto |"),
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if perturbed else "") + "---|---|---|---|---|---|---|",
        (f"| teacher `{t.name}` | deep MLP | fp32 | {t.actor_params:,} (actor) | — | {ts.success:.3f} | "
         f"{ts.time_at_goal:.1f} / {ts.episode_length} (1.000) | {ts.final_success:.3f} | {ts.final_distance:.3f} |"
         f"{' — | — |' if perturbed else ''} 0 | — | {_ms(sweep.teacher_ort)} | — | — | "
         f"{'meets' if sweep.teacher_ort.p99_ms <= sweep.budget_p99_ms else 'misses'} | reference |"),
    ]
    ratio_of = lambda m: m.time_at_goal / ts.time_at_goal if ts.time_at_goal else float("nan")
    for e in sorted(sweep.entries, key=lambda e: (e.params, ("fp32", "fp16", "int8").index(e.precision))):
        m, p = e.success, e.success_perturbed
        err_mean = "—" if e.action_err_mean is None else f"{e.action_err_mean:.1e}"
        extra = "" if not perturbed else (" — | — |" if p is None else
                                          f" {p.time_at_goal:.1f} ({ratio_of(p):.3f}) | {p.final_success:.3f} |")
        lines.append(
            f"| {e.preset} | {e.shape} | {e.precision} | {e.params:,} | {e.flops:,} | {m.success:.3f} | "
            f"{m.time_at_goal:.1f} ({ratio_of(m):.3f}) | {m.final_success:.3f} | {m.final_distance:.3f} |{extra} "
            f"{e.critic_gap:.4f} | {e.action_err_max:.1e} / {err_mean} | {_ms(e.ort)} | {_ms(e.torch_eager)} | "
            f"{'—' if e.device is None else f'{e.device.p99_ms:.4f}'} | "
            f"{'meets' if sweep.meets_budget(e) else 'MISSES'} | {'✓' if e.label in front else ''} |")
    best = sweep.best_within_budget()
    lines.append("")
    if best is None:
        lines.append(f"No student meets the {sweep.target} budget.")
    else:
        where = "on the robot" if best.device is not None else "on this host (ONNX Runtime, 1 thread)"
        b = sweep.score(best)
        lines.append(
            f"Best within the {sweep.target} budget: **{best.label}** ({best.shape}) — time at goal "
            f"{b.time_at_goal:.1f}{' under the perturbations' if perturbed else ''} "
            f"= {b.time_at_goal / ts.time_at_goal:.3f} of the teacher's (clean), final-step success "
            f"{b.final_success:.3f} (teacher {ts.final_success:.3f}); p99 {best.p99_ms:.4f} ms {where} = "
            f"{best.p99_ms / sweep.teacher_ort.p99_ms:.4f} of the teacher actor's {sweep.teacher_ort.p99_ms:.4f} ms "
            f"({sweep.teacher_ort.p99_ms / best.p99_ms:.0f}x faster).")
    lines += ["", f"wall time {sweep.wall_s:.0f} s"]
    return "\n".join(lines) + "\n"
