#!/usr/bin/env python3
"""Runs a distilled student on the robot: the TensorRT engine that build_engine.sh built, or the
bundle's ONNX through ONNX Runtime when the engine cannot run here.

Needs Python 3.8+, numpy, and `tensorrt` (JetPack 5.1 ships 8.5) or `onnxruntime`; nothing else
(no distill, torch or jax). Run it from anywhere: files are found next to this script.

    python3 run_policy.py --replay              the shipped episodes must give the student's actions
    python3 run_policy.py --replay --onnx       the same through ONNX Runtime
    python3 run_policy.py --bench 5000          time act() at batch 1 against the inference budget
    python3 run_policy.py parse-trtexec LOG     trtexec timing log -> device_timings.json, PASS/FAIL

In the robot's controller (feed raw observations laid out as deploy.yaml says; normalisation and
tanh are inside the model):

    from run_policy import FixedRateLoop, PolicyRunner
    policy = PolicyRunner.load()                 # engine if it runs here, else ONNX Runtime
    policy.reset()                               # at every episode's start (reset, fall, new goal)
    FixedRateLoop().run(lambda: send(policy.act(read_observation())))

A student with memory needs nothing more from the controller: `act` keeps the last HISTORY_LENGTH
observations (stacked per field, oldest first, as deploy.yaml's `memory` section lists them) or feeds
the model's STATE_OUTPUT back as its STATE_INPUT; `reset` starts both afresh.

Device buffers for the engine go through the CUDA runtime library with ctypes: JetPack 5.1 ships
neither pycuda nor cuda-python (pycuda must be compiled on the robot against CUDA 11.4), while
libcudart is always there because TensorRT itself links it. Six runtime calls are all we need.

This file is a template inside distill (distill/ship/robot/run_policy.py); `distill ship` fills in
the bundle constants and pastes the trtexec parser in place of the marked blocks.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import hashlib
import os
import sys
import time
import warnings
from typing import Callable

import numpy as np

# >>> bundle constants: `distill ship` writes the values of this block
BUNDLE_NAME = "template"
ONNX_FILE = "student.onnx"
ENGINE_FILE = "student.engine"
PRECISION = "fp32"
INPUT_NAME = "obs"
OUTPUT_NAME = "action"
OBS_DIM = 0
INPUT_DIM = 0
ACTION_DIM = 0
HISTORY_LENGTH = 1
HISTORY_FIELDS = ()
STATE_INPUT = ""
STATE_OUTPUT = ""
STATE_SHAPE = ()
CONTROL_HZ = 50.0
BUDGET_MS = 1.0
REPLAY_OBS_FILE = "replay_obs.npy"
REPLAY_ACTIONS_FILE = "replay_actions.npy"
REPLAY_STARTS_FILE = "replay_starts.npy"
TOLERANCE_ONNX = 0.0001
TOLERANCE_ENGINE = 0.01
TIMINGS_FILE = "device_timings.json"
# <<< bundle constants

# >>> trtexec_summary: `distill ship` pastes distill/ship/robot/trtexec_summary.py here
from trtexec_summary import TrtexecParseError, parse_trtexec_log

# <<< trtexec_summary

HERE = os.path.dirname(os.path.abspath(__file__))
WARN_EVERY_S = 1.0
"""At most one overrun warning per second: printing at 50 Hz would itself cause overruns."""


def bundle_path(name: str) -> str:
    return name if os.path.isabs(name) else os.path.join(HERE, name)


def say(message: str) -> None:
    print("run_policy: " + message, file=sys.stderr)


# --- what the policy carries between steps ----------------------------------------------------
class Memory:
    """The last HISTORY_LENGTH observations (a history student) and the recurrent state (a GRU
    student); `reset` at an episode's first step, as the student was trained and exported."""

    def __init__(self) -> None:
        self.buffer = np.zeros((HISTORY_LENGTH, OBS_DIM), np.float32)
        self.state = np.zeros(STATE_SHAPE, np.float32) if STATE_INPUT else None
        self.fresh = True
        steps, dims = [], []
        for start, stop in HISTORY_FIELDS or ((0, OBS_DIM),):
            for j in range(HISTORY_LENGTH):
                steps += [j] * (stop - start)
                dims += list(range(start, stop))
        self.steps = np.array(steps, dtype=np.int64)
        self.dims = np.array(dims, dtype=np.int64)
        if self.steps.size != INPUT_DIM:
            raise ValueError(f"HISTORY_FIELDS and HISTORY_LENGTH stack {self.steps.size} values; the model takes {INPUT_DIM}")

    def reset(self) -> None:
        self.fresh = True
        if self.state is not None:
            self.state[...] = 0.0

    def model_input(self, obs: np.ndarray) -> np.ndarray:
        """The model's obs [1, INPUT_DIM] for this step's observation [OBS_DIM]."""
        if self.fresh:
            self.buffer[...] = obs
            self.fresh = False
        else:
            self.buffer[:-1] = self.buffer[1:]
            self.buffer[-1] = obs
        return self.buffer[self.steps, self.dims].reshape(1, INPUT_DIM)


# --- runtimes --------------------------------------------------------------------------------
class OnnxRuntimePolicy:
    """The ONNX on the CPU, one thread, sequential: how the host measured it."""

    kind = "onnxruntime"

    def __init__(self, path: str, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.description = f"ONNX Runtime {ort.__version__} (CPU, {threads} thread) on {os.path.basename(path)}"

    def run(self, obs: np.ndarray, state: np.ndarray | None) -> tuple:
        """(action [1, ACTION_DIM], next state or None)."""
        if state is None:
            return self.session.run([OUTPUT_NAME], {INPUT_NAME: obs})[0], None
        action, state = self.session.run([OUTPUT_NAME, STATE_OUTPUT], {INPUT_NAME: obs, STATE_INPUT: state})
        return action, state


def _load_cudart() -> ctypes.CDLL:
    found = ctypes.util.find_library("cudart")
    candidates = [found] if found else []
    candidates += ["libcudart.so", "libcudart.so.11.0", "/usr/local/cuda/lib64/libcudart.so"]
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise OSError("the CUDA runtime library (libcudart.so) was not found; tried " + ", ".join(candidates))


class CudaRuntime:
    """Pinned host buffers, device buffers, one stream and async copies, through libcudart."""

    HOST_TO_DEVICE = 1
    DEVICE_TO_HOST = 2

    def __init__(self) -> None:
        lib = _load_cudart()
        vp, size = ctypes.c_void_p, ctypes.c_size_t
        signatures = {
            "cudaMalloc": [ctypes.POINTER(vp), size],
            "cudaMallocHost": [ctypes.POINTER(vp), size],
            "cudaStreamCreate": [ctypes.POINTER(vp)],
            "cudaStreamSynchronize": [vp],
            "cudaMemcpyAsync": [vp, vp, size, ctypes.c_int, vp],
        }
        for name, argtypes in signatures.items():
            getattr(lib, name).argtypes = argtypes
            getattr(lib, name).restype = ctypes.c_int
        lib.cudaGetErrorString.argtypes = [ctypes.c_int]
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        self.lib = lib

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise RuntimeError(f"{call} failed: {self.lib.cudaGetErrorString(status).decode()}")

    def _alloc(self, call: str, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(getattr(self.lib, call)(ctypes.byref(ptr), nbytes), call)
        return int(ptr.value)

    def device_buffer(self, nbytes: int) -> int:
        return self._alloc("cudaMalloc", nbytes)

    def host_array(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """A numpy array over page-locked memory, so copies run asynchronously on the stream."""
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = self._alloc("cudaMallocHost", nbytes)
        return np.frombuffer((ctypes.c_char * nbytes).from_address(ptr), dtype=dtype).reshape(shape)

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(handle)), "cudaStreamCreate")
        return int(handle.value or 0)

    def copy(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self._check(self.lib.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync")

    def synchronize(self, stream: int) -> None:
        self._check(self.lib.cudaStreamSynchronize(stream), "cudaStreamSynchronize")


class TensorRTPolicy:
    """The engine through TensorRT 8.5's named-tensor API (set_tensor_address, execute_async_v3)."""

    kind = "tensorrt"

    def __init__(self, path: str) -> None:
        import tensorrt as trt

        self.cuda = CudaRuntime()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with open(path, "rb") as f:
            self.engine = self.runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise RuntimeError(f"TensorRT {trt.__version__} cannot deserialize {path}: an engine loads only on the GPU and TensorRT "
                               "version that built it; rebuild it here with build_engine.sh")
        self.context = self.engine.create_execution_context()
        if not hasattr(self.context, "execute_async_v3"):
            raise RuntimeError(f"TensorRT {trt.__version__} has no execute_async_v3 (it came in 8.5)")
        self.stream = self.cuda.stream()
        self.host = {}
        self.device = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self.host[name] = self.cuda.host_array(shape, dtype)
            self.device[name] = self.cuda.device_buffer(self.host[name].nbytes)
            self.context.set_tensor_address(name, self.device[name])
        want = {INPUT_NAME: (1, INPUT_DIM), OUTPUT_NAME: (1, ACTION_DIM)}
        if STATE_INPUT:
            want[STATE_INPUT] = want[STATE_OUTPUT] = tuple(STATE_SHAPE)
        got = {name: self.host[name].shape for name in self.host}
        if got != want:
            raise RuntimeError(f"{path} has tensors {got}, this bundle expects {want}")
        self.description = f"TensorRT {trt.__version__} engine {os.path.basename(path)} ({PRECISION})"

    def run(self, obs: np.ndarray, state: np.ndarray | None) -> tuple:
        """(action [1, ACTION_DIM], next state or None)."""
        inputs = [(INPUT_NAME, obs)] + ([(STATE_INPUT, state)] if state is not None else [])
        outputs = [OUTPUT_NAME] + ([STATE_OUTPUT] if state is not None else [])
        for name, value in inputs:
            src = self.host[name]
            src[...] = value
            self.cuda.copy(self.device[name], src.ctypes.data, src.nbytes, CudaRuntime.HOST_TO_DEVICE, self.stream)
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed; see TensorRT's log above")
        for name in outputs:
            dst = self.host[name]
            self.cuda.copy(dst.ctypes.data, self.device[name], dst.nbytes, CudaRuntime.DEVICE_TO_HOST, self.stream)
        self.cuda.synchronize(self.stream)
        action = self.host[OUTPUT_NAME].astype(np.float32)
        return action, (self.host[STATE_OUTPUT].astype(np.float32) if state is not None else None)


class PolicyRunner:
    """One policy behind `act(obs) -> action`, whichever runtime loaded it."""

    def __init__(self, runtime, tolerance: float, fallback_reason: str = "") -> None:
        self.runtime = runtime
        self.tolerance = tolerance
        """How far this runtime's actions may be from the student's (replay_actions.npy)."""
        self.fallback_reason = fallback_reason
        self.memory = Memory()

    @classmethod
    def load(cls, prefer: str = "auto", engine: str | None = None, onnx: str | None = None) -> PolicyRunner:
        """prefer: "engine" or "auto" try the engine first and fall back to ONNX Runtime with the
        reason on stderr; "onnx" goes straight to ONNX Runtime."""
        engine_path = bundle_path(engine or ENGINE_FILE)
        onnx_path = bundle_path(onnx or ONNX_FILE)
        reason = ""
        if prefer != "onnx":
            if not os.path.isfile(engine_path):
                reason = f"no engine at {engine_path} (build it with ./build_engine.sh)"
            else:
                try:
                    return cls(TensorRTPolicy(engine_path), TOLERANCE_ENGINE)
                except (ImportError, OSError, RuntimeError, AttributeError, TypeError) as exc:
                    reason = f"the engine cannot run here: {type(exc).__name__}: {exc}"
            say(reason + "; falling back to ONNX Runtime on the CPU")
        try:
            return cls(OnnxRuntimePolicy(onnx_path), TOLERANCE_ONNX, reason)
        except ImportError:
            raise SystemExit("run_policy: neither the engine nor onnxruntime can run here ({}); install "
                             "onnxruntime or build the engine".format(reason or "onnxruntime is not installed"))

    @property
    def description(self) -> str:
        return self.runtime.description

    def reset(self) -> None:
        """Call at every episode's first step: clears the history buffer and the recurrent state."""
        self.memory.reset()

    def act(self, obs) -> np.ndarray:
        """Action [ACTION_DIM] in [-1, 1] for one raw observation [OBS_DIM]."""
        row = np.asarray(obs, dtype=np.float32)
        if row.size != OBS_DIM:
            raise ValueError(f"observation has {row.size} values; the policy takes {OBS_DIM} (see deploy.yaml)")
        action, state = self.runtime.run(self.memory.model_input(row.reshape(OBS_DIM)), self.memory.state)
        if state is not None:
            self.memory.state = np.array(state, dtype=np.float32).reshape(STATE_SHAPE)
        return np.array(action, dtype=np.float32).reshape(ACTION_DIM)


# --- the controller's clock ------------------------------------------------------------------
class FixedRateLoop:
    """Calls `step()` once per control period and sleeps to the next tick; warns (at most once a
    second, with counts) when a step overruns the inference budget or the whole period.

    The budget check times the whole step: give `budget_ms=None` when the step does more than
    inference (reading sensors, sending commands) and only the period matters."""

    def __init__(self, rate_hz: float = CONTROL_HZ, budget_ms: float | None = BUDGET_MS,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.period_s = 1.0 / rate_hz
        self.budget_ms = budget_ms
        self.clock = clock
        self.sleep = sleep
        self.steps = 0
        self.period_overruns = 0
        self.budget_overruns = 0
        self.worst_ms = 0.0
        self._last_warning: float | None = None

    def _warn(self, now: float, message: str) -> None:
        if self._last_warning is None or now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            warnings.warn(f"{message} ({self.period_overruns} period and {self.budget_overruns} budget overruns in {self.steps} steps)", RuntimeWarning, stacklevel=3)

    def _account(self, start: float, end: float) -> None:
        took_ms = (end - start) * 1000.0
        self.steps += 1
        self.worst_ms = max(self.worst_ms, took_ms)
        if took_ms > self.period_s * 1000.0:
            self.period_overruns += 1
            self._warn(end, f"step took {took_ms:.3f} ms, over the {self.period_s * 1000.0:.3f} ms period")
        elif self.budget_ms is not None and took_ms > self.budget_ms:
            self.budget_overruns += 1
            self._warn(end, f"step took {took_ms:.3f} ms, over the {self.budget_ms:g} ms inference budget")

    def run(self, step: Callable[[], object], steps: int | None = None,
            should_stop: Callable[[], bool] | None = None) -> None:
        """Runs until `steps` steps are done or `should_stop()` is true; a late step restarts the
        schedule rather than bursting to catch up."""
        next_tick = self.clock()
        while (steps is None or self.steps < steps) and not (should_stop and should_stop()):
            start = self.clock()
            step()
            end = self.clock()
            self._account(start, end)
            next_tick += self.period_s
            delay = next_tick - self.clock()
            if delay > 0:
                self.sleep(delay)
            else:
                next_tick = self.clock()


# --- commands --------------------------------------------------------------------------------
def replay(runner: PolicyRunner) -> int:
    """Steps through the shipped episodes as the controller would, starting afresh at each one."""
    obs = np.load(bundle_path(REPLAY_OBS_FILE))
    want = np.load(bundle_path(REPLAY_ACTIONS_FILE))
    starts = np.load(bundle_path(REPLAY_STARTS_FILE))
    n = obs.shape[0]
    if obs.shape != (n, OBS_DIM) or want.shape != (n, ACTION_DIM) or starts.shape != (n,):
        say(f"replay files have shapes {obs.shape}, {want.shape} and {starts.shape}; expected (N, {OBS_DIM}), "
            f"(N, {ACTION_DIM}) and (N,)")
        return 2
    got = np.empty_like(want, dtype=np.float32)
    for i in range(n):
        if starts[i] or i == 0:
            runner.reset()
        got[i] = runner.act(obs[i])
    err = np.abs(got - want).max(axis=1)
    worst = int(np.argmax(err))
    episodes = int(np.count_nonzero(starts)) or 1
    line = (f"{n} rows ({episodes} episode{'s' if episodes > 1 else ''}) through {runner.description}: "
            f"max |action - student| = {float(err[worst]):.3g} (tolerance {runner.tolerance:g})")
    if float(err[worst]) <= runner.tolerance and np.all(np.isfinite(got)):
        print("replay OK: " + line)
        return 0
    np.set_printoptions(precision=5, suppress=True, linewidth=120)
    print("replay FAILED: " + line)
    print(f"worst row {worst}: obs {obs[worst]}")
    print(f"  got    {got[worst]}")
    print(f"  wanted {want[worst]}")
    return 1


def bench(runner: PolicyRunner, calls: int, budget_ms: float = BUDGET_MS) -> int:
    """Batch-1 latency of act() as the controller sees it (copies and dispatch included), against
    `budget_ms` (the target's budget unless given): exit 0 on PASS, 1 on FAIL."""
    if calls < 1:
        say("--bench needs at least 1 call")
        return 2
    path = bundle_path(REPLAY_OBS_FILE)
    rows = np.load(path) if os.path.isfile(path) else np.zeros((1, OBS_DIM), np.float32)
    for i in range(min(calls, 200)):
        runner.act(rows[i % len(rows)])
    times: list[float] = []
    for i in range(calls):
        start = time.perf_counter()
        runner.act(rows[i % len(rows)])
        times.append((time.perf_counter() - start) * 1000.0)
    median, p99 = (float(v) for v in np.percentile(times, [50, 99]))
    word = "PASS" if p99 <= budget_ms else "FAIL"
    print(f"{word}: act() p99 {p99:.4f} ms vs budget {budget_ms:g} ms (median {median:.4f} ms, {calls} calls, {runner.description})")
    return 0 if word == "PASS" else 1


def write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def parse_trtexec(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run_policy.py parse-trtexec",
                                     description="trtexec timing log -> device_timings.json and PASS/FAIL")
    parser.add_argument("log", help="what trtexec printed for the --loadEngine timing run")
    parser.add_argument("--out", default=TIMINGS_FILE, help="JSON to write (default: %(default)s)")
    parser.add_argument("--precision", default=PRECISION)
    parser.add_argument("--device", default="", help="device name (default: trtexec's 'Selected Device')")
    parser.add_argument("--budget-ms", type=float, default=BUDGET_MS)
    args = parser.parse_args(argv)
    with open(args.log) as f:
        text = f.read()
    try:
        timing = parse_trtexec_log(text, precision=args.precision, device=args.device)
    except TrtexecParseError as exc:
        say(f"{args.log}: {exc}")
        return 2
    with open(bundle_path(ONNX_FILE), "rb") as f:
        model_sha256 = hashlib.sha256(f.read()).hexdigest()
    timing = dataclasses.replace(timing, bundle=BUNDLE_NAME, model_sha256=model_sha256)
    write_atomic(args.out, timing.to_json())
    print(timing.verdict_line(args.budget_ms))
    print(f"timings written to {args.out}")
    return 0 if timing.meets(args.budget_ms) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["parse-trtexec"]:
        return parse_trtexec(argv[1:])
    parser = argparse.ArgumentParser(prog="run_policy.py", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--engine", nargs="?", const=ENGINE_FILE, help="TensorRT engine (default: %(const)s)")
    which.add_argument("--onnx", nargs="?", const=ONNX_FILE, help="ONNX Runtime on this file (default: %(const)s)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--replay", action="store_true", help="check the shipped rows against the student's actions")
    action.add_argument("--bench", type=int, metavar="N", help="time N act() calls against the budget")
    parser.add_argument("--budget-ms", type=float, default=BUDGET_MS, help="--bench: p99 budget in ms (default: %(default)s, the target's)")
    args = parser.parse_args(argv)
    prefer = "onnx" if args.onnx else ("engine" if args.engine else "auto")
    runner = PolicyRunner.load(prefer, engine=args.engine, onnx=args.onnx)
    say(f"bundle {BUNDLE_NAME}: {runner.description}")
    return replay(runner) if args.replay else bench(runner, args.bench, args.budget_ms)


if __name__ == "__main__":
    sys.exit(main())
