"""Recurrent students: normaliser -> GRU (`layers` x `hidden`) -> MLP head (depth x width, ELU) -> tanh.

The deployed function is one control step with explicit state, `forward(obs [B, D], h [L, B, H]) ->
(action [B, A], h_out [L, B, H])`: nothing is kept on the module between calls, so the exported
ONNX (`obs`, `h_in` -> `action`, `h_out`) and the robot-side runner hold the state themselves, and
reset it to zeros at the start of every episode. Training runs whole windows at once (`sequence`).

GRU rather than LSTM: one state tensor instead of two (fewer inputs to wire on the robot), fewer
weights per unit, and TensorRT 8.5 parses both, in fp32 and fp16 only (never int8).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from distill.errors import DistillError
from distill.students.mlp import ACTIVATION, LOG_STD_RANGE, STD_FLOOR, _vector


class GRUStudent(nn.Module):
    """obs[B, input_dim] (raw) and h[layers, B, hidden] -> action[B, action_dim] in [-1, 1], h_out."""

    family = "gru"
    recurrent = True

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        hidden: int,
        layers: int,
        depth: int,
        width: int,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        log_std_head: bool = False,
    ) -> None:
        super().__init__()
        named = (("input_dim", input_dim), ("action_dim", action_dim), ("hidden", hidden), ("layers", layers),
                 ("depth", depth), ("width", width))
        for name, value in named:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DistillError(f"student {name} = {value!r}; expected a positive integer")
        self.input_dim, self.action_dim = input_dim, action_dim
        self.hidden, self.layers, self.depth, self.width = hidden, layers, depth, width
        self.register_buffer("obs_mean", _vector("obs_mean", obs_mean, input_dim, 0.0))
        self.register_buffer("obs_std", _vector("obs_std", obs_std, input_dim, 1.0).clamp_min(STD_FLOOR))
        self.gru = nn.GRU(input_dim, hidden, num_layers=layers, batch_first=True)
        sizes = [hidden] + [width] * depth
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.head = nn.Linear(width, action_dim)
        self.log_std = nn.Linear(width, action_dim) if log_std_head else None

    @property
    def has_log_std_head(self) -> bool:
        return self.log_std is not None

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """The hidden state of one env: [layers, 1, hidden]."""
        return (self.layers, 1, self.hidden)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """Zeros: the state at every episode's first step."""
        return torch.zeros(self.layers, batch, self.hidden, device=self.obs_mean.device)

    def _head_features(self, y: torch.Tensor) -> torch.Tensor:
        for layer in self.mlp:
            y = nn.functional.elu(layer(y))
        return y

    def _features(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs [B, T, D], h [L, B, H] -> head features [B, T, width], h after the last step."""
        y, h_out = self.gru((obs - self.obs_mean) / self.obs_std, h)
        return self._head_features(y), h_out

    def sequence(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh actions [B, T, A] of a window of steps [B, T, D] from state h, and the state after it."""
        y, h_out = self._features(obs, h)
        return self.head(y), h_out

    def sequence_distribution(self, obs: torch.Tensor, h: torch.Tensor):
        """(pre-tanh mean, log std, h_out) over a window; needs the log-std head (training only)."""
        if self.log_std is None:
            raise DistillError("this student has no log-std head; build it with log_std_head=True for a KL fit")
        y, h_out = self._features(obs, h)
        lo, hi = LOG_STD_RANGE
        return self.head(y), lo + 0.5 * (hi - lo) * (torch.tanh(self.log_std(y)) + 1.0), h_out

    def forward(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One control step: obs [B, D], h [L, B, H] -> (action [B, A] in [-1, 1], h_out). The head
        runs on [B, hidden] rows, so it exports as Gemm layers like an MLP student's."""
        y, h_out = self.gru(((obs - self.obs_mean) / self.obs_std).unsqueeze(1), h)
        return torch.tanh(self.head(self._head_features(y[:, 0]))), h_out

    @torch.no_grad()
    def act_sequence_numpy(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Actions [T, A] of one env stepping through obs [T, D], the state zeroed where `starts`
        (the first step of an episode) is true (eval-time helper)."""
        obs = torch.from_numpy(np.array(obs, np.float32))
        h = self.initial_state(1)
        out = []
        for t in range(obs.shape[0]):
            if starts[t]:
                h = self.initial_state(1)
            action, h = self(obs[t : t + 1], h)
            out.append(action[0])
        return torch.stack(out).numpy() if out else np.zeros((0, self.action_dim), np.float32)

    @torch.no_grad()
    def set_normalizer(self, obs_mean: np.ndarray, obs_std: np.ndarray) -> None:
        self.obs_mean.copy_(_vector("obs_mean", obs_mean, self.input_dim, 0.0))
        self.obs_std.copy_(_vector("obs_std", obs_std, self.input_dim, 1.0).clamp_min(STD_FLOOR))

    def config(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "input_dim": self.input_dim,
            "action_dim": self.action_dim,
            "hidden": self.hidden,
            "layers": self.layers,
            "depth": self.depth,
            "width": self.width,
            "activation": ACTIVATION,
            "log_std_head": self.has_log_std_head,
        }

    def num_params(self) -> int:
        skip = set() if self.log_std is None else {id(p) for p in self.log_std.parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)
