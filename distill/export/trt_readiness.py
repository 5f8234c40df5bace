"""Will TensorRT 8.5's ONNX parser (JetPack 5.1, the Go2's Jetson) take this file? Checked here,
without TensorRT, so a file that would fail on the robot fails at export instead.

The parser's facts (highest opset, supported operators, inputs that must be constants, the Q/DQ
types) live in `tensorrt85_onnx_ops.toml` beside this module, with their source. The checks:
- opset: the default domain's at most 17; no node from another domain (ONNX Runtime's
  com.microsoft ops, local functions);
- every node's operator (subgraphs included) in the parser's supported set;
- every graph input of static, positive shape (engines here are built without optimisation profiles);
- no DOUBLE anywhere: inputs, outputs, value_info, initializers, constant attributes, and Cast
  (or any `to`/`dtype` attribute) targets — TensorRT would cast them down, clamping the range;
- Q/DQ: scale and zero point constant, zero point int8 and all zero (QuantizeLinear must name
  one: without it its output is uint8), scale float32, a constant DequantizeLinear input int8;
- recurrent layers (GRU, LSTM, RNN) run in FP32/FP16 only: none may read a DequantizeLinear output,
  directly or through layout-only ops (Transpose, Reshape, Squeeze, ...), i.e. no int8 recurrent
  layer; a bidirectional one uses the same activations in both directions.
"""

from __future__ import annotations

import functools
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from distill.errors import DistillError

FACTS_FILE = Path(__file__).with_name("tensorrt85_onnx_ops.toml")
DEFAULT_DOMAINS = ("", "ai.onnx")
DTYPE_ATTRIBUTES = ("to", "dtype", "output_dtype")
"""Attributes that name an output element type (Cast, EyeLike, RandomNormal, ...)."""
LISTED = 3
"""Names quoted per problem before '... and N more'."""


@dataclass(frozen=True)
class ParserFacts:
    max_opset: int
    supported: frozenset[str]
    constant_inputs: dict[str, tuple[int, ...]]
    zero_point_type: int
    scale_type: int
    recurrent: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Recurrent ops and the precisions the parser runs them in (no INT8)."""


@functools.cache
def parser_facts() -> ParserFacts:
    """The TensorRT 8.5 parser's facts, read once from FACTS_FILE."""
    table = tomllib.loads(FACTS_FILE.read_text())
    quant = table["quantization"]
    return ParserFacts(
        max_opset=int(table["max_opset"]),
        supported=frozenset(table["supported"]),
        constant_inputs={op: tuple(idx) for op, idx in table["constant_inputs"].items()},
        zero_point_type=onnx.TensorProto.DataType.Value(quant["zero_point_type"]),
        scale_type=onnx.TensorProto.DataType.Value(quant["scale_type"]),
        recurrent={op: tuple(p) for op, p in table.get("recurrent", {}).items()},
    )


@dataclass(frozen=True)
class TrtReadiness:
    problems: tuple[str, ...]
    """One line per problem; empty when the file is ready."""
    opset: int | None
    """The default domain's opset."""
    op_counts: dict[str, int] = field(default_factory=dict)
    """Nodes per operator, subgraphs included."""
    input_shapes: dict[str, tuple[int | str, ...]] = field(default_factory=dict)
    """Each graph input's dims (a name or '?' where not static)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.type == onnx.AttributeProto.GRAPH else []), *attr.graphs):
                yield from _graphs(sub)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED])
    return shown if len(names) <= LISTED else f"{shown} and {len(names) - LISTED} more"


def _type_name(data_type: int) -> str:
    return onnx.TensorProto.DataType.Name(data_type)


def _node_label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _constants(graphs: list[onnx.GraphProto]) -> dict[str, onnx.TensorProto | None]:
    """Build-time constants by name: initializers and Constant outputs (None where the Constant is
    given as value_float/value_ints/... rather than a tensor)."""
    found: dict[str, onnx.TensorProto | None] = {}
    for g in graphs:
        found.update({t.name: t for t in g.initializer})
        found.update({s.values.name: s.values for s in g.sparse_initializer})
        for node in g.node:
            if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and node.output:
                tensor = next((a.t for a in node.attribute if a.name == "value"), None)
                found[node.output[0]] = tensor
    return found


def _opset_problems(model: onnx.ModelProto, nodes: list[onnx.NodeProto], facts: ParserFacts) -> list[str]:
    opset = default_opset(model)
    problems = []
    if opset is None:
        problems.append("the model imports no default-domain opset")
    elif opset > facts.max_opset:
        problems.append(
            f"opset {opset} > {facts.max_opset}, the highest TensorRT 8.5's parser reads; export with opset {facts.max_opset}"
        )
    custom = Counter(f"{n.domain}.{n.op_type}" for n in nodes if n.domain not in DEFAULT_DOMAINS)
    if custom:
        problems.append(
            "nodes outside the default ONNX domain, which TensorRT 8.5 cannot parse: "
            + _listing([f"{op} ({k})" for op, k in sorted(custom.items())])
        )
    return problems


def _op_problems(op_counts: dict[str, int], facts: ParserFacts) -> list[str]:
    return [
        f"op {op} ({k} node{'s' if k > 1 else ''}) is not supported by TensorRT 8.5's ONNX parser"
        for op, k in sorted(op_counts.items())
        if op not in facts.supported
    ]


def _input_shapes(graph: onnx.GraphProto) -> tuple[dict[str, tuple[int | str, ...]], list[str]]:
    initializers = {t.name for t in graph.initializer}
    shapes: dict[str, tuple[int | str, ...]] = {}
    problems = []
    for value in graph.input:
        if value.name in initializers:
            continue
        ttype = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not ttype.HasField("shape"):
            problems.append(f"input {value.name!r} has no tensor shape; export with a static input shape")
            continue
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in ttype.shape.dim
        )
        shapes[value.name] = dims
        if not all(isinstance(d, int) and d > 0 for d in dims):
            problems.append(
                f"input {value.name!r} has shape {list(dims)}, not static and positive; export at a fixed shape "
                "(distill exports [1, D])"
            )
    return shapes, problems


def _double_problems(graphs: list[onnx.GraphProto]) -> list[str]:
    double = onnx.TensorProto.DOUBLE
    found = []
    for g in graphs:
        for kind, values in (("input", g.input), ("output", g.output), ("value", g.value_info)):
            found += [f"{kind} {v.name}" for v in values if v.type.tensor_type.elem_type == double]
        found += [f"initializer {t.name}" for t in g.initializer if t.data_type == double]
        found += [f"initializer {s.values.name}" for s in g.sparse_initializer if s.values.data_type == double]
        for node in g.node:
            for attr in node.attribute:
                tensors = [attr.t] if attr.type == onnx.AttributeProto.TENSOR else list(attr.tensors)
                tensors += [attr.sparse_tensor.values] if attr.type == onnx.AttributeProto.SPARSE_TENSOR else []
                if any(t.data_type == double for t in tensors):
                    found.append(f"{node.op_type} {_node_label(node)} attribute {attr.name}")
                if attr.name in DTYPE_ATTRIBUTES and attr.type == onnx.AttributeProto.INT and attr.i == double:
                    found.append(f"{node.op_type} {_node_label(node)} to double")
    if not found:
        return []
    return [f"DOUBLE tensors, which TensorRT casts down to float: {_listing(found)}; keep the graph float32"]


def _constant_input_problems(
    nodes: list[onnx.NodeProto], constants: dict[str, onnx.TensorProto | None], facts: ParserFacts
) -> list[str]:
    bad = [
        f"{node.op_type} {_node_label(node)} input {i}"
        for node in nodes
        for i in facts.constant_inputs.get(node.op_type, ())
        if i < len(node.input) and node.input[i] and node.input[i] not in constants
    ]
    if not bad:
        return []
    return [f"inputs TensorRT 8.5 needs as constants (initializers) are computed: {_listing(bad)}"]


def _qdq_problems(nodes: list[onnx.NodeProto], constants: dict[str, onnx.TensorProto | None], facts: ParserFacts) -> list[str]:
    qtype = _type_name(facts.zero_point_type)
    no_zp, wrong_type, nonzero, bad_scale, bad_input = [], [], [], [], []
    for node in nodes:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.domain not in DEFAULT_DOMAINS:
            continue
        label = f"{node.op_type} {_node_label(node)}"
        zp_name = node.input[2] if len(node.input) > 2 else ""
        zp = constants.get(zp_name)
        if not zp_name and node.op_type == "QuantizeLinear":
            no_zp.append(label)
        elif zp_name in constants and (zp is None or zp.data_type != facts.zero_point_type):
            wrong_type.append(f"{label} ({'not a tensor' if zp is None else _type_name(zp.data_type)})")
        elif zp is not None and np.any(numpy_helper.to_array(zp) != 0):
            nonzero.append(label)
        scale = constants.get(node.input[1]) if len(node.input) > 1 else None
        if scale is not None and scale.data_type != facts.scale_type:
            bad_scale.append(f"{label} ({_type_name(scale.data_type)})")
        x = constants.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if x is not None and x.data_type != facts.zero_point_type:
            bad_input.append(f"{label} ({_type_name(x.data_type)})")
    problems = []
    if no_zp:
        problems.append(f"QuantizeLinear without a zero point (its output is then uint8; TensorRT needs {qtype}): {_listing(no_zp)}")
    if wrong_type:
        problems.append(f"Q/DQ zero points not {qtype}: {_listing(wrong_type)}; quantise with QuantType.QInt8")
    if nonzero:
        problems.append(f"Q/DQ zero points not all 0 (TensorRT 8.5 takes symmetric quantisation only): {_listing(nonzero)}")
    if bad_scale:
        problems.append(f"Q/DQ scales not float32: {_listing(bad_scale)}")
    if bad_input:
        problems.append(f"DequantizeLinear of constants not {qtype}: {_listing(bad_input)}")
    return problems


LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Slice", "Gather", "Concat",
                        "Flatten", "Expand", "Split"})
"""Ops that move values without computing on them: a Q/DQ behind them still feeds the next layer."""


def _recurrent_problems(nodes: list[onnx.NodeProto], facts: ParserFacts) -> list[str]:
    producer = {out: n for n in nodes for out in n.output}

    def dequantized(name: str, seen: set[str]) -> bool:
        node = producer.get(name)
        if node is None or name in seen:
            return False
        seen.add(name)
        if node.op_type == "DequantizeLinear":
            return True
        return node.op_type in LAYOUT_OPS and any(dequantized(i, seen) for i in node.input if i)

    problems = []
    for node in nodes:
        precisions = facts.recurrent.get(node.op_type)
        if precisions is None or node.domain not in DEFAULT_DOMAINS:
            continue
        label = f"{node.op_type} {_node_label(node)}"
        quantised = [i for i, name in enumerate(node.input) if name and dequantized(name, set())]
        if quantised:
            problems.append(
                f"{label} reads int8 (Q/DQ) input{'s' if len(quantised) > 1 else ''} "
                f"{', '.join(map(str, quantised))}: TensorRT 8.5 runs {node.op_type} in {'/'.join(precisions)} only; "
                "quantise only the layers around it (distill's int8 variant leaves the GRU in float) or ship fp16")
        attrs = {a.name: a for a in node.attribute}
        direction = attrs["direction"].s.decode() if "direction" in attrs else "forward"
        if direction == "bidirectional" and "activations" in attrs:
            acts = [a.decode().lower() for a in attrs["activations"].strings]
            half = len(acts) // 2
            if acts[:half] != acts[half:]:
                problems.append(f"{label} is bidirectional with different activations per direction "
                                f"({acts[:half]} vs {acts[half:]}), which TensorRT 8.5 refuses")
    return problems


def default_opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)


def _load(model_or_path: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    try:
        return onnx.load(str(model_or_path))
    except OSError as exc:
        raise DistillError(f"cannot read ONNX file {model_or_path}: {exc.strerror or exc}") from None
    except DecodeError:
        raise DistillError(f"{model_or_path} is not an ONNX model (protobuf cannot decode it)") from None


def check_tensorrt85(model_or_path: onnx.ModelProto | str | Path) -> TrtReadiness:
    """Everything that would stop TensorRT 8.5's ONNX parser, as a list of problems (never raises
    for a readable model)."""
    model = _load(model_or_path)
    facts = parser_facts()
    graphs = list(_graphs(model.graph))
    nodes = [n for g in graphs for n in g.node]
    op_counts = dict(sorted(Counter(n.op_type for n in nodes if n.domain in DEFAULT_DOMAINS).items()))
    constants = _constants(graphs)
    input_shapes, input_problems = _input_shapes(model.graph)
    problems = [
        *_opset_problems(model, nodes, facts),
        *_op_problems(op_counts, facts),
        *input_problems,
        *_double_problems(graphs),
        *_constant_input_problems(nodes, constants, facts),
        *_qdq_problems(nodes, constants, facts),
        *_recurrent_problems(nodes, facts),
    ]
    return TrtReadiness(tuple(problems), default_opset(model), op_counts, input_shapes)


def require_tensorrt85(model_or_path: onnx.ModelProto | str | Path, name: str | Path | None = None) -> TrtReadiness:
    """check_tensorrt85, raising one DistillError line that lists every problem."""
    result = check_tensorrt85(model_or_path)
    if not result.ok:
        what = name or (model_or_path if not isinstance(model_or_path, onnx.ModelProto) else "the ONNX model")
        raise DistillError(f"{what} is not ready for TensorRT 8.5 (JetPack 5.1): {'; '.join(result.problems)}")
    return result
