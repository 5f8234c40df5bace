"""The teacher's deterministic actor as ONNX, so teacher and student are timed on one backend.

The JAX actor (distill.teachers.networks) is rebuilt as a torch module with the same weights and
exported with the same conventions as a student: opset 17, one input `obs` [1, obs+goal dim]
float32, one output `action` = tanh(mean), and the same checks (onnx.checker's full check, TensorRT
8.5 readiness). LayerNorm is written out in ops TensorRT 8.5's parser supports (it has no
LayerNormalization: that came in 8.6), in the pattern ONNX Runtime fuses back into one kernel, so
CPU latency is what the LayerNormalization op gave. The residual blocks stay stacked
[depth // 4, 4, ...] in the module; tracing unrolls the Python loop over them into a static graph
(what ONNX Runtime and TensorRT need), and constant folding turns each block-layer slice into its
own initializer, so the file holds every weight once. Parity is checked in a real ONNX Runtime
session against `Teacher.act` before the file replaces the target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import distill
from distill.atomic import atomic_path
from distill.errors import DistillError
from distill.export.onnx_export import (
    DEFAULT_OPSET,
    ExportResult,
    check_graph,
    ort_session,
    run_onnx,
    write_onnx,
)
from distill.hashing import sha256_file
from distill.teachers.networks import ACTIVATIONS, LAYER_NORM_EPS, Params
from distill.teachers.teacher import Teacher, as_numpy

PARITY_TOL = 1e-4
"""float32 through hundreds of layers, and LayerNorm's variance computed two ways (JAX:
E[x²] − E[x]²; the ONNX graph: E[(x − E[x])²]), so looser than a student's 1e-5."""
PARITY_ROWS = 64
PARITY_SCALE = 3.0
"""Raw teacher inputs (no normaliser): N(0, 3²) spans the positions and velocities the envs emit."""


def _tensor(x, transpose: bool = False) -> torch.Tensor:
    a = np.asarray(as_numpy(x), dtype=np.float32)
    if transpose:
        a = np.swapaxes(a, -1, -2)
    return torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))


_PARTS = ("w", "b", "scale", "shift")


def _layer_name(block: int, layer: int, part: str) -> str:
    return f"block{block}_{layer}_{part}"


def layer_norm(h: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add.
    TensorRT 8.5's parser has every one of these ops. ONNX Runtime's LayerNormFusion matches this
    exact pattern (squaring with Pow, not Mul) and runs its LayerNormalization kernel: written with
    Mul it stays unfused and the 8-layer reacher actor's batch-1 latency doubles."""
    mean = h.mean(-1, keepdim=True)
    centred = h - mean
    var = centred.pow(2).mean(-1, keepdim=True)
    return centred / torch.sqrt(var + LAYER_NORM_EPS) * scale + shift


class TeacherActorModule(nn.Module):
    """tanh(mean) of a CRL actor: Dense+LayerNorm+activation input layer, residual blocks of four such
    layers (identity added after the fourth), then the mean head. Kernels are stored as torch
    Linear weights ([out, in]) so each layer exports as one Gemm.

    The blocks are held stacked (`blocks_w` [depth // 4, 4, W, W], ...) as in the JAX pytree,
    and each layer's slice is also registered as a buffer that is a view of the stack (no copy).
    forward reads the views: the TorchScript exporter lifts buffers to initializers, whereas
    indexing the stack inside the graph makes its per-node shape inference copy the whole stack
    at every layer (a depth-512 export took 183 s that way, quadratic in depth)."""

    def __init__(self, actor_params: Params, activation: str = "swish", decompose_layer_norm: bool = False):
        """`decompose_layer_norm`: LayerNorm from elementary ops (`layer_norm`), as exported for
        TensorRT 8.5; otherwise torch's fused kernel, for timing the teacher in PyTorch itself.
        `activation`: "swish" (exported as Sigmoid and Mul) or "relu" (one Relu op)."""
        super().__init__()
        if activation not in ACTIVATIONS:
            raise DistillError(f"activation {activation!r}: use one of {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.decompose_layer_norm = decompose_layer_norm
        try:
            trunk = actor_params["trunk"]
            inp, blocks, mean = trunk["input"], trunk["blocks"], actor_params["mean"]
            tensors = {
                "in_w": _tensor(inp["dense"]["kernel"], transpose=True),
                "in_b": _tensor(inp["dense"]["bias"]),
                "in_scale": _tensor(inp["norm"]["scale"]),
                "in_shift": _tensor(inp["norm"]["bias"]),
                "blocks_w": _tensor(blocks["dense"]["kernel"], transpose=True),
                "blocks_b": _tensor(blocks["dense"]["bias"]),
                "blocks_scale": _tensor(blocks["norm"]["scale"]),
                "blocks_shift": _tensor(blocks["norm"]["bias"]),
                "mean_w": _tensor(mean["kernel"], transpose=True),
                "mean_b": _tensor(mean["bias"]),
            }
        except (KeyError, TypeError) as exc:
            raise DistillError(
                f"actor params lack {exc}: not a CRL actor pytree (trunk/mean/log_std)"
            ) from None
        width, self.input_dim = tensors["in_w"].shape
        self.action_dim = tensors["mean_w"].shape[0]
        n_blocks = tensors["blocks_w"].shape[0]
        expected = {
            "blocks_w": (n_blocks, 4, width, width),
            "blocks_b": (n_blocks, 4, width),
            "blocks_scale": (n_blocks, 4, width),
            "blocks_shift": (n_blocks, 4, width),
            "in_b": (width,),
            "in_scale": (width,),
            "in_shift": (width,),
            "mean_w": (self.action_dim, width),
            "mean_b": (self.action_dim,),
        }
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != shape:
                raise DistillError(
                    f"actor param {name} has shape {tuple(tensors[name].shape)}, expected {shape} "
                    f"for width {width} and {n_blocks} residual blocks; the actor pytree is inconsistent"
                )
        self.width, self.depth = int(width), int(4 * n_blocks)
        for name, value in tensors.items():
            self.register_buffer(name, value)
        for blk in range(n_blocks):
            for i in range(4):
                for part in _PARTS:
                    self.register_buffer(
                        _layer_name(blk, i, part), getattr(self, f"blocks_{part}")[blk, i]
                    )

    def _layer(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        b: torch.Tensor,
        scale: torch.Tensor,
        shift: torch.Tensor,
    ):
        h = F.linear(x, w, b)
        if self.decompose_layer_norm:
            h = layer_norm(h, scale, shift)
        else:
            h = F.layer_norm(h, (self.width,), scale, shift, LAYER_NORM_EPS)
        return F.relu(h) if self.activation == "relu" else F.silu(h)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self._layer(obs, self.in_w, self.in_b, self.in_scale, self.in_shift)
        for blk in range(self.blocks_w.shape[0]):
            identity = h
            for i in range(4):
                h = self._layer(h, *(getattr(self, _layer_name(blk, i, part)) for part in _PARTS))
            h = h + identity
        return torch.tanh(F.linear(h, self.mean_w, self.mean_b))


def teacher_parity_inputs(input_dim: int, n: int = PARITY_ROWS, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (PARITY_SCALE * rng.standard_normal((n, input_dim))).astype(np.float32)


def check_teacher_parity(
    onnx_path: str | Path, teacher: Teacher, obs: np.ndarray | None = None, tol: float = PARITY_TOL
) -> float:
    """Max |ONNX Runtime − JAX teacher.act| over the rows; raises DistillError above `tol`."""
    input_dim = teacher.arch.obs_dim + teacher.arch.goal_dim
    rows = teacher_parity_inputs(input_dim) if obs is None else np.asarray(obs, dtype=np.float32)
    got = run_onnx(ort_session(onnx_path), rows)
    want = as_numpy(teacher.act(rows))
    if got.shape != want.shape:
        raise DistillError(
            f"{onnx_path}: ONNX output shape {got.shape} != JAX teacher {want.shape}; re-export it"
        )
    err = float(np.max(np.abs(got - want)))
    if not err <= tol:
        raise DistillError(
            f"{onnx_path}: ONNX Runtime differs from the JAX teacher {teacher.name!r} by {err:.3g} (> {tol:g}) on "
            f"{rows.shape[0]} observations; the file does not compute the teacher's actor — re-export it"
        )
    return err


def _metadata(teacher: Teacher, module: TeacherActorModule) -> dict[str, str]:
    return {
        "distill.role": "teacher_actor",
        "distill.teacher": teacher.name,
        "distill.env": teacher.env,
        "distill.teacher_sha256": teacher.weights_identity,
        "distill.random_init": str(teacher.random_init),
        "distill.activation": teacher.arch.activation,
        "distill.depth": str(module.depth),
        "distill.width": str(module.width),
        "distill.version": distill.__version__,
        "distill.normalisation": "none (raw observations, as the teacher sees them)",
        "distill.action_range": "tanh [-1, 1]",
    }


def export_teacher_actor_onnx(
    teacher: Teacher,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    tol: float = PARITY_TOL,
    obs: np.ndarray | None = None,
) -> ExportResult:
    """Exports the teacher's deterministic actor, checks opset/IO and parity with `teacher.act`
    in ONNX Runtime (on `obs`, or random raw observations), then moves the file into place."""
    path = Path(path)
    module = TeacherActorModule(teacher.actor_params, teacher.arch.activation, decompose_layer_norm=True).eval()
    arch = teacher.arch
    if (module.input_dim, module.action_dim) != (arch.obs_dim + arch.goal_dim, arch.action_dim):
        raise DistillError(
            f"teacher {teacher.name!r}: actor weights map {module.input_dim} -> {module.action_dim}, but its arch "
            f"says {arch.obs_dim}+{arch.goal_dim} -> {arch.action_dim}; the checkpoint is inconsistent"
        )
    with atomic_path(path) as tmp:
        write_onnx(module, module.input_dim, tmp, opset, _metadata(teacher, module))
        check_graph(tmp, opset, module.input_dim, module.action_dim)
        err = check_teacher_parity(tmp, teacher, obs, tol)
    return ExportResult(path, err, sha256_file(path), opset, module.input_dim, module.action_dim)
