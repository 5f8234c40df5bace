"""Latency backends (shape of the results, never absolute times), target profiles, verdicts."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from distill.bench.latency import (
    LatencyResult,
    available_backends,
    jax_latency,
    ort_latency,
    summarize,
    tensorrt_latency,
    time_calls,
    torch_cuda_graph_latency,
    torch_eager_latency,
)
from distill.bench.targets import TargetVerdict, load_target, verdict
from distill.errors import DistillError
from distill.export.onnx_export import export_onnx
from distill.students.jax_mirror import student_apply, student_params_to_jax
from distill.students.mlp import MLPStudent

IN_DIM, ACT_DIM, N_CALLS = 8, 2, 50


@pytest.fixture(scope="module")
def student() -> MLPStudent:
    torch.manual_seed(0)
    return MLPStudent(IN_DIM, ACT_DIM, 2, 32).eval()


@pytest.fixture(scope="module")
def onnx_path(student, tmp_path_factory):
    return export_onnx(student, tmp_path_factory.mktemp("lat") / "student.onnx").path


def check(result: LatencyResult, backend: str) -> None:
    assert result.backend == backend and result.n_calls == N_CALLS
    assert result.median_ms > 0 and result.mean_ms > 0
    assert result.p99_ms >= result.median_ms
    assert result.device


def test_ort_latency(onnx_path):
    check(ort_latency(onnx_path, threads=1, n_calls=N_CALLS, warmup=5), "onnxruntime_cpu")


def test_torch_eager_latency_restores_thread_count(student):
    before = torch.get_num_threads()
    check(torch_eager_latency(student, IN_DIM, n_calls=N_CALLS, warmup=5, threads=1), "torch_eager_cpu")
    assert torch.get_num_threads() == before


def test_jax_latency_of_the_mirror(student):
    params = student_params_to_jax(student)
    check(jax_latency(student_apply, params, IN_DIM, n_calls=N_CALLS, warmup=5), "jax_jit")


def test_time_calls_runs_warmup_then_timed_calls():
    seen: list[tuple[int, ...]] = []
    times = time_calls(lambda obs: seen.append(obs.shape), IN_DIM, n_calls=7, warmup=3)
    assert times.shape == (7,) and np.all(times > 0)
    assert seen == [(1, IN_DIM)] * 10
    with pytest.raises(DistillError, match="n_calls"):
        time_calls(lambda obs: None, IN_DIM, n_calls=0, warmup=0)


def test_summarize_statistics():
    ns = np.arange(1, 101) * 1_000_000  # 1 .. 100 ms
    result = summarize("x", ns)
    assert result.median_ms == pytest.approx(np.median(np.arange(1, 101)))
    assert result.p99_ms == pytest.approx(np.percentile(np.arange(1, 101), 99))
    assert result.mean_ms == pytest.approx(50.5) and result.n_calls == 100


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_graph_backend_refuses_without_cuda(student):
    with pytest.raises(DistillError, match="CUDA is not available"):
        torch_cuda_graph_latency(student, IN_DIM, n_calls=N_CALLS, warmup=5)
    assert "torch_cuda_graph" not in available_backends()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_latency(student):
    check(torch_cuda_graph_latency(student, IN_DIM, n_calls=N_CALLS, warmup=5), "torch_cuda_graph")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_latency_refuses_without_tensorrt(tmp_path):
    with pytest.raises(DistillError, match="TensorRT is not installed"):
        tensorrt_latency(tmp_path / "student.engine", n_calls=N_CALLS)
    assert "tensorrt" not in available_backends()


def test_go2_target_profile():
    target = load_target("go2")
    assert "Orin NX" in target.device and target.jetpack == "5.1" and target.tensorrt.startswith("8.5")
    assert target.control_hz == 50 and target.period_ms == pytest.approx(20.0)
    assert target.budget_p99_ms == pytest.approx(1.0) and target.onnx_opset == 17
    assert load_target(target.source) == target


def test_unknown_and_malformed_targets(tmp_path):
    with pytest.raises(DistillError, match="unknown target 'mars'.*go2"):
        load_target("mars")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n')
    with pytest.raises(DistillError, match="bad.toml"):
        load_target(bad)


def test_verdict_against_the_budget():
    target = load_target("go2")
    fast = LatencyResult("onnxruntime_cpu", 0.1, 0.4, 0.15, 1000, "cpu")
    slow = LatencyResult("onnxruntime_cpu", 0.9, 2.5, 1.0, 1000, "cpu")
    ok, late = verdict(fast, target), verdict(slow, target)
    assert isinstance(ok, TargetVerdict)
    assert ok.meets_budget and ok.headroom_ms == pytest.approx(target.budget_p99_ms - 0.4)
    assert not late.meets_budget and late.headroom_ms < 0
    assert late.period_used == pytest.approx(2.5 / target.period_ms)
    assert late.budget_used == pytest.approx(2.5 / target.budget_p99_ms)
    assert ok.measured_on == "cpu" and ok.name == "go2" and ok.student_p99_ms == 0.4
