"""The student sweep: FLOPs, the Pareto front, the best student within budget, the plot, the robot's
timings joining the table; and (slow) a real two-preset sweep on the reacher."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from distill.bench.latency import LatencyResult
from distill.dagger import DaggerConfig
from distill.report import TeacherInfo
from distill.rollouts import EpisodeMetrics
from distill.ship.robot.trtexec_summary import DeviceTiming
from distill.students.mlp import MLPStudent
from distill.sweep.files import write_sweep
from distill.sweep.records import (
    SWEEP_JSON,
    SWEEP_MD,
    SWEEP_PNG,
    SweepEntry,
    SweepReport,
    attach_device_timings,
    mlp_flops,
    render_sweep,
)
from distill.sweep.run import SweepRequest, run_sweep

ROOT = Path(__file__).resolve().parent.parent


def test_flops_count_every_multiply_add_twice():
    student = MLPStudent(13, 2, depth=2, width=64)
    weights = sum(m.weight.numel() for m in student.modules() if isinstance(m, torch.nn.Linear))
    biases = sum(m.bias.numel() for m in student.modules() if isinstance(m, torch.nn.Linear))
    elementwise = 2 * 13 + 2 * 64 + 2  # normaliser, ELUs, tanh
    assert mlp_flops(13, 2, 64, 2) == 2 * weights + biases + elementwise


def _latency(p99: float) -> LatencyResult:
    return LatencyResult("onnxruntime_cpu", p99 * 0.8, p99, p99 * 0.85, 100, "test CPU")


def _entry(preset: str, precision: str, time_at_goal: float, p99: float, params: int) -> SweepEntry:
    metrics = EpisodeMetrics(1.0, time_at_goal, 1.0, 0.01, 16, 50)
    return SweepEntry(run=f"s-{preset}", preset=preset, depth=2, width=64, params=params, flops=2 * params,
                      precision=precision, file=f"{preset}.{precision}.onnx", sha256=f"{preset}-{precision}",
                      success=metrics, critic_gap=0.1, action_err_max=1e-3, action_err_mean=1e-4, ort=_latency(p99))


def _sweep(entries) -> SweepReport:
    return SweepReport(
        name="sweep-t", env="reacher", teacher=TeacherInfo("t", 8, 8, 128, 100_000, "ab"),
        teacher_success=EpisodeMetrics(1.0, 40.0, 1.0, 0.01, 16, 50), teacher_ort=_latency(5.0), target="go2",
        target_device="Jetson", budget_p99_ms=1.0, control_hz=50.0, host="test", config={}, entries=tuple(entries))


ENTRIES = [
    _entry("tiny", "fp32", 30.0, 0.02, 500), _entry("tiny", "int8", 29.0, 0.03, 500),  # int8 slower and worse
    _entry("mid", "fp32", 38.0, 0.05, 20_000), _entry("mid", "fp16", 38.0, 0.08, 20_000),
    _entry("big", "fp32", 39.5, 2.0, 800_000), _entry("big", "fp16", 39.0, 0.9, 800_000),
]


def test_pareto_front_and_best_within_budget():
    sweep = _sweep(ENTRIES)
    assert [e.label for e in sweep.pareto()] == ["tiny fp32", "mid fp32", "big fp16", "big fp32"]
    best = sweep.best_within_budget()
    assert best.label == "big fp16"  # big fp32 is better but misses the 1 ms budget
    assert _sweep(ENTRIES[4:5]).best_within_budget() is None
    text = render_sweep(sweep)
    assert "Best within the go2 budget: **big fp16**" in text and "0.975 of the teacher's" in text
    assert text.count("| MISSES |") == 1 and "= 0.1800 of the teacher actor" in text and "(6x faster)" in text


def test_robot_timings_join_by_file_hash_and_decide_the_budget():
    sweep = _sweep(ENTRIES)
    robot = DeviceTiming(median_ms=1.1, p99_ms=1.4, mean_ms=1.2, min_ms=1.0, max_ms=2.0, gpu_compute_median_ms=None,
                         gpu_compute_p99_ms=None, throughput_qps=None, precision="fp16", tensorrt_version="8.5.2",
                         device="Jetson", bundle="b", model_sha256="big-fp16")
    stray = dataclasses.replace(robot, model_sha256="unknown")
    joined, unmatched = attach_device_timings(sweep, [robot, stray])
    assert unmatched == [stray]
    big16 = next(e for e in joined.entries if e.label == "big fp16")
    assert big16.device == robot and big16.p99_ms == 1.4 and not joined.meets_budget(big16)
    assert joined.best_within_budget().label == "mid fp32"  # the robot says big fp16 misses after all
    assert SweepReport.from_dict(joined.to_dict()) == joined


def test_written_table_json_and_png(tmp_path):
    sweep = _sweep(ENTRIES)
    written = write_sweep(sweep, tmp_path / "sweep", tmp_path / "results")
    assert {p.name for p in written} == {SWEEP_JSON, SWEEP_MD, SWEEP_PNG, "sweep_t_cpu.json", "sweep_t_cpu.md",
                                         "sweep_t_cpu.png"}
    assert SweepReport.load(tmp_path / "sweep") == sweep
    with Image.open(tmp_path / "sweep" / SWEEP_PNG) as png:
        assert png.format == "PNG" and png.width > 600 and png.height > 400
        image = np.asarray(png.convert("RGB"), dtype=np.float64) / 255
    assert image.std() > 0.05  # something was drawn
    assert (tmp_path / "results" / "sweep_t_cpu.png").read_bytes() == (tmp_path / "sweep" / SWEEP_PNG).read_bytes()


def test_results_are_named_by_the_sweep_without_its_prefix(tmp_path):
    """Two sweeps of one teacher (a clean and a noisy one) never overwrite each other's results."""
    noisy = dataclasses.replace(_sweep(ENTRIES), name="sweep-blind_noisy")
    write_sweep(_sweep(ENTRIES), tmp_path / "a", tmp_path / "results")
    write_sweep(noisy, tmp_path / "b", tmp_path / "results")
    assert {p.name for p in (tmp_path / "results").iterdir()} == {
        f"sweep_{n}_cpu.{ext}" for n in ("t", "blind_noisy") for ext in ("json", "md", "png")}


def test_results_are_named_by_the_device_the_latencies_were_measured_on(tmp_path):
    """A sweep timed with CUDA graphs keeps its `_cuda` name when re-written on a CPU-only host
    (as `distill bench --device-timings` does), and never overwrites the CPU sweep."""
    gpu = dataclasses.replace(_sweep(ENTRIES), entries=tuple(
        dataclasses.replace(e, cuda_graph=LatencyResult("torch_cuda_graph", 0.01, 0.02, 0.01, 100, "test GPU"))
        if e.precision == "fp32" else e for e in ENTRIES))
    assert gpu.latency_device == "cuda" and _sweep(ENTRIES).latency_device == "cpu"
    write_sweep(_sweep(ENTRIES), tmp_path / "cpu", tmp_path / "results")
    written = write_sweep(gpu, tmp_path / "gpu", tmp_path / "results")
    assert {p.name for p in written if p.parent.name == "results"} == {"sweep_t_cuda.json", "sweep_t_cuda.md",
                                                                        "sweep_t_cuda.png"}
    assert SweepReport.load(tmp_path / "gpu").latency_device == "cuda"  # recorded in the sweep's data
    assert {p.name for p in (tmp_path / "results").iterdir()} >= {"sweep_t_cpu.json", "sweep_t_cuda.json"}


def test_recorded_paths_are_relative_to_the_project_root(tmp_path, monkeypatch):
    from distill.paths import from_root, relative_to_root

    monkeypatch.setenv("DISTILL_ROOT", str(tmp_path))
    inside = tmp_path / "students" / "run" / "student.onnx"
    assert relative_to_root(inside) == "students/run/student.onnx"
    assert from_root("students/run/student.onnx") == inside
    outside = tmp_path.parent / "elsewhere.onnx"
    assert relative_to_root(outside) == str(outside) and from_root(str(outside)) == outside


@pytest.mark.slow
def test_a_real_two_preset_sweep(tmp_path, monkeypatch):
    """Two presets distilled from the shipped reacher teacher, every precision measured."""
    for rel in ("students/presets.toml", "benchmarks/targets/go2.toml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    monkeypatch.setenv("DISTILL_ROOT", str(tmp_path))
    cfg = DaggerConfig(rounds=2, envs=16, eval_episodes=32, heldout_envs=32, heldout_rows=256)
    sweep = run_sweep(SweepRequest(teacher=str(ROOT / "teachers" / "reacher_8"), presets=("mlp_1x32", "mlp_2x256"),
                                   config=cfg, latency_calls=50, results_dir=tmp_path / "results"))
    assert len(sweep.entries) == 6 and {e.precision for e in sweep.entries} == {"fp32", "fp16", "int8"}
    assert all(np.isfinite(e.critic_gap) and e.ort.n_calls == 50 for e in sweep.entries)
    small, big = (sorted({e.params for e in sweep.entries}))
    assert big > 50 * small
    assert sweep.teacher_success.time_at_goal > 30
    assert (tmp_path / "results" / "sweep_reacher_8_cpu.png").is_file()
    assert all(not Path(e.file).is_absolute() for e in sweep.entries)  # relative to the project root
    run_files = sorted((tmp_path / "students" / f"{sweep.name}-mlp_1x32").iterdir())
    stamps = {p.name: p.stat().st_mtime_ns for p in run_files}
    again = run_sweep(SweepRequest(teacher=str(ROOT / "teachers" / "reacher_8"), presets=("mlp_1x32",),
                                   config=cfg, latency_calls=50, results_dir=tmp_path / "results"))
    fp32 = lambda s: next(e for e in s.entries if e.preset == "mlp_1x32" and e.precision == "fp32")
    assert fp32(again).success == fp32(sweep).success
    # reused, not redone: not one file of the finished run was written again
    assert {p.name: p.stat().st_mtime_ns for p in run_files} == stamps
