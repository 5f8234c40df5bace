"""`distill sweep`: several presets distilled from one teacher by the pipeline (one `distill run`
each, reused when already finished with the same config), every exported file measured, the
`SweepReport` written (`distill.sweep.files`)."""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import numpy as np

from distill.bench.latency import cpu_name, ort_latency
from distill.bench.targets import load_target
from distill.dagger import HELDOUT_FILE, STATE_FILE, DaggerConfig, HeldOutStates
from distill.errors import DistillError
from distill.export.onnx_export import ort_session, run_onnx
from distill.export.stepper import OnnxPolicy
from distill.hashing import sha256_file
from distill.labels import critic_values
from distill.paths import project_root, relative_to_root, students_dir
from distill.pipeline import RunRequest, check_run_name, run_distillation
from distill.progress import progress_bar
from distill.report import RunReport
from distill.students.presets import get_preset
from distill.sweep import DEFAULT_PRESETS
from distill.sweep.files import write_sweep
from distill.sweep.records import SweepEntry, SweepReport, student_flops
from distill.teachers import load_teacher

log = logging.getLogger(__name__)


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


def finished_run(run: str, cfg: DaggerConfig) -> RunReport | None:
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
            params=report.student.params, flops=flops, precision=v.precision, file=relative_to_root(path),
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
        report = finished_run(run, request.config)
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
