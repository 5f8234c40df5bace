"""Observation-history students: the last k student observations, stacked, into an MLP.

Layout of the stacked input (what the exported ONNX's `obs` [1, k·dim] holds), per field and oldest
first, as unitree_rl_lab's deploy code stacks a term with `history_length`: the observation's fields
(its named slices, e.g. `ball`, `goal`) are taken in order, and each field contributes its k most
recent values, oldest first. A field of `d` dims at [a, b) of one observation occupies
[k·a, k·b) of the input. At an episode's first step every slot holds that first observation
(IsaacLab's history buffer does the same on reset), so the input never mixes two episodes.

Why one stacked input and not a buffer inside the graph: the graph stays a plain Gemm/Elu/Tanh MLP,
which TensorRT 8.5 runs in fp32, fp16 and int8 alike and which the existing precision variants handle
unchanged; the robot-side code keeps the buffer (a few lines of numpy, `run_policy.py`), exactly as
a unitree_rl_lab controller does. A buffer input would need the caller to feed an output back anyway.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from distill.errors import DistillError
from distill.students.mlp import MLPStudent


@dataclass(frozen=True)
class HistoryLayout:
    """Where each (step, dim) of a k-step observation window lands in the stacked input."""

    length: int
    """k: observations stacked (1 = no history)."""
    fields: tuple[int, ...]
    """Sizes of the observation's fields, in order (they tile one observation)."""

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 1:
            raise DistillError(f"history length {self.length!r}: expected a positive integer")
        if not self.fields or any(int(f) < 1 for f in self.fields):
            raise DistillError(f"history fields {self.fields!r}: expected positive sizes")
        object.__setattr__(self, "fields", tuple(int(f) for f in self.fields))

    @classmethod
    def single(cls, length: int, step_dim: int) -> HistoryLayout:
        """One field covering the whole observation (the layout is then simply oldest step first)."""
        return cls(length, (step_dim,))

    @property
    def step_dim(self) -> int:
        return sum(self.fields)

    @property
    def input_dim(self) -> int:
        return self.length * self.step_dim

    @cached_property
    def index(self) -> tuple[np.ndarray, np.ndarray]:
        """(step, dim) of the window for each input position; step 0 is the oldest."""
        steps, dims = [], []
        start = 0
        for size in self.fields:
            for j in range(self.length):
                steps += [j] * size
                dims += list(range(start, start + size))
            start += size
        return np.asarray(steps, np.int64), np.asarray(dims, np.int64)

    def field_slices(self) -> tuple[tuple[int, int], ...]:
        """[start, stop) of each field's k values in the stacked input."""
        out, start = [], 0
        for size in self.fields:
            out.append((self.length * start, self.length * (start + size)))
            start += size
        return tuple(out)

    def stack(self, window: Any) -> Any:
        """window [..., k, step_dim] (oldest first; numpy, torch or jax) -> input [..., k * step_dim]."""
        steps, dims = self.index
        return window[..., steps, dims]

    def tile(self, per_step: np.ndarray) -> np.ndarray:
        """A per-step vector (a normaliser's mean or std) at every input position."""
        return np.asarray(per_step)[self.index[1]]

    def windows(self, episode_obs: np.ndarray) -> np.ndarray:
        """Every step's window of one episode's observations [T, step_dim] -> [T, k, step_dim], the
        slots before the first step filled with it."""
        t = np.arange(episode_obs.shape[0])[:, None] + np.arange(1 - self.length, 1)[None, :]
        return episode_obs[np.maximum(t, 0)]

    def stack_sequence(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The stacked input at every step of observations [T, step_dim] of one env, an episode
        starting wherever `starts` is true (and at row 0) -> [T, input_dim]."""
        starts = np.asarray(starts, bool).copy()
        if len(starts):
            starts[0] = True
        bounds = [*np.flatnonzero(starts), len(obs)]
        parts = [self.windows(obs[a:b]) for a, b in itertools.pairwise(bounds)]
        return self.stack(np.concatenate(parts)) if parts else np.zeros((0, self.input_dim), np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.length, "history_fields": list(self.fields)}


def _per_input(layout: HistoryLayout, value: np.ndarray | None) -> np.ndarray | None:
    """A per-step normaliser vector tiled over the window; one already per input passes through."""
    if value is None or np.size(value) != layout.step_dim:
        return value
    return layout.tile(np.asarray(value, np.float32).reshape(-1))


class HistoryMLPStudent(MLPStudent):
    """stacked obs[B, k * step_dim] (raw, laid out by `layout`) -> action[B, action_dim] in [-1, 1]:
    an MLP whose normaliser is the per-step one tiled over the window."""

    family = "history"

    def __init__(
        self,
        step_dim: int,
        action_dim: int,
        depth: int,
        width: int,
        history: int,
        history_fields: tuple[int, ...] | list[int] | None = None,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        log_std_head: bool = False,
    ) -> None:
        layout = HistoryLayout(history, tuple(history_fields) if history_fields else (step_dim,))
        if layout.step_dim != step_dim:
            raise DistillError(f"history fields {list(layout.fields)} add up to {layout.step_dim} dims, the "
                               f"observation has {step_dim}")
        super().__init__(layout.input_dim, action_dim, depth, width, _per_input(layout, obs_mean),
                         _per_input(layout, obs_std), log_std_head)
        self.layout = layout
        self.step_dim = step_dim

    def set_step_normalizer(self, obs_mean: np.ndarray, obs_std: np.ndarray) -> None:
        """The normaliser from per-step moments, tiled over the window."""
        self.set_normalizer(self.layout.tile(obs_mean), self.layout.tile(obs_std))

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.pop("input_dim")
        return {"family": self.family, "step_dim": self.step_dim, **cfg, **self.layout.to_dict()}
