"""Which student to ship: several presets distilled from one teacher, each exported at three
precisions, set latency against success.

Fairness: every preset gets its own DAgger run (`distill run` with the same teacher, [distill]
config and seeds), so each student is trained on the states its own policy visits, and every
policy — teacher, students, their fp16 / int8 files — is evaluated on the same goals (the run's
evaluation key) and its critic gap measured on the same held-out teacher states.

Each (preset, precision) becomes a `SweepEntry`; `SweepReport` holds them with the teacher as a
reference point and renders the table; `distill.bench.sweep_plot` draws the PNG.
"""

from __future__ import annotations

import itertools
import json
import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from distill.atomic import write_text_atomic
from distill.bench.latency import LatencyResult, cpu_name, ort_latency
from distill.bench.report import RunReport, TeacherInfo
from distill.bench.targets import load_target
from distill.dagger import HELDOUT_FILE, STATE_FILE, DaggerConfig, HeldOutStates
from distill.errors import DistillError
from distill.export.onnx_export import ort_session, run_onnx, sha256_file
from distill.export.stepper import OnnxPolicy
from distill.labels import critic_values
from distill.paths import project_root, students_dir
from distill.pipeline import RunRequest, check_run_name, run_distillation
from distill.progress import progress_bar
from distill.rollouts import EpisodeMetrics
from distill.ship.robot.trtexec_summary import DeviceTiming
from distill.students.presets import get_preset
from distill.teachers import load_teacher

log = logging.getLogger(__name__)

SWEEP_JSON, SWEEP_MD, SWEEP_PNG = "sweep.json", "sweep.md", "sweep.png"
DEFAULT_PRESETS = ("mlp_1x32", "mlp_2x64", "mlp_2x256", "mlp_4x512")
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


# --- running it ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepRequest:
    teacher: str
    presets: tuple[str, ...] = DEFAULT_PRESETS
    config: DaggerConfig = field(default_factory=DaggerConfig)
    name: str | None = None
    """Sweep name (default sweep-<teacher>): students/NAME/ and runs NAME-<preset>."""
    env: str | None = None
    """Env to distil in (default: the teacher's), e.g. one whose student sees less (point_u_maze_blind)."""
    target: str = "go2"
    random_init: bool = False
    latency_calls: int = 2000
    results_dir: Path | None = None
    """Where the table, JSON and PNG are copied (default benchmarks/results/)."""


def _finished_run(run: str, cfg: DaggerConfig) -> RunReport | None:
    """A run that already finished with this config (a rerun of the sweep skips it)."""
    run_dir = students_dir() / run
    state = run_dir / STATE_FILE
    if not (run_dir / "report.json").is_file() or not state.is_file():
        return None
    if json.loads(state.read_text()).get("config") != asdict(cfg):
        return None
    return RunReport.load(run_dir)


def _variant_gap(teacher, heldout: HeldOutStates, onnx_path: Path) -> float:
    policy = OnnxPolicy(onnx_path)
    if not policy.stateful:
        actions = run_onnx(ort_session(onnx_path), heldout.student_obs)
    else:  # through each held-out episode, its memory carried, to the kept states
        seq = heldout.student_seq
        per_env = [policy.run_sequence(seq[:, e], heldout.starts[:, e]) for e in range(seq.shape[1])]
        actions = np.stack(per_env, axis=1).reshape(-1, policy.action_dim)[heldout.pick]
    return float(np.mean(heldout.teacher_q - critic_values(teacher, heldout.teacher_obs, actions)))


def _entries(report: RunReport, teacher, calls: int) -> list[SweepEntry]:
    run_dir = students_dir() / report.run
    heldout = HeldOutStates.load(run_dir / HELDOUT_FILE)
    preset, s = get_preset(report.student.preset), report.student
    flops = student_flops(s.input_dim, s.family, s.depth, s.width, heldout.teacher_action.shape[1], s.history,
                          s.hidden, s.layers)
    entries = []
    for v in report.variants:
        path = run_dir / Path(v.path).name
        fp32 = v.precision == "fp32"
        entries.append(SweepEntry(
            run=report.run, preset=preset.name, depth=preset.depth, width=preset.width,
            params=report.student.params, flops=flops, precision=v.precision, file=str(path),
            sha256=sha256_file(path), success=v.success, critic_gap=_variant_gap(teacher, heldout, path),
            action_err_max=v.max_abs_err, action_err_mean=v.mean_abs_err,
            ort=ort_latency(path, threads=1, n_calls=calls, warmup=calls // 10),
            torch_eager=report.latency_of("student", "torch_eager_cpu") if fp32 else None,
            cuda_graph=next((r.result for r in report.latency if r.model == "student"
                             and r.result.backend == "torch_cuda_graph"), None) if fp32 else None,
            family=s.family, history=s.history, hidden=s.hidden, layers=s.layers,
            success_perturbed=v.success_perturbed,
        ))
    return entries


def run_sweep(request: SweepRequest) -> SweepReport:
    t0 = time.perf_counter()
    if not request.presets:
        raise DistillError("no presets to sweep; pass --presets a,b,c")
    teacher = load_teacher(request.teacher, random_init=request.random_init)
    name = check_run_name(request.name or f"sweep-{teacher.name}")
    for preset in request.presets:
        get_preset(preset)
    target = load_target(request.target)
    reports = []
    for preset in progress_bar(request.presets, "sweep", unit="preset", leave=False):
        run = f"{name}-{preset}"
        report = _finished_run(run, request.config)
        if report is None:
            log.info("sweep %s: distilling %s", name, preset)
            report = run_distillation(RunRequest(teacher=request.teacher, run=run, preset=preset,
                                                 config=request.config, random_init=request.random_init,
                                                 env=request.env))
        else:
            log.info("sweep %s: %s already finished with this config, reusing it", name, preset)
        reports.append(report)
    entries = []
    for report in progress_bar(reports, "latency per file", unit="run", leave=False):
        entries += _entries(report, teacher, request.latency_calls)
    first = reports[0]
    sweep = SweepReport(
        name=name, env=first.env, teacher=first.teacher, teacher_success=first.teacher_success,
        teacher_ort=first.latency_of("teacher actor", "onnxruntime_cpu"), target=target.name,
        target_device=target.device, budget_p99_ms=target.budget_p99_ms, control_hz=target.control_hz,
        host=f"{cpu_name()} ({platform.machine()}), jax {jax.__version__}", config=asdict(request.config),
        entries=tuple(entries), wall_s=time.perf_counter() - t0, random_init=teacher.random_init,
        env_name=first.env, perturbation=first.perturbation,
    )
    write_sweep(sweep, students_dir() / name, request.results_dir or project_root() / "benchmarks" / "results")
    return sweep


def attach_device_timings(sweep: SweepReport, timings: list[DeviceTiming]) -> tuple[SweepReport, list[DeviceTiming]]:
    """Each timing goes to the entry whose file it was measured on (by the ONNX's sha256); returns
    the updated sweep and the timings that matched no entry."""
    by_sha = {t.model_sha256: t for t in timings if t.model_sha256}
    entries = tuple(replace(e, device=by_sha.get(e.sha256, e.device)) for e in sweep.entries)
    unmatched = [t for t in timings if t.model_sha256 not in {e.sha256 for e in entries}]
    return replace(sweep, entries=entries), unmatched


# --- writing it ----------------------------------------------------------------------------------
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


def write_sweep(sweep: SweepReport, directory: Path, results_dir: Path | None = None) -> list[Path]:
    """sweep.{json,md,png} in the sweep folder, copied to `results_dir` as sweep_<name>_<cpu|cuda>.* (the
    sweep's name without its `sweep-` prefix: sweep_<teacher>_cpu for the default name; cuda where this
    host timed PyTorch CUDA graphs too, so a GPU run never overwrites the CPU one)."""
    from distill.bench.sweep_plot import plot_sweep

    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(directory / SWEEP_JSON, json.dumps(sweep.to_dict(), indent=1))
    write_text_atomic(directory / SWEEP_MD, render_sweep(sweep))
    plot_sweep(sweep, directory / SWEEP_PNG)
    written = [directory / n for n in (SWEEP_JSON, SWEEP_MD, SWEEP_PNG)]
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        import torch

        stem = f"sweep_{sweep.name.removeprefix('sweep-')}_{'cuda' if torch.cuda.is_available() else 'cpu'}"
        for path in list(written):
            target = results_dir / f"{stem}{path.suffix}"
            shutil.copyfile(path, target)
            written.append(target)
    return written
