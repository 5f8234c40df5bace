"""`distill run`: env -> rollouts -> dataset -> DAgger student -> ONNX -> latency and success report."""

from __future__ import annotations

import argparse
import platform
import time
import tomllib
from pathlib import Path

import jax

import distill
from distill.bench.latency import (
    LatencyResult,
    available_backends,
    cpu_name,
    jax_latency,
    ort_latency,
    torch_cuda_graph_latency,
    torch_eager_latency,
)
from distill.bench.onnx_success import evaluate_onnx
from distill.bench.report import RANDOM_INIT_WARNING, render_markdown, write_report
from distill.bench.targets import load_target, verdict
from distill.dagger import DaggerConfig, evaluation_key, run_dagger
from distill.data import RolloutReader
from distill.envs import make_env
from distill.errors import DistillError
from distill.export.onnx_export import export_onnx
from distill.export.precision import make_fp16, make_int8_qdq
from distill.export.teacher_onnx import TeacherActorModule, export_teacher_actor_onnx
from distill.paths import datasets_dir, students_dir
from distill.students.presets import get_preset, load_train_config
from distill.teachers import load_teacher, networks

LATENCY_CALLS = 2000
LATENCY_WARMUP = 200


def load_dagger_config(path: str | None) -> DaggerConfig:
    if not path:
        return DaggerConfig()
    p = Path(path)
    if not p.is_file():
        raise DistillError(f"--config {path}: no such file")
    try:
        doc = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DistillError(f"{path}: invalid TOML ({exc})") from None
    return DaggerConfig.from_dict(doc.get("distill", {}))


def _latency(student_onnx: Path, teacher_onnx: Path, student, teacher) -> list[tuple[str, LatencyResult]]:
    """Batch-1 latency of both models: ONNX Runtime on one CPU thread (as on the robot's CPU) for the
    like-for-like ratio, plus each model in its own framework."""
    calls = {"n_calls": LATENCY_CALLS, "warmup": LATENCY_WARMUP, "progress": True}
    input_dim = teacher.arch.obs_dim + teacher.arch.goal_dim
    rows = [
        ("student", ort_latency(student_onnx, threads=1, **calls)),
        ("teacher actor", ort_latency(teacher_onnx, threads=1, **calls)),
        ("student", torch_eager_latency(student, input_dim, threads=1, **calls)),
        ("teacher actor", jax_latency(networks.actor_act, teacher.actor_params, input_dim, **calls)),
    ]
    if "torch_cuda_graph" in available_backends():  # a GPU host: both models as captured CUDA graphs
        rows += [
            ("student", torch_cuda_graph_latency(student, input_dim, **calls)),
            ("teacher actor", torch_cuda_graph_latency(TeacherActorModule(teacher.actor_params), input_dim, **calls)),
        ]
    return rows


def run_command(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    teacher = load_teacher(args.teacher, random_init=args.random_init)
    if teacher.random_init:
        print(RANDOM_INIT_WARNING)
    env = make_env(teacher.env)
    preset = get_preset(args.preset)
    train_cfg = load_train_config(args.preset)
    cfg = load_dagger_config(args.config)
    run = args.run or f"{teacher.name}-{preset.name}{'-random' if teacher.random_init else ''}"
    student_dir = students_dir() / run
    dataset_path = datasets_dir() / run / "rollouts.h5"
    print(f"distill run {run}: teacher {teacher.name} on {env.spec.name}, student {preset.name}, "
          f"{cfg.rounds} DAgger rounds x {cfg.envs} envs x {cfg.episodes_per_round} episode(s)")
    result = run_dagger(
        env, teacher, preset, train_cfg, cfg, dataset_path, student_dir,
        lineage={"run": run, "preset": preset.name, "dagger": cfg.__dict__, "train": train_cfg.__dict__,
                 "teacher_dir": str(teacher.directory)},
    )
    student = result.student

    export = export_onnx(student, student_dir / "student.onnx")
    teacher_export = export_teacher_actor_onnx(teacher, student_dir / "teacher_actor.onnx")
    rows = RolloutReader(dataset_path).read(("obs",))["obs"]
    variants = [make_fp16(export.path, student_dir / "student.fp16.onnx", eval_obs=rows[-4096:]),
                make_int8_qdq(export.path, student_dir / "student.int8.qdq.onnx", calibration_obs=rows,
                              eval_obs=rows[-4096:])]
    onnx_success = {
        name: evaluate_onnx(env, path, evaluation_key(cfg), cfg.eval_episodes).as_dict()
        for name, path in (("fp32", export.path), *((v.precision, v.path) for v in variants))
    }
    latency = _latency(export.path, teacher_export.path, student, teacher)
    (_, student_ort), (_, teacher_ort) = latency[0], latency[1]
    target = load_target("go2")
    tv = verdict(student_ort, target)

    s_metrics = result.rounds[-1]["student"]
    t_metrics = result.teacher_metrics.as_dict()
    ratio = lambda key: (s_metrics[key] / t_metrics[key]) if t_metrics[key] else float("nan")
    report = {
        "run": run,
        "random_init": teacher.random_init,
        "env": env.spec.name,
        "distill_version": distill.__version__,
        "teacher": {"name": teacher.name, "actor_depth": teacher.arch.actor_depth,
                    "critic_depth": teacher.arch.critic_depth, "width": teacher.arch.width,
                    "actor_params": networks.count_params(teacher.actor_params),
                    "weights_sha256": teacher.weights_sha256},
        "student": {"preset": preset.name, "depth": preset.depth, "width": preset.width,
                    "params": student.num_params()},
        "success": {"teacher": t_metrics, "student": s_metrics, "ratio_success": ratio("success"),
                    "ratio_time_at_goal": ratio("time_at_goal"), "ratio_final_success": ratio("final_success")},
        "rounds": result.rounds,
        "latency": {"host": f"{cpu_name()} ({platform.machine()}), jax {jax.__version__}",
                    "rows": [{"model": model, **r.to_dict()} for model, r in latency],
                    "speedup_ort": teacher_ort.median_ms / student_ort.median_ms},
        "variants": [{"precision": "fp32", "max_abs_err": export.max_abs_err, "mean_abs_err": None,
                      "qdq_nodes": 0, "path": str(export.path), "success": onnx_success["fp32"]}]
        + [{"precision": v.precision, "max_abs_err": v.max_abs_err, "mean_abs_err": v.mean_abs_err,
            "qdq_nodes": v.qdq_nodes, "path": str(v.path), "success": onnx_success[v.precision]}
           for v in variants],
        "target": {"name": target.name, "budget_p99_ms": target.budget_p99_ms, "control_hz": target.control_hz,
                   "student_p99_ms": student_ort.p99_ms, "meets_budget": bool(tv["meets_budget"]),
                   "note": "measured on this host's CPU, not the robot: rebuild and time on the Jetson"},
        "artifacts": {"dataset": str(dataset_path), "student": str(student_dir / "student"),
                      "student_onnx": str(export.path), "teacher_actor_onnx": str(teacher_export.path),
                      "report": str(student_dir / "report.md")},
        "wall_s": time.perf_counter() - t0,
    }
    write_report(report, student_dir)
    print()
    print(render_markdown(report))
    return 0
