"""`distill engine build|time` through the real CLI, in-process. Without TensorRT (this host) each
exits 2 with one line that says where TensorRT exists; checks that need no TensorRT run first."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from distill.cli import main
from distill.export.onnx_export import export_onnx, write_onnx
from distill.students.mlp import MLPStudent

IN_DIM, ACT_DIM = 6, 2
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
no_tensorrt = pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")


@pytest.fixture(scope="module")
def student() -> MLPStudent:
    torch.manual_seed(0)
    return MLPStudent(IN_DIM, ACT_DIM, 2, 16).eval()


@pytest.fixture(scope="module")
def onnx_path(student, tmp_path_factory):
    return export_onnx(student, tmp_path_factory.mktemp("engine") / "student.onnx").path


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("distill: error: ") and captured.out == "", captured
    return lines[0]


@no_tensorrt
def test_build_without_tensorrt_exits_2_in_one_line(onnx_path, tmp_path, capsys):
    engine = tmp_path / "student.engine"
    assert main(["engine", "build", str(onnx_path), "--out", str(engine), "--precision", "fp16"]) == 2
    line = one_error_line(capsys)
    assert "TensorRT is not installed" in line and "JetPack" in line and "build_engine.sh" in line
    assert not engine.exists() and list(tmp_path.iterdir()) == []


@no_tensorrt
def test_time_without_tensorrt_exits_2_in_one_line(tmp_path, capsys):
    assert main(["engine", "time", str(tmp_path / "student.engine"), "--calls", "10", "--warmup", "1"]) == 2
    assert "TensorRT is not installed" in one_error_line(capsys)


def test_build_refuses_a_file_tensorrt85_cannot_parse_on_any_host(student, tmp_path, capsys):
    """An opset-18 file (written by the raw tracer, which export_onnx would have refused)."""
    bad = tmp_path / "opset18.onnx"
    write_onnx(student, IN_DIM, bad, 18, {})
    assert main(["engine", "build", str(bad), "--out", str(tmp_path / "e.engine")]) == 2
    line = one_error_line(capsys)
    assert "not ready for TensorRT 8.5" in line and "opset 18 > 17" in line
    assert not (tmp_path / "e.engine").exists()


def test_build_checks_precision_and_paths_before_tensorrt(onnx_path, tmp_path, capsys):
    assert main(["engine", "build", str(onnx_path), "--out", str(tmp_path / "e"), "--precision", "bf16"]) == 2
    assert "unknown TensorRT precision 'bf16'" in one_error_line(capsys)
    assert main(["engine", "build", str(onnx_path), "--out", str(tmp_path / "e"), "--precision", "int8"]) == 2
    assert "QDQ" in one_error_line(capsys)
    assert main(["engine", "build", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "e")]) == 2
    assert "not found" in one_error_line(capsys)
