"""The student: a small MLP whose forward pass is the whole deployed policy.

Normalisation ((obs - mean) / std) and the final tanh live inside `forward`, so the ONNX graph
exported from it takes raw observations and returns actions in [-1, 1] with nothing left for
the robot-side code to get wrong.

An optional log-std head (`log_std_head=True`) gives the student a Gaussian in pre-tanh space for
distribution-matching losses (KL to the teacher's Gaussian). It is used only while training:
`forward`, and so the ONNX export and the JAX mirror, stay `tanh(mean)`.

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
LOG_STD_RANGE = (-5.0, 2.0)
"""The teacher's log-std range (scaling-crl squashes its raw head into it); the student's head uses
the same squash so the two distributions live on the same scale."""
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

    family = "mlp"

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        depth: int,
        width: int,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        log_std_head: bool = False,
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
        self.log_std = nn.Linear(width, action_dim) if log_std_head else None

    @property
    def has_log_std_head(self) -> bool:
        return self.log_std is not None

    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs - self.obs_mean) / self.obs_std
        for layer in self.hidden:
            x = nn.functional.elu(layer(x))
        return x

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.pre_tanh(obs))

    def pre_tanh(self, obs: torch.Tensor) -> torch.Tensor:
        """The action before tanh: the mean of the student's Gaussian in pre-tanh space."""
        return self.head(self._features(obs))

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-tanh mean, log std), each [B, action_dim]; needs the log-std head (training only)."""
        if self.log_std is None:
            raise DistillError("this student has no log-std head; build it with log_std_head=True for a KL fit")
        x = self._features(obs)
        lo, hi = LOG_STD_RANGE
        return self.head(x), lo + 0.5 * (hi - lo) * (torch.tanh(self.log_std(x)) + 1.0)

    @torch.no_grad()
    def act_numpy(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a float32 numpy batch, as numpy (eval-time helper, no autograd)."""
        return self(torch.as_tensor(np.asarray(obs, dtype=np.float32))).numpy()

    @torch.no_grad()
    def set_normalizer(self, obs_mean: np.ndarray, obs_std: np.ndarray) -> None:
        """Replaces the normaliser in place (floored like the constructor does)."""
        self.obs_mean.copy_(_vector("obs_mean", obs_mean, self.input_dim, 0.0))
        self.obs_std.copy_(_vector("obs_std", obs_std, self.input_dim, 1.0).clamp_min(STD_FLOOR))

    @property
    def recurrent(self) -> bool:
        """Whether the student carries state between steps (see `distill.students.memory`)."""
        return self.family != "mlp"

    def config(self) -> dict[str, Any]:
        """Constructor arguments other than the normaliser (which travels with the weights)."""
        return {
            "input_dim": self.input_dim,
            "action_dim": self.action_dim,
            "depth": self.depth,
            "width": self.width,
            "activation": ACTIVATION,
            "log_std_head": self.has_log_std_head,
        }

    def num_params(self) -> int:
        """Parameters of the deployed policy (`forward`); the training-only log-std head is not counted."""
        skip = set() if self.log_std is None else {id(p) for p in self.log_std.parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)
