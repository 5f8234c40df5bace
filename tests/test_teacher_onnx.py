"""Teacher actor -> ONNX: parity with the JAX teacher in ONNX Runtime, IO/opset, atomic writes."""

from __future__ import annotations

import hashlib
from collections import Counter

import jax
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from distill.bench.latency import ort_latency
from distill.errors import DistillError
from distill.export.onnx_export import INPUT_NAME, OUTPUT_NAME, ort_session, run_onnx
from distill.export.teacher_onnx import (
    PARITY_TOL,
    TeacherActorModule,
    check_teacher_parity,
    export_teacher_actor_onnx,
    teacher_parity_inputs,
)
from distill.export.trt_readiness import check_tensorrt85
from distill.teachers.checkpoint import save_teacher
from distill.teachers.networks import CRLArch, count_params, init_actor, init_critic
from distill.teachers.teacher import Teacher, as_numpy, load_teacher

OBS, GOAL, ACT = 10, 3, 2


def perturbed(params, seed: int):
    """Random init leaves biases at 0 and LayerNorm scales at 1, which would hide a swapped or
    dropped bias/scale; noise on every leaf makes each tensor matter to the output."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noisy = [x + 0.1 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(treedef, noisy)


def make_teacher(
    depth: int, width: int, seed: int = 0, obs: int = OBS, goal: int = GOAL, act: int = ACT
) -> Teacher:
    arch = CRLArch(obs, goal, act, actor_depth=depth, critic_depth=0, width=width)
    actor = perturbed(init_actor(jax.random.PRNGKey(seed), arch), seed + 1)
    return Teacher(
        name=f"rand_{depth}x{width}", env="reacher", arch=arch, actor_params=actor, critic_params={}
    )


def exported_param_count(path) -> int:
    return sum(numpy_helper.to_array(t).size for t in onnx.load(str(path)).graph.initializer)


SHAPES = ((4, 32), (8, 32), (12, 32), (12, 64))
"""(depth, width): one to three residual blocks, and both widths (each export compiles the JAX
actor for its parity check, so no more shapes than that)."""


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Each (depth, width) exported once; the export itself already asserted parity."""
    out = tmp_path_factory.mktemp("teacher_onnx")
    built = {}
    for depth, width in SHAPES:
        teacher = make_teacher(depth, width, seed=depth + width)
        built[depth, width] = (
            teacher,
            export_teacher_actor_onnx(teacher, out / f"t{depth}x{width}" / "actor.onnx"),
        )
    return built


@pytest.mark.parametrize("depth, width", SHAPES)
def test_onnx_actor_matches_jax_teacher(exports, depth, width):
    teacher, result = exports[depth, width]
    assert result.max_abs_err <= PARITY_TOL
    rows = teacher_parity_inputs(OBS + GOAL, n=48, seed=123)
    got = run_onnx(ort_session(result.path), rows)
    want = as_numpy(teacher.act(rows))
    assert got.shape == want.shape == (48, ACT)
    assert np.max(np.abs(got - want)) <= PARITY_TOL
    assert np.std(got) > 0.05 and np.mean(np.abs(got) > 0.999) < 0.5, (
        "actions degenerate: parity would be vacuous"
    )


@pytest.mark.parametrize("depth", [4, 8, 12])
def test_every_teacher_export_passes_full_checker_and_tensorrt85_readiness(exports, depth):
    _, result = exports[depth, 32]
    onnx.checker.check_model(str(result.path), full_check=True)
    readiness = check_tensorrt85(result.path)
    assert readiness.ok, readiness.problems
    assert readiness.input_shapes == {INPUT_NAME: (1, OBS + GOAL)}
    assert "LayerNormalization" not in readiness.op_counts
    assert readiness.op_counts["ReduceMean"] == 2 * (depth + 1)


def test_shipped_reacher_teacher_exports_ready_and_matches_jax(tmp_path):
    """The real reacher_8 weights (not a random init): decomposed LayerNorm, parity with JAX."""
    teacher = load_teacher("reacher_8")
    result = export_teacher_actor_onnx(teacher, tmp_path / "teacher_actor.onnx")
    assert result.max_abs_err <= PARITY_TOL and check_tensorrt85(result.path).ok
    rows = teacher_parity_inputs(result.input_dim, n=32, seed=11)
    got = run_onnx(ort_session(result.path), rows)
    assert np.max(np.abs(got - as_numpy(teacher.act(rows)))) <= PARITY_TOL and np.std(got) > 0.05


def test_onnx_runtime_fuses_the_decomposed_layer_norm_back(exports, tmp_path):
    """The decomposition is written in the pattern ONNX Runtime's LayerNormFusion matches, so the
    teacher runs one LayerNormalization kernel per layer on the CPU as before (same latency)."""
    _, result = exports[8, 32]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(result.path), opts, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)
    assert ops["LayerNormalization"] == 8 + 1 and ops["ReduceMean"] == ops["Pow"] == 0


def test_torch_module_matches_jax_and_keeps_blocks_stacked(exports):
    teacher, _ = exports[12, 64]
    module = TeacherActorModule(teacher.actor_params).eval()
    assert (module.depth, module.width, module.input_dim, module.action_dim) == (
        12,
        64,
        OBS + GOAL,
        ACT,
    )
    assert tuple(module.blocks_w.shape) == (3, 4, 64, 64)
    assert module.block2_3_w.data_ptr() == module.blocks_w[2, 3].data_ptr()
    rows = teacher_parity_inputs(OBS + GOAL, n=16, seed=5)
    want = as_numpy(teacher.act(rows))
    decomposed = TeacherActorModule(teacher.actor_params, decompose_layer_norm=True).eval()
    for m in (module, decomposed):  # torch's fused LayerNorm (timed in PyTorch) and the exported form
        with torch.no_grad():
            got = m(torch.from_numpy(rows)).numpy()
        assert np.max(np.abs(got - want)) <= PARITY_TOL


def test_graph_io_opset_metadata_and_weights_once(exports):
    teacher, result = exports[8, 32]
    model = onnx.load(str(result.path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [
        17
    ] and result.opset == 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == (INPUT_NAME, OUTPUT_NAME)
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, OBS + GOAL]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [1, ACT]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ops = [n.op_type for n in model.graph.node]
    layers = 8 + 1
    assert ops.count("Gemm") == layers + 1 and "LayerNormalization" not in ops
    assert ops.count("ReduceMean") == 2 * layers and ops.count("Pow") == ops.count("Sqrt") == layers
    # every actor weight except the (unused) log_std head, each stored once
    log_std = teacher.actor_params["log_std"]
    want = count_params(teacher.actor_params) - log_std["kernel"].size - log_std["bias"].size
    assert exported_param_count(result.path) == want
    meta = {p.key: p.value for p in model.metadata_props}
    assert (
        meta["distill.role"] == "teacher_actor"
        and meta["distill.depth"] == "8"
        and meta["distill.width"] == "32"
    )
    assert (result.input_dim, result.action_dim) == (OBS + GOAL, ACT)
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert not list(result.path.parent.glob("*.tmp"))


def test_export_from_a_saved_checkpoint(tmp_path):
    arch = CRLArch(OBS, GOAL, ACT, actor_depth=4, critic_depth=4, width=32)
    k_a, k_c = jax.random.split(jax.random.PRNGKey(3))
    save_teacher(
        tmp_path / "teacher",
        name="saved",
        env="reacher",
        arch=arch,
        actor=perturbed(init_actor(k_a, arch), 9),
        critic=init_critic(k_c, arch),
        provenance={"source": "test"},
    )
    teacher = load_teacher(tmp_path / "teacher")
    result = export_teacher_actor_onnx(teacher, tmp_path / "actor.onnx")
    assert result.max_abs_err <= PARITY_TOL
    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert (
        meta["distill.teacher"] == "saved"
        and meta["distill.teacher_sha256"] == teacher.weights_identity != ""
    )


def test_parity_check_rejects_another_teachers_file(exports):
    _, result = exports[12, 64]
    other = make_teacher(12, 64, seed=999)
    with pytest.raises(DistillError, match="differs from the JAX teacher"):
        check_teacher_parity(result.path, other)


def test_failed_parity_leaves_existing_file_untouched(tmp_path):
    target = tmp_path / "actor.onnx"
    target.write_bytes(b"previous export")
    with pytest.raises(DistillError, match="differs from the JAX teacher"):
        export_teacher_actor_onnx(make_teacher(4, 32), target, tol=-1.0)
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["actor.onnx"]


def test_inconsistent_teacher_is_refused(tmp_path):
    teacher = make_teacher(4, 32)
    wrong = Teacher(
        name="wrong",
        env="reacher",
        arch=CRLArch(OBS + 1, GOAL, ACT, 4, 0, 32),
        actor_params=teacher.actor_params,
        critic_params={},
    )
    with pytest.raises(DistillError, match="inconsistent"):
        export_teacher_actor_onnx(wrong, tmp_path / "actor.onnx")
    with pytest.raises(DistillError, match="not a CRL actor"):
        TeacherActorModule({"trunk": {}})
    assert not (tmp_path / "actor.onnx").exists()


def test_teacher_file_runs_in_the_ort_latency_backend(exports):
    _, result = exports[4, 32]
    lat = ort_latency(result.path, threads=1, n_calls=20, warmup=2)
    assert (
        lat.backend == "onnxruntime_cpu" and lat.n_calls == 20 and lat.p99_ms >= lat.median_ms > 0
    )


@pytest.mark.slow
def test_depth_512_width_256_actor_exports(tmp_path):
    """The humanoid_1024 actor (512 layers, ≈34 M params, ≈135 MB): export stays linear in
    depth and well under protobuf's 2 GB limit, so no external data is needed."""
    teacher = make_teacher(512, 256, obs=268, goal=3, act=17)
    result = export_teacher_actor_onnx(teacher, tmp_path / "actor.onnx")
    assert result.max_abs_err <= PARITY_TOL
    log_std = teacher.actor_params["log_std"]
    want = count_params(teacher.actor_params) - log_std["kernel"].size - log_std["bias"].size
    assert want > 33_000_000
    assert exported_param_count(result.path) == want
    assert result.path.stat().st_size < 1.01 * 4 * want
    ops = [n.op_type for n in onnx.load(str(result.path), load_external_data=False).graph.node]
    layers = 512 + 1
    assert ops.count("Gemm") == layers + 1 and "LayerNormalization" not in ops
    assert ops.count("Add") == 512 // 4 + 2 * layers  # residuals, then each LayerNorm's eps and shift
