"""TensorRT engines from the exported ONNX, built on the robot (an engine is tied to its GPU and
TensorRT version, so it is never shipped from here).

`build_engine` uses TensorRT's public Python API as of 8.5 (JetPack 5.1 on the Go2), and nothing
newer; `trtexec_command` is the equivalent command line for the ship bundle's build script.
TensorRT is imported lazily: it cannot be installed on a CPU-only machine, and nothing else here
needs it. Every request is checked first without it (precision, file, TensorRT 8.5 readiness), so
a bad file fails the same way on every host.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from types import ModuleType

from distill.atomic import write_bytes_atomic
from distill.errors import DistillError
from distill.export.precision import count_qdq
from distill.export.trt_readiness import require_tensorrt85

PRECISIONS = ("fp32", "fp16", "int8")
TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
"""Where JetPack installs trtexec (it is not on PATH there)."""
DEFAULT_WORKSPACE_MB = 256


NOT_INSTALLED = (
    "TensorRT is not installed on this host; it exists on the robot (JetPack 5.1 ships TensorRT 8.5: "
    "run the ship bundle's build_engine.sh there) or on a GPU host after pip install .[tensorrt]"
)


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError:
        raise DistillError(NOT_INSTALLED) from None
    return tensorrt


def _check_request(onnx_path: Path, precision: str) -> None:
    """Checks that need no TensorRT, so bad requests fail the same way everywhere."""
    if precision not in PRECISIONS:
        raise DistillError(f"unknown TensorRT precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if not onnx_path.is_file():
        raise DistillError(f"ONNX file {onnx_path} not found; export the student first")
    require_tensorrt85(onnx_path)
    if precision == "int8" and count_qdq(onnx_path) == 0:
        raise DistillError(
            f"{onnx_path} has no QuantizeLinear/DequantizeLinear nodes; int8 engines are built from the QDQ "
            "variant (student_int8.onnx from make_int8_qdq), not from the fp32 export"
        )


def _precision_flags(precision: str) -> list[str]:
    """int8 (explicit Q/DQ) also enables fp16, so layers left outside Q/DQ (Elu, Tanh) need not run in fp32."""
    return {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[precision]


def trtexec_precision_flags(precision: str) -> list[str]:
    """trtexec's flags for a precision, as `build_engine` sets them (`--int8 --fp16` for QDQ files)."""
    if precision not in PRECISIONS:
        raise DistillError(f"unknown TensorRT precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return [f"--{flag.lower()}" for flag in _precision_flags(precision)]


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str = "fp16",
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
) -> Path:
    """Parses the ONNX, builds a serialized engine at `precision`, writes it atomically.

    TensorRT calls and the release that introduced each (all present in 8.5's Python bindings):
    Builder, OnnxParser(network, logger).parse/num_errors/get_error, Runtime: before 8.0;
    Builder.build_serialized_network: 8.0; IBuilderConfig.set_memory_pool_limit(
    MemoryPoolType.WORKSPACE, bytes): 8.4 (replaces max_workspace_size, removed in 10);
    NetworkDefinitionCreationFlag.EXPLICIT_BATCH: needed by the ONNX parser through 8.x,
    deprecated and ignored from 10 (every network is explicit-batch), so it is set only where it
    exists."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    _check_request(onnx_path, precision)
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if explicit is None else 1 << int(explicit))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DistillError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for flag in _precision_flags(precision):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DistillError(f"TensorRT failed to build a {precision} engine from {onnx_path}; see its log above")
    write_bytes_atomic(engine_path, bytes(serialized))
    return engine_path


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str = "fp16",
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    trtexec: str = TRTEXEC,
) -> str:
    """The command the robot runs to build (and then time) the engine; paths are shell-quoted."""
    parts = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--memPoolSize=workspace:{workspace_mb}",
        *trtexec_precision_flags(precision),
    ]
    return shlex.join(parts)
