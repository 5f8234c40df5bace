"""The student: a small MLP whose forward pass is the whole deployed policy.

Normalisation ((obs - mean) / std) and the final tanh live inside `forward`, so the ONNX graph
exported from it takes raw observations and returns actions in [-1, 1] with nothing left for
the robot-side code to get wrong.

Activation: ELU. It is one ONNX operator (`Elu`) that TensorRT 8.5 runs as one activation
layer, where SiLU exports as Sigmoid + Mul (two ops, and one more tensor to place Q/DQ around
in int8); it is smooth like SiLU, and it is what legged-robot policies (rsl_rl) ship with.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from distill.errors import DistillError

ACTIVATION = "elu"
STD_FLOOR = 1e-2
"""Smallest std used to scale an input, so a dimension that barely varied in the data
(a fixed goal height, say) is not blown up when it moves on the robot."""


def _vector(name: str, value: Any, dim: int, default: float) -> torch.Tensor:
    if value is None:
        return torch.full((dim,), default, dtype=torch.float32)
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (dim,):
        raise DistillError(f"student {name} has shape {arr.shape}; expected ({dim},) to match input_dim")
    if not np.all(np.isfinite(arr)):
        raise DistillError(f"student {name} contains NaN or inf; refit the normaliser on finite observations")
    return torch.from_numpy(arr.copy())


class MLPStudent(nn.Module):
    """obs[B, input_dim] (raw) -> action[B, action_dim] in [-1, 1]."""

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        depth: int,
        width: int,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("input_dim", input_dim), ("action_dim", action_dim), ("depth", depth), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DistillError(f"student {name} = {value!r}; expected a positive integer")
        self.input_dim = input_dim
        self.action_dim = action_dim
        self.depth = depth
        self.width = width
        self.register_buffer("obs_mean", _vector("obs_mean", obs_mean, input_dim, 0.0))
        self.register_buffer("obs_std", _vector("obs_std", obs_std, input_dim, 1.0).clamp_min(STD_FLOOR))
        sizes = [input_dim] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.head = nn.Linear(width, action_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs - self.obs_mean) / self.obs_std
        for layer in self.hidden:
            x = nn.functional.elu(layer(x))
        return torch.tanh(self.head(x))

    @torch.no_grad()
    def act_numpy(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a float32 numpy batch, as numpy (eval-time helper, no autograd)."""
        return self(torch.as_tensor(np.asarray(obs, dtype=np.float32))).numpy()

    @torch.no_grad()
    def set_normalizer(self, obs_mean: np.ndarray, obs_std: np.ndarray) -> None:
        """Replaces the normaliser in place (floored like the constructor does)."""
        self.obs_mean.copy_(_vector("obs_mean", obs_mean, self.input_dim, 0.0))
        self.obs_std.copy_(_vector("obs_std", obs_std, self.input_dim, 1.0).clamp_min(STD_FLOOR))

    def config(self) -> dict[str, Any]:
        """Constructor arguments other than the normaliser (which travels with the weights)."""
        return {
            "input_dim": self.input_dim,
            "action_dim": self.action_dim,
            "depth": self.depth,
            "width": self.width,
            "activation": ACTIVATION,
        }

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_student(
    preset: Any,
    input_dim: int,
    action_dim: int,
    obs_mean: np.ndarray | None = None,
    obs_std: np.ndarray | None = None,
    seed: int = 0,
) -> MLPStudent:
    """A freshly initialised student of a preset's shape; the seed fixes the initial weights
    without touching the global torch RNG."""
    if preset.activation != ACTIVATION:
        raise DistillError(f"preset {preset.name!r} asks for activation {preset.activation!r}; only {ACTIVATION!r} is built")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLPStudent(input_dim, action_dim, preset.depth, preset.width, obs_mean, obs_std)
