"""`distill run`: env -> rollouts -> dataset -> DAgger student -> ONNX -> latency and success report.

`run_distillation(RunRequest(...))` is the whole flow as a library call; `run_command` is its
argparse front end.
"""

from __future__ import annotations

import argparse
import logging
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import numpy as np

import distill
from distill import robust, sharding
from distill.artifacts import read_toml
from distill.bench.latency import (
    LatencyResult,
    available_backends,
    cpu_name,
    jax_latency,
    ort_latency,
    torch_cuda_graph_latency,
    torch_eager_latency,
)
from distill.bench.onnx_success import run_onnx_episodes
from distill.bench.sim2sim import EngineRun, compare_engines, supports_plain_mujoco
from distill.bench.targets import load_target, verdict
from distill.dagger import DaggerConfig, evaluation_key, run_dagger, run_env
from distill.data import RolloutReader
from distill.data.episodes import read_sequences
from distill.envs import make_env
from distill.envs.base import GoalEnv
from distill.errors import DistillError
from distill.export.onnx_export import export_onnx
from distill.export.precision import MAX_CALIBRATION_ROWS, make_fp16, make_int8_qdq
from distill.export.teacher_onnx import TeacherActorModule, export_teacher_actor_onnx
from distill.paths import datasets_dir, relative_to_root, students_dir
from distill.report import (
    RANDOM_INIT_WARNING,
    LatencyRow,
    RunReport,
    Sim2SimRecord,
    StudentInfo,
    TeacherInfo,
    VariantRecord,
    render_markdown,
    write_report,
)
from distill.rollouts import EpisodeMetrics
from distill.students.history import HistoryMLPStudent
from distill.students.memory import Recurrence, Student
from distill.students.presets import default_preset_name, get_preset, load_train_config
from distill.teachers import load_teacher, networks
from distill.teachers.teacher import Teacher

log = logging.getLogger(__name__)

LATENCY_CALLS = 2000
LATENCY_WARMUP = 200
LATENCY_BUDGET_S = 15.0
"""Timed seconds per latency row at most: a 512-layer teacher actor takes tens of milliseconds a
call on a CPU, so it gets fewer than LATENCY_CALLS calls, never fewer than LATENCY_MIN_CALLS."""
LATENCY_MIN_CALLS = 200
VARIANT_EVAL_ROWS = 4096
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class RunRequest:
    """What `distill run` is asked to do."""

    teacher: str
    """Zoo name (teachers/NAME) or teacher folder."""
    run: str | None = None
    """Run name (default <teacher>-<preset>): students/RUN/ and datasets/RUN/."""
    preset: str | None = None
    """Student preset (default: the presets file's default)."""
    config: DaggerConfig = field(default_factory=DaggerConfig)
    random_init: bool = False
    env: str | None = None
    """Env to distil in (default: the teacher's). Its teacher observation must be the teacher's;
    its student observation may differ (e.g. reacher_egocentric for a reacher teacher)."""
    backend: str | None = None
    """Physics backend (default: the one the teacher records it was trained in)."""
    force: bool = False
    """Distil even when the teacher does far worse here than its teacher.toml records."""


def check_run_name(name: str) -> str:
    """Run names become folder names under students/ and datasets/: no paths, no dot-dot."""
    if not RUN_NAME.fullmatch(name) or ".." in name:
        raise DistillError(f"run name {name!r}: use letters, digits, '_', '-' and '.' (no '/', no '..', "
                           "at most 128 characters, not starting with '.' or '-')")
    return name


def load_dagger_config(path: str | Path | None) -> DaggerConfig:
    """The [distill] table of a TOML file (None: the defaults)."""
    if not path:
        return DaggerConfig()
    p = Path(path)
    doc = read_toml(p, f"--config {path}: no such file")
    if "distill" not in doc or not isinstance(doc["distill"], dict):
        raise DistillError(f"{path}: no [distill] table (found: {', '.join(map(str, doc)) or 'nothing'}); "
                           "put the run's settings under [distill]")
    return DaggerConfig.from_dict(doc["distill"], f"{path} [distill]")


@dataclass(frozen=True)
class Exports:
    fp32: Path
    fp32_err: float
    variants: tuple  # VariantResult of fp16 and int8
    teacher_actor: Path


def _memory_variants(student: Student, export: Path, student_dir: Path, dataset: Path) -> tuple:
    """fp16 and int8 of a student with memory, calibrated and compared on whole episodes of the last
    round: a history student's stacked windows, a GRU's sequences (its state carried)."""
    reader = RolloutReader(dataset)
    obs, starts = read_sequences(dataset, reader.committed_rounds[-1:], MAX_CALIBRATION_ROWS)
    n = min(VARIANT_EVAL_ROWS, len(obs))
    if isinstance(student, HistoryMLPStudent):
        rows = student.layout.stack_sequence(obs, starts)
        return (make_fp16(export, student_dir / "student.fp16.onnx", eval_obs=rows[:n]),
                make_int8_qdq(export, student_dir / "student.int8.qdq.onnx", calibration_obs=rows, eval_obs=rows[:n]))
    return (make_fp16(export, student_dir / "student.fp16.onnx", eval_obs=obs[:n], eval_starts=starts[:n]),
            make_int8_qdq(export, student_dir / "student.int8.qdq.onnx", calibration_obs=obs, calibration_starts=starts,
                          eval_obs=obs[:n], eval_starts=starts[:n]))


def export_all(student: Student, teacher: Teacher, student_dir: Path, dataset: Path) -> Exports:
    """Student ONNX (fp32, fp16, int8 QDQ calibrated on the last round's rows) and the teacher's actor."""
    export = export_onnx(student, student_dir / "student.onnx")
    if Recurrence.of(student).stateful:
        variants = _memory_variants(student, export.path, student_dir, dataset)
    else:
        reader = RolloutReader(dataset)
        rows = reader.read(("obs",), rounds=reader.committed_rounds[-1:])["obs"]
        eval_rows = rows[np.linspace(0, len(rows) - 1, min(VARIANT_EVAL_ROWS, len(rows))).astype(np.int64)]
        variants = (make_fp16(export.path, student_dir / "student.fp16.onnx", eval_obs=eval_rows),
                    make_int8_qdq(export.path, student_dir / "student.int8.qdq.onnx", calibration_obs=rows,
                                  eval_obs=eval_rows))
    teacher_export = export_teacher_actor_onnx(teacher, student_dir / "teacher_actor.onnx")
    return Exports(export.path, export.max_abs_err, variants, teacher_export.path)


def evaluate_variants(env: GoalEnv, exports: Exports, cfg: DaggerConfig) -> tuple[tuple[VariantRecord, ...],
                                                                                 tuple[Sim2SimRecord, ...]]:
    """Each exported student file driven through the run's evaluation episodes by ONNX Runtime, clean
    and (when the run has them) under its perturbations; and the fp32 file in plain MuJoCo on the same
    goals beside its MJX figures (sim2sim), where the env runs there."""
    key = evaluation_key(cfg)
    perturbation = cfg.perturbation(env)
    conditions = (robust.NONE, perturbation) if perturbation.active else (robust.NONE,)
    runs = {}

    def success(path: Path) -> tuple[EpisodeMetrics, EpisodeMetrics | None]:
        for p in conditions:
            runs[path, p] = EngineRun(*run_onnx_episodes(env, path, key, cfg.eval_episodes, True, p, cfg.eval_batch))
        figures = [runs[path, p].metrics(env.spec.episode_length) for p in conditions]
        return figures[0], figures[1] if len(figures) > 1 else None

    records = [VariantRecord("fp32", relative_to_root(exports.fp32), exports.fp32_err, None, 0, *success(exports.fp32))]
    for v in exports.variants:
        records.append(VariantRecord(v.precision, relative_to_root(v.path), v.max_abs_err, v.mean_abs_err, v.qdq_nodes,
                                     *success(v.path)))
    why_not = supports_plain_mujoco(env)
    if why_not is not None:
        log.info("no sim2sim for %s: %s", env.spec.name, why_not)
        return tuple(records), ()
    sims = []
    for p in conditions:
        sim = compare_engines(env, exports.fp32, key, cfg.eval_episodes, p, mjx=runs[exports.fp32, p])
        sims.append(Sim2SimRecord(relative_to_root(exports.fp32), p.active, sim.mjx, sim.mujoco, sim.mujoco_steps_per_s))
        log.info("sim2sim %s%s: time at goal MJX %.1f, MuJoCo %.1f (%+.1f ± %.1f); final-step %.3f vs %.3f",
                 exports.fp32.name, f" under {p.describe()}" if p.active else "", sim.mjx.time_at_goal,
                 sim.mujoco.time_at_goal, sim.time_at_goal_diff, sim.time_at_goal_se, sim.mjx.final_success,
                 sim.mujoco.final_success)
    return tuple(records), tuple(sims)


def _latency(measure: Callable[..., LatencyResult]) -> LatencyResult:
    """`measure(n_calls=, warmup=, progress=)` with as many calls as LATENCY_BUDGET_S allows after a
    10-call probe (at most LATENCY_CALLS, at least LATENCY_MIN_CALLS)."""
    probe = measure(n_calls=10, warmup=3, progress=False)
    n = int(min(LATENCY_CALLS, max(LATENCY_MIN_CALLS, LATENCY_BUDGET_S * 1e3 / max(probe.median_ms, 1e-3))))
    return measure(n_calls=n, warmup=min(LATENCY_WARMUP, n // 10), progress=True)


def measure_latency(student_onnx: Path, teacher_onnx: Path, student: Student,
                    teacher: Teacher) -> tuple[LatencyRow, ...]:
    """Batch-1 latency of both models: ONNX Runtime on one CPU thread (as on the robot's CPU) for the
    like-for-like ratio, plus each model in its own framework, plus CUDA graphs on a GPU host."""
    teacher_in = teacher.arch.obs_dim + teacher.arch.goal_dim
    rows = [
        LatencyRow("student", _latency(partial(ort_latency, student_onnx, threads=1))),
        LatencyRow("teacher actor", _latency(partial(ort_latency, teacher_onnx, threads=1))),
        LatencyRow("student", _latency(partial(torch_eager_latency, student, student.input_dim, threads=1))),
        LatencyRow("teacher actor", _latency(partial(jax_latency, teacher.act_fn, teacher.actor_params,
                                                     teacher_in))),
    ]
    if "torch_cuda_graph" in available_backends():
        rows += [
            LatencyRow("student", _latency(partial(torch_cuda_graph_latency, student, student.input_dim))),
            LatencyRow("teacher actor", _latency(partial(torch_cuda_graph_latency,
                                                         TeacherActorModule(teacher.actor_params,
                                                                            teacher.arch.activation),
                                                         teacher_in))),
        ]
    return tuple(rows)


def run_env_name(request: RunRequest, teacher: Teacher) -> tuple[str, str | None]:
    """(env, backend) to distil in: the teacher's env on the physics it was trained in, unless the
    request names others (another env's backend defaults to that env's own)."""
    if request.env is None or request.env == teacher.env:
        return teacher.env, request.backend or teacher.backend
    return request.env, request.backend


def run_distillation(request: RunRequest) -> RunReport | None:
    """The whole flow for one teacher and one student preset; writes students/RUN/report.{md,json}.
    Launched as several processes (`distill.sharding`), every process collects its share of each
    round and only process 0 goes on to fit, export, report, and return the report."""
    t0 = time.perf_counter()
    sharding.initialize_distributed()
    if request.run is not None:
        check_run_name(request.run)
    teacher = load_teacher(request.teacher, random_init=request.random_init)
    if teacher.random_init:
        log.warning(RANDOM_INIT_WARNING)
    cfg = request.config
    env = run_env(make_env(*run_env_name(request, teacher)), cfg)
    preset = get_preset(request.preset or default_preset_name())
    train_cfg = load_train_config(preset.name)
    run = check_run_name(request.run or f"{teacher.name}-{preset.name}{'-random' if teacher.random_init else ''}")
    student_dir = students_dir() / run
    dataset_path = datasets_dir() / run / "rollouts.h5"
    log.info("distill run %s: teacher %s on %s, student %s, %d DAgger rounds x %d envs x %d episode(s) of %d steps",
             run, teacher.name, env.spec.name, preset.name, cfg.rounds, cfg.envs, cfg.episodes_per_round,
             env.spec.episode_length)
    # The teacher labels in cfg.teacher_dtype; its exported actor and latency rows stay float32.
    result = run_dagger(
        env, teacher.with_compute_dtype(cfg.teacher_dtype), preset, train_cfg, cfg, dataset_path, student_dir,
        lineage={"run": run, "preset": preset.name, "dagger": cfg.__dict__, "train": train_cfg.__dict__,
                 "teacher_dir": str(teacher.directory), "backend": env.backend},
        check_teacher=not (request.force or teacher.random_init),
    )
    if result is None:
        return None
    student = result.student
    exports = export_all(student, teacher, student_dir, dataset_path)
    variants, sim2sim = evaluate_variants(env, exports, cfg)
    latency = measure_latency(exports.fp32, exports.teacher_actor, student, teacher)
    target = load_target("go2")
    student_ort = next(r.result for r in latency if r.model == "student" and r.result.backend == "onnxruntime_cpu")
    report = RunReport(
        run=run, env=env.spec.name, random_init=teacher.random_init, distill_version=distill.__version__,
        teacher=TeacherInfo(teacher.name, teacher.arch.actor_depth, teacher.arch.critic_depth, teacher.arch.width,
                            networks.count_params(teacher.actor_params), teacher.weights_identity, env.backend,
                            teacher.arch.activation),
        student=StudentInfo(preset.name, preset.depth, preset.width, student.num_params(),
                            env.spec.student_input_dim, preset.family, preset.history, preset.hidden, preset.layers),
        teacher_success=result.teacher_metrics, student_success=result.rounds[-1].student,
        rounds=tuple(result.rounds),
        latency_host=f"{cpu_name()} ({platform.machine()}), jax {jax.__version__}", latency=latency,
        variants=variants,
        target=verdict(student_ort, target),
        artifacts={name: relative_to_root(path) for name, path in (
            ("dataset", dataset_path), ("student", student_dir / "student"), ("student_onnx", exports.fp32),
            ("teacher_actor_onnx", exports.teacher_actor), ("report", student_dir / "report.md"))},
        wall_s=time.perf_counter() - t0,
        student_success_perturbed=result.rounds[-1].student_perturbed,
        perturbation=cfg.perturbation(env).describe(), sim2sim=sim2sim,
    )
    write_report(report, student_dir)
    return report


def request_from_args(args: argparse.Namespace) -> RunRequest:
    return RunRequest(teacher=args.teacher, run=args.run, preset=args.preset,
                      config=load_dagger_config(args.config), random_init=args.random_init,
                      env=getattr(args, "env", None), backend=getattr(args, "backend", None),
                      force=getattr(args, "force", False))


def run_command(args: argparse.Namespace) -> int:
    report = run_distillation(request_from_args(args))
    if report is not None:
        print()
        print(render_markdown(report))
    return 0
