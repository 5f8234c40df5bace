"""Batch-1 inference latency per backend, measured the way a control loop sees it.

One call = a float32 numpy observation row [1, D] in, a numpy action out: host-device copies
and framework dispatch count, because the robot pays for them every step. Each backend runs
`warmup` untimed calls first, then `n_calls` timed ones (time.perf_counter_ns), cycling over a
fixed bank of random rows drawn before timing starts. A recurrent file or student is timed as a
controller runs it: each call feeds back the state the previous call returned.
"""

from __future__ import annotations

import copy
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import torch

from distill.errors import DistillError
from distill.export.onnx_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    STATE_INPUT,
    STATE_OUTPUT,
    ort_session,
)
from distill.export.tensorrt import import_tensorrt
from distill.progress import progress_bar
from distill.students.threads import torch_threads

INPUT_BANK = 64


@dataclass(frozen=True)
class LatencyResult:
    backend: str
    median_ms: float
    p99_ms: float
    mean_ms: float
    n_calls: int
    device: str = ""
    """Where it was measured (CPU model and threads, or GPU name): a budget verdict only means
    something for the target's own device."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summarize(backend: str, times_ns: np.ndarray, device: str = "") -> LatencyResult:
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    return LatencyResult(
        backend=backend,
        median_ms=float(np.median(ms)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        n_calls=int(ms.size),
        device=device,
    )


def _input_bank(input_dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, input_dim)).astype(np.float32) for _ in range(INPUT_BANK)]


def time_calls(
    call: Callable[[np.ndarray], Any],
    input_dim: int,
    n_calls: int,
    warmup: int,
    desc: str = "latency",
    progress: bool = False,
) -> np.ndarray:
    """Nanoseconds per call of `call(obs_row)` after `warmup` untimed calls."""
    if n_calls < 1 or warmup < 0:
        raise DistillError(f"latency needs n_calls >= 1 and warmup >= 0 (got {n_calls}, {warmup})")
    bank = _input_bank(input_dim)
    for i in range(warmup):
        call(bank[i % INPUT_BANK])
    times = np.empty(n_calls, dtype=np.int64)
    for i in progress_bar(range(n_calls), desc, enabled=progress, unit="call", leave=False):
        obs = bank[i % INPUT_BANK]
        start = time.perf_counter_ns()
        call(obs)
        times[i] = time.perf_counter_ns() - start
    return times


def ort_latency(
    onnx_path: str | Path, threads: int = 1, n_calls: int = 1000, warmup: int = 100, progress: bool = False
) -> LatencyResult:
    """ONNX Runtime on the CPU: sequential execution, `threads` intra-op threads (1, as on the robot)."""
    session = ort_session(onnx_path, threads=threads)
    inputs = {i.name: i.shape for i in session.get_inputs()}
    input_dim = int(inputs[INPUT_NAME][1])
    if STATE_INPUT in inputs:
        state = [np.zeros(inputs[STATE_INPUT], np.float32)]

        def call(obs: np.ndarray) -> np.ndarray:
            action, state[0] = session.run([OUTPUT_NAME, STATE_OUTPUT], {INPUT_NAME: obs, STATE_INPUT: state[0]})
            return action
    else:
        def call(obs: np.ndarray) -> np.ndarray:
            return session.run([OUTPUT_NAME], {INPUT_NAME: obs})[0]

    times = time_calls(call, input_dim, n_calls, warmup, "onnxruntime", progress)
    return summarize("onnxruntime_cpu", times, f"{cpu_name()}, {threads} thread(s)")


def torch_eager_latency(
    module: torch.nn.Module,
    input_dim: int,
    n_calls: int = 1000,
    warmup: int = 100,
    threads: int = 1,
    progress: bool = False,
) -> LatencyResult:
    """PyTorch eager on the CPU under inference_mode, `threads` intra-op threads."""
    model = copy.deepcopy(module).cpu().eval()
    if getattr(model, "family", "") == "gru":
        state = [model.initial_state(1)]

        def call(obs: np.ndarray) -> np.ndarray:
            action, state[0] = model(torch.from_numpy(obs), state[0])
            return action.numpy()
    else:
        def call(obs: np.ndarray) -> np.ndarray:
            return model(torch.from_numpy(obs)).numpy()

    with torch_threads(threads), torch.inference_mode():
        times = time_calls(call, input_dim, n_calls, warmup, "torch eager", progress)
    return summarize("torch_eager_cpu", times, f"{cpu_name()}, {threads} thread(s)")


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        raise DistillError(
            "CUDA is not available here (torch.cuda.is_available() is False); this backend needs an "
            "NVIDIA GPU and a CUDA build of torch"
        )


def torch_cuda_graph_latency(
    module: torch.nn.Module, input_dim: int, n_calls: int = 1000, warmup: int = 100, progress: bool = False
) -> LatencyResult:
    """PyTorch on the GPU with the forward pass captured once in a CUDA graph and replayed;
    each call copies the row in, replays, and copies the action back (which synchronises)."""
    _require_cuda()
    device = torch.device("cuda")
    model = copy.deepcopy(module).to(device).eval()
    static_in = torch.zeros(1, input_dim, device=device)
    recurrent = getattr(model, "family", "") == "gru"
    static_h = model.initial_state(1) if recurrent else None
    forward = (lambda: model(static_in, static_h)) if recurrent else (lambda: (model(static_in), None))
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out, static_h_out = forward()

    def call(obs: np.ndarray) -> np.ndarray:
        static_in.copy_(torch.from_numpy(obs))
        graph.replay()
        if recurrent:
            static_h.copy_(static_h_out)  # the state fed back, as a controller does
        return static_out.cpu().numpy()

    times = time_calls(call, input_dim, n_calls, warmup, "torch cuda graph", progress)
    return summarize("torch_cuda_graph", times, torch.cuda.get_device_name(device))


def tensorrt_latency(
    engine_path: str | Path, n_calls: int = 1000, warmup: int = 100, progress: bool = False
) -> LatencyResult:
    """A serialized TensorRT engine (built on this GPU), run on its own CUDA stream; buffers are
    torch CUDA tensors. Uses the name-based tensor API that TensorRT 8.5 introduced and 10 kept
    (the binding-index API it replaced is gone in 10): ICudaEngine.num_io_tensors,
    get_tensor_name, get_tensor_shape, get_tensor_dtype; IExecutionContext.set_tensor_address,
    execute_async_v3(stream_handle)."""
    trt = import_tensorrt()
    _require_cuda()
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise DistillError(f"TensorRT engine {engine_path} not found; build it with build_engine or trtexec")
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise DistillError(f"{engine_path} is not an engine for this GPU/TensorRT; rebuild it here")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    dtypes = {name: engine.get_tensor_dtype(name) for name in names}
    recurrent = STATE_INPUT in names
    want = [INPUT_NAME, OUTPUT_NAME, *((STATE_INPUT, STATE_OUTPUT) if recurrent else ())]
    if sorted(names) != sorted(want) or set(dtypes.values()) != {trt.float32}:
        raise DistillError(
            f"{engine_path} has I/O {dtypes}; a distill engine takes float32 {INPUT_NAME!r} and returns float32 "
            f"{OUTPUT_NAME!r} (build it from a distill ONNX export)"
        )
    buffers = {
        name: torch.zeros(tuple(engine.get_tensor_shape(name)), dtype=torch.float32, device="cuda") for name in names
    }
    for name, buffer in buffers.items():
        context.set_tensor_address(name, buffer.data_ptr())
    stream = torch.cuda.Stream()
    input_dim = int(buffers[INPUT_NAME].shape[1])

    def call(obs: np.ndarray) -> np.ndarray:
        with torch.cuda.stream(stream):
            buffers[INPUT_NAME].copy_(torch.from_numpy(obs))
            context.execute_async_v3(stream.cuda_stream)
            if recurrent:
                buffers[STATE_INPUT].copy_(buffers[STATE_OUTPUT])
            return buffers[OUTPUT_NAME].cpu().numpy()

    times = time_calls(call, input_dim, n_calls, warmup, "tensorrt", progress)
    return summarize("tensorrt", times, torch.cuda.get_device_name(0))


def jax_latency(
    fn: Callable[[Any, Any], Any],
    params: Any,
    input_dim: int,
    n_calls: int = 1000,
    warmup: int = 100,
    progress: bool = False,
    backend: str = "jax_jit",
) -> LatencyResult:
    """`fn(params, obs[1, D]) -> action` (e.g. the teacher's actor) jit'd on JAX's default device,
    waiting for each result. XLA sizes its CPU thread pool at start-up, so unlike the other CPU
    backends this one is not pinned to one thread."""
    jitted = jax.jit(fn)

    def call(obs: np.ndarray) -> np.ndarray:
        return np.asarray(jitted(params, obs).block_until_ready())

    times = time_calls(call, input_dim, n_calls, warmup, backend, progress)
    device = jax.devices()[0]
    name = cpu_name() if device.platform == "cpu" else getattr(device, "device_kind", device.platform)
    return summarize(backend, times, f"{name} ({device.platform})")


def available_backends() -> list[str]:
    """The backends that can run on this machine."""
    found = ["onnxruntime_cpu", "torch_eager_cpu", "jax_jit"]
    if torch.cuda.is_available():
        found.append("torch_cuda_graph")
        try:
            import_tensorrt()
            found.append("tensorrt")
        except DistillError:
            pass
    return found
