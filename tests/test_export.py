"""Export: ONNX opset/IO and ORT parity, fp16 and int8 QDQ variants, TensorRT entry points."""

from __future__ import annotations

import hashlib
import importlib.util
import shlex
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from distill.errors import DistillError
from distill.export.onnx_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    check_parity,
    export_onnx,
    ort_session,
    run_onnx,
    validate_onnx,
)
from distill.export.precision import count_qdq, make_fp16, make_int8_qdq
from distill.export.tensorrt import build_engine, trtexec_command
from distill.export.trt_readiness import check_tensorrt85
from distill.students.fit import fit_normalizer, fit_student
from distill.students.memory import build_student
from distill.students.presets import get_preset, load_train_config

IN_DIM, ACT_DIM = 10, 3
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def raw_obs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, IN_DIM)) * np.linspace(0.1, 6.0, IN_DIM) + np.linspace(-2, 4, IN_DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A student fitted (briefly) to a smooth teacher-like target, and its export."""
    obs = raw_obs(3072, seed=0)
    rng = np.random.default_rng(7)
    w1, w2 = rng.standard_normal((IN_DIM, 16)) / 3, rng.standard_normal((16, ACT_DIM)) / 2
    norm = (obs - obs.mean(0)) / obs.std(0)
    target = np.tanh(np.tanh(norm @ w1) @ w2).astype(np.float32)
    mean, std = fit_normalizer(obs)
    student = build_student(get_preset("mlp_2x64"), IN_DIM, ACT_DIM, mean, std, seed=0)
    fit_student(student, obs, target, replace(load_train_config(), epochs=6, lr=3e-3), seed=0, progress=False)
    out = tmp_path_factory.mktemp("export")
    result = export_onnx(student, out / "nested" / "student.onnx")
    return student, obs, result


@pytest.fixture(scope="module")
def variants(trained, tmp_path_factory):
    """fp32 export and its fp16 / int8 QDQ variants, each written once through the library."""
    _, obs, result = trained
    out = tmp_path_factory.mktemp("variants")
    return {
        "fp32": result,
        "fp16": make_fp16(result.path, out / "student.fp16.onnx", eval_obs=obs[-256:]),
        "int8": make_int8_qdq(result.path, out / "student.int8.qdq.onnx", obs[:1024], eval_obs=obs[-256:]),
    }


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_export_passes_full_checker_and_tensorrt85_readiness(variants, precision):
    path = variants[precision].path
    onnx.checker.check_model(str(path), full_check=True)  # raises, e.g. on nodes out of topological order
    readiness = check_tensorrt85(path)
    assert readiness.ok, readiness.problems
    assert readiness.opset == 17 and readiness.input_shapes == {INPUT_NAME: (1, IN_DIM)}
    assert readiness.op_counts["Gemm"] == 3
    assert ("QuantizeLinear" in readiness.op_counts) == (precision == "int8")
    assert ("Cast" in readiness.op_counts) == (precision == "fp16")


def test_fp16_nodes_are_in_topological_order(variants):
    """onnxruntime's converter appends the float32 I/O Casts after their consumers; make_fp16 sorts."""
    graph = onnx.load(str(variants["fp16"].path)).graph
    produced = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    for node in graph.node:
        assert all(name in produced for name in node.input if name), node.name
        produced.update(node.output)
    assert graph.node[0].op_type == "Cast" and graph.node[0].input[0] == INPUT_NAME


def test_export_refused_before_it_lands_when_not_tensorrt85_ready(trained, tmp_path):
    student, _, _ = trained
    target = tmp_path / "student.onnx"
    with pytest.raises(DistillError, match=r"not ready for TensorRT 8\.5.*opset 18 > 17"):
        export_onnx(student, target, opset=18)
    assert list(tmp_path.iterdir()) == []


def test_validate_rejects_unsorted_nodes_in_one_line(trained, tmp_path):
    _, _, result = trained
    model = onnx.load(str(result.path))
    nodes = list(model.graph.node)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes[::-1])
    bad = tmp_path / "unsorted.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(DistillError, match="full check: Nodes in a graph must be topologically sorted") as err:
        validate_onnx(bad)
    assert "\n" not in str(err.value)


def test_export_graph_is_opset17_with_static_obs_and_action(trained):
    _, _, result = trained
    model = onnx.load(str(result.path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert result.opset == 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, IN_DIM]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [1, ACT_DIM]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {n.op_type for n in model.graph.node} >= {"Sub", "Div", "Gemm", "Elu", "Tanh"}
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert not list(result.path.parent.glob("*.tmp"))


def test_exported_model_reproduces_pytorch_on_raw_obs(trained):
    student, obs, result = trained
    rows = obs[:200]
    got = run_onnx(ort_session(result.path), rows)
    want = student.act_numpy(rows)
    assert np.max(np.abs(got - want)) <= 1e-5
    assert result.max_abs_err <= 1e-5
    assert np.all(np.abs(got) <= 1.0) and np.std(got) > 0.05


def test_tampered_file_fails_parity(trained, tmp_path):
    student, obs, result = trained
    model = onnx.load(str(result.path))
    first_gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    init = next(i for i in model.graph.initializer if i.name == first_gemm.input[1])
    weights = numpy_helper.to_array(init).copy()
    weights[0, 0] += 0.5
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    bad = tmp_path / "tampered.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(DistillError, match="differs from PyTorch"):
        check_parity(bad, student, obs[:64])
    assert check_parity(result.path, student, obs[:64]) <= 1e-5


def test_fp16_variant_runs_in_ort_and_stays_close(trained, variants):
    _, obs, _ = trained
    variant = variants["fp16"]
    model = onnx.load(str(variant.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert 0 < variant.max_abs_err < 1e-2 and variant.mean_abs_err <= variant.max_abs_err
    assert variant.n_rows == 256 and variant.sha256 == hashlib.sha256(variant.path.read_bytes()).hexdigest()
    assert run_onnx(ort_session(variant.path), obs[:4]).shape == (4, ACT_DIM)


def test_int8_qdq_variant_has_qdq_nodes_and_stays_close(trained, variants):
    _, obs, _ = trained
    variant = variants["int8"]
    ops = [n.op_type for n in onnx.load(str(variant.path)).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert variant.qdq_nodes == count_qdq(variant.path) > 0
    assert 0 < variant.max_abs_err < 0.1 and variant.mean_abs_err < 0.02
    assert run_onnx(ort_session(variant.path), obs[:4]).shape == (4, ACT_DIM)


def test_variant_tolerance_is_enforced(trained, tmp_path):
    _, obs, result = trained
    with pytest.raises(DistillError, match="int8"):
        make_int8_qdq(result.path, tmp_path / "x.onnx", obs[:256], tol=1e-9)
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(DistillError, match=r"\[N, 10\]"):
        make_fp16(result.path, tmp_path / "y.onnx", eval_obs=obs[:, :3])


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_build_engine_without_tensorrt_says_how_to_install(trained, tmp_path):
    _, _, result = trained
    with pytest.raises(DistillError, match=r"TensorRT is not installed.*JetPack.*build_engine\.sh"):
        build_engine(result.path, tmp_path / "student.engine", "fp16")
    assert not (tmp_path / "student.engine").exists()


def test_build_engine_checks_requests_before_tensorrt(trained, tmp_path):
    _, _, result = trained
    with pytest.raises(DistillError, match="unknown TensorRT precision 'bf16'"):
        build_engine(result.path, tmp_path / "e", "bf16")
    with pytest.raises(DistillError, match="QDQ"):
        build_engine(result.path, tmp_path / "e", "int8")
    with pytest.raises(DistillError, match="not found"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "e", "fp32")


def test_trtexec_command_per_precision():
    onnx_path, engine = "/home/unitree/my policy/student.onnx", "/home/unitree/my policy/student.engine"
    args = {p: shlex.split(trtexec_command(onnx_path, engine, p)) for p in ("fp32", "fp16", "int8")}
    for argv in args.values():
        assert argv[0].endswith("trtexec")
        assert f"--onnx={onnx_path}" in argv and f"--saveEngine={engine}" in argv
        assert any(a.startswith("--memPoolSize=workspace:") for a in argv)
    assert "--fp16" not in args["fp32"] and "--int8" not in args["fp32"]
    assert "--fp16" in args["fp16"] and "--int8" not in args["fp16"]
    assert "--int8" in args["int8"]
    with pytest.raises(DistillError, match="precision"):
        trtexec_command(onnx_path, engine, "fp8")
