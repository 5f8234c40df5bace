"""TensorRT 8.5 readiness: crafted models that are valid ONNX but that TensorRT 8.5's parser would
refuse are flagged, one problem each; a plain float32 MLP passes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from distill.errors import DistillError
from distill.export.trt_readiness import (
    FACTS_FILE,
    check_tensorrt85,
    parser_facts,
    require_tensorrt85,
)

IN, OUT = 4, 2
EMITTED_OPS = {
    "Gemm", "Elu", "Tanh", "Sub", "Div", "Mul", "Add", "Sigmoid", "ReduceMean", "Sqrt", "Pow",
    "Cast", "Constant", "QuantizeLinear", "DequantizeLinear",
}  # fmt: skip


def init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def model(
    nodes: list,
    inits: list,
    opset: int = 17,
    in_dims: tuple = (1, IN),
    out_dims: tuple = (1, OUT),
    out_type: int = TensorProto.FLOAT,
    extra_opsets: tuple = (),
) -> onnx.ModelProto:
    """A graph obs -> ... -> action that passes onnx.checker's full check: whatever the readiness
    check flags, the ONNX checker alone would have let through."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, list(in_dims))],
        [helper.make_tensor_value_info("action", out_type, list(out_dims))],
        inits,
    )
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    m = helper.make_model(graph, opset_imports=imports)
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def gemm_tanh(extra_nodes: list = (), extra_inits: list = (), src: str = "obs", **kw) -> onnx.ModelProto:
    w = init("w", np.ones((OUT, IN), np.float32))
    b = init("b", np.zeros(OUT, np.float32))
    nodes = [
        *extra_nodes,
        helper.make_node("Gemm", [src, "w", "b"], ["h"], name="gemm", transB=1),
        helper.make_node("Tanh", ["h"], ["action"], name="tanh"),
    ]
    return model(nodes, [w, b, *extra_inits], **kw)


def test_plain_float32_mlp_is_ready():
    result = check_tensorrt85(gemm_tanh())
    assert result.ok and result.problems == ()
    assert result.opset == 17
    assert result.op_counts == {"Gemm": 1, "Tanh": 1}
    assert result.input_shapes == {"obs": (1, IN)}
    assert require_tensorrt85(gemm_tanh()) == result


def test_opset_18_is_flagged():
    result = check_tensorrt85(gemm_tanh(opset=18))
    assert not result.ok and result.opset == 18
    assert len(result.problems) == 1 and "opset 18 > 17" in result.problems[0]


def test_layer_normalization_is_flagged():
    nodes = [helper.make_node("LayerNormalization", ["obs", "g", "beta"], ["n"], name="ln", axis=-1)]
    inits = [init("g", np.ones(IN, np.float32)), init("beta", np.zeros(IN, np.float32))]
    result = check_tensorrt85(gemm_tanh(nodes, inits, src="n"))
    assert result.op_counts["LayerNormalization"] == 1
    assert result.problems == ("op LayerNormalization (1 node) is not supported by TensorRT 8.5's ONNX parser",)


def test_dynamic_input_dim_is_flagged():
    result = check_tensorrt85(gemm_tanh(in_dims=("batch", IN), out_dims=("batch", OUT)))
    assert result.input_shapes == {"obs": ("batch", IN)}
    assert len(result.problems) == 1 and "input 'obs' has shape ['batch', 4]" in result.problems[0]


def test_double_initializer_and_cast_to_double_are_flagged():
    nodes = [
        helper.make_node("Cast", ["obs"], ["obs64"], name="to64", to=TensorProto.DOUBLE),
        helper.make_node("Add", ["obs64", "offset"], ["shifted"], name="add64"),
        helper.make_node("Cast", ["shifted"], ["obs32"], name="to32", to=TensorProto.FLOAT),
    ]
    result = check_tensorrt85(gemm_tanh(nodes, [init("offset", np.ones(IN, np.float64))], src="obs32"))
    (problem,) = result.problems
    assert problem.startswith("DOUBLE tensors") and "initializer offset" in problem and "Cast to64 to double" in problem


def test_double_constant_is_flagged():
    value = helper.make_tensor("v", TensorProto.DOUBLE, [IN], np.ones(IN).tolist())
    nodes = [
        helper.make_node("Constant", [], ["c"], name="const64", value=value),
        helper.make_node("Cast", ["c"], ["c32"], name="c32", to=TensorProto.FLOAT),
        helper.make_node("Add", ["obs", "c32"], ["x"], name="add"),
    ]
    (problem,) = check_tensorrt85(gemm_tanh(nodes, src="x")).problems
    assert "Constant const64 attribute value" in problem


def dequantize_model(zero_point: np.ndarray | None, with_quantize: bool = True) -> onnx.ModelProto:
    """obs -> QuantizeLinear -> DequantizeLinear -> Gemm -> Tanh with the given zero point."""
    zp_inputs = ["zp"] if zero_point is not None else []
    inits = [init("s", np.float32(0.05))] + ([init("zp", zero_point)] if zero_point is not None else [])
    nodes = [
        helper.make_node("QuantizeLinear", ["obs", "s", *zp_inputs], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", *zp_inputs], ["dq"], name="dq"),
    ]
    return gemm_tanh(nodes, inits, src="dq")


def test_symmetric_int8_qdq_is_ready():
    result = check_tensorrt85(dequantize_model(np.int8(0)))
    assert result.ok and result.op_counts["QuantizeLinear"] == result.op_counts["DequantizeLinear"] == 1


def test_nonzero_zero_point_is_flagged():
    (problem,) = check_tensorrt85(dequantize_model(np.int8(3))).problems
    assert problem.startswith("Q/DQ zero points not all 0") and "DequantizeLinear dq" in problem


def test_uint8_zero_point_is_flagged():
    (problem,) = check_tensorrt85(dequantize_model(np.uint8(0))).problems
    assert problem.startswith("Q/DQ zero points not INT8") and "(UINT8)" in problem


def test_missing_zero_point_is_flagged():
    (problem,) = check_tensorrt85(dequantize_model(None)).problems
    assert problem.startswith("QuantizeLinear without a zero point") and "QuantizeLinear q" in problem
    assert "DequantizeLinear" not in problem  # optional there: it defaults to 0 of its input's type


def test_uint8_quantized_weights_are_flagged():
    w8 = init("w8", np.ones((OUT, IN), np.uint8))
    nodes = [helper.make_node("DequantizeLinear", ["w8", "s", "zp"], ["w"], name="dqw")]
    m = model(
        [*nodes, helper.make_node("Gemm", ["obs", "w"], ["h"], transB=1), helper.make_node("Tanh", ["h"], ["action"])],
        [w8, init("s", np.float32(0.1)), init("zp", np.uint8(0))],
    )
    problems = check_tensorrt85(m).problems
    assert len(problems) == 2
    assert any("zero points not INT8" in p for p in problems)
    assert any("DequantizeLinear of constants not INT8" in p and "(UINT8)" in p for p in problems)


def test_custom_domain_node_is_flagged():
    nodes = [helper.make_node("FusedGemm", ["obs", "w", "b"], ["h"], name="fg", domain="com.microsoft", transB=1)]
    w, b = init("w", np.ones((OUT, IN), np.float32)), init("b", np.zeros(OUT, np.float32))
    graph = helper.make_graph(
        [*nodes, helper.make_node("Tanh", ["h"], ["action"])],
        "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, IN])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, OUT])],
        [w, b],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    (problem,) = check_tensorrt85(m).problems
    assert "outside the default ONNX domain" in problem and "com.microsoft.FusedGemm" in problem


def test_computed_axes_are_flagged():
    nodes = [
        helper.make_node("Shape", ["obs"], ["shape"], name="shape", start=0, end=1),
        helper.make_node("Sub", ["shape", "one"], ["axes"], name="axes"),
        helper.make_node("Unsqueeze", ["obs", "axes"], ["u"], name="unsq"),
        helper.make_node("Squeeze", ["u", "axes_c"], ["x"], name="sq"),
    ]
    inits = [init("one", np.array([1], np.int64)), init("axes_c", np.array([0], np.int64))]
    (problem,) = check_tensorrt85(gemm_tanh(nodes, inits, src="x")).problems
    assert "Unsqueeze unsq input 1" in problem and "Squeeze" not in problem


def test_require_raises_one_line_listing_every_problem(tmp_path):
    nodes = [helper.make_node("LayerNormalization", ["obs", "g"], ["n"], name="ln")]
    path = tmp_path / "bad.onnx"
    onnx.save(gemm_tanh(nodes, [init("g", np.ones(IN, np.float32))], src="n", opset=18), str(path))
    with pytest.raises(DistillError) as err:
        require_tensorrt85(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "opset 18" in message and "LayerNormalization" in message


def test_unreadable_files_are_one_line_errors(tmp_path):
    with pytest.raises(DistillError, match="cannot read ONNX file"):
        check_tensorrt85(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xff not a protobuf")
    with pytest.raises(DistillError, match="not an ONNX model"):
        check_tensorrt85(junk)


def test_facts_table_states_its_source_and_covers_what_distill_emits():
    header = FACTS_FILE.read_text().split("max_opset")[0]
    assert "onnx/onnx-tensorrt" in header and "release/8.5-GA" in header
    assert "3b008c466bcb7375aaf5cabf51b289fd34d40c44" in header
    facts = parser_facts()
    assert facts.max_opset == 17
    assert EMITTED_OPS <= facts.supported
    assert not {"LayerNormalization", "HardSwish", "IsInf", "Mod"} & facts.supported
    assert facts.zero_point_type == TensorProto.INT8 and facts.scale_type == TensorProto.FLOAT


# --- recurrent layers: FP32 / FP16 only ----------------------------------------------------------------
H = 3


def gru_model(quantise_weights: bool, activations: tuple[str, ...] | None = None, direction: str = "forward"):
    """obs [1, IN] -> GRU over one step (hidden H) -> Gemm -> action; optionally the GRU's input weights
    behind an int8 DequantizeLinear (an int8 GRU)."""
    dirs = 2 if direction == "bidirectional" else 1
    w = np.full((dirs, 3 * H, IN), 0.1, np.float32)
    r = np.full((dirs, 3 * H, H), 0.1, np.float32)
    inits = [init("r", r), init("axes0", np.array([0], np.int64)),
             init("wo", np.ones((OUT, dirs * H), np.float32)), init("bo", np.zeros(OUT, np.float32))]
    nodes = [helper.make_node("Unsqueeze", ["obs", "axes0"], ["x"], name="seq")]
    if quantise_weights:
        inits += [init("w_q", np.ones(w.shape, np.int8)), init("w_scale", np.array(0.1, np.float32)),
                  init("w_zp", np.array(0, np.int8))]
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="dq_w"))
        nodes.append(helper.make_node("Identity", ["w_dq"], ["w"], name="w_copy"))  # a layout op in between
    else:
        inits.append(init("w", w))
    attrs = {"hidden_size": H, "linear_before_reset": 1, "direction": direction}
    if activations:
        attrs["activations"] = list(activations)
    nodes += [
        helper.make_node("GRU", ["x", "w", "r"], ["y", "y_h"], name="gru", **attrs),
        helper.make_node("Reshape", ["y", "shape"], ["h2"], name="rows"),
        helper.make_node("Gemm", ["h2", "wo", "bo"], ["a"], name="head", transB=1),
        helper.make_node("Tanh", ["a"], ["action"], name="tanh"),
    ]
    inits.append(init("shape", np.array([1, dirs * H], np.int64)))
    return model(nodes, inits)


def test_float_gru_is_ready():
    result = check_tensorrt85(gru_model(quantise_weights=False))
    assert result.ok, result.problems
    assert result.op_counts["GRU"] == 1


def test_int8_gru_is_refused_with_the_reason():
    result = check_tensorrt85(gru_model(quantise_weights=True))
    assert len(result.problems) == 1
    (problem,) = result.problems
    assert "GRU gru reads int8 (Q/DQ) input 1" in problem and "FP32/FP16 only" in problem
    assert "leaves the GRU in float" in problem


def test_bidirectional_gru_with_different_activations_is_refused():
    acts = ("Sigmoid", "Tanh", "Sigmoid", "Relu")
    (problem,) = check_tensorrt85(gru_model(False, acts, "bidirectional")).problems
    assert "bidirectional with different activations" in problem
    assert check_tensorrt85(gru_model(False, ("Sigmoid", "Tanh") * 2, "bidirectional")).ok


def test_facts_table_gives_recurrent_precisions():
    facts = parser_facts()
    assert facts.recurrent == {"GRU": ("FP32", "FP16"), "LSTM": ("FP32", "FP16"), "RNN": ("FP32", "FP16")}
    assert "GRU" in facts.supported
