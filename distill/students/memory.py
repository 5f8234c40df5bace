"""What a student carries from one control step to the next, described once for every runtime.

`Recurrence.of(student)` is a small hashable record (family, observation width, history layout,
GRU shape): the JAX mirror, the host-side ONNX stepper and the robot-side runner read the same
facts from it (or from the ONNX metadata written from it). The reset rule is the same everywhere:
at an episode's first step a history buffer is filled with that first observation and a GRU state
is zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from distill.errors import DistillError
from distill.students.gru import GRUStudent
from distill.students.history import HistoryLayout, HistoryMLPStudent
from distill.students.mlp import ACTIVATION, MLPStudent

Student = MLPStudent | GRUStudent
"""Any student module (a HistoryMLPStudent is an MLPStudent over the stacked window)."""

_CLASSES: dict[str, type] = {"mlp": MLPStudent, "history": HistoryMLPStudent, "gru": GRUStudent}


def student_class(family: str) -> type:
    if family not in _CLASSES:
        raise DistillError(f"student family {family!r}: this distill builds {', '.join(_CLASSES)}")
    return _CLASSES[family]


@dataclass(frozen=True)
class Recurrence:
    """The state a student carries between steps, as static facts."""

    family: str
    step_dim: int
    """Width of one observation (what the env gives per step)."""
    action_dim: int
    history: HistoryLayout | None = None
    layers: int = 0
    hidden: int = 0

    @classmethod
    def of(cls, student: Student) -> Recurrence:
        if isinstance(student, GRUStudent):
            return cls("gru", student.input_dim, student.action_dim, None, student.layers, student.hidden)
        if isinstance(student, HistoryMLPStudent):
            return cls("history", student.step_dim, student.action_dim, student.layout)
        return cls("mlp", student.input_dim, student.action_dim)

    @property
    def stateful(self) -> bool:
        return self.family != "mlp"

    @property
    def state_shape(self) -> tuple[int, ...]:
        """One env's carried state: the GRU's [layers, 1, hidden]; a history buffer [k, step_dim]."""
        if self.family == "gru":
            return (self.layers, 1, self.hidden)
        if self.family == "history":
            return (self.history.length, self.step_dim)
        return ()


@torch.no_grad()
def act_sequence(student: Student, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The student's actions [T, A] for one env stepping through observations [T, step_dim], a new
    episode beginning wherever `starts` is true (and at row 0): the reference every other runtime
    (JAX mirror, ONNX Runtime, the robot's runner) is compared with."""
    obs = np.asarray(obs, np.float32)
    starts = np.asarray(starts, bool).copy()
    if starts.shape != (obs.shape[0],):
        raise DistillError(f"starts has shape {starts.shape}; expected ({obs.shape[0]},) to match the observations")
    if obs.shape[0] == 0:
        return np.zeros((0, student.action_dim), np.float32)
    starts[0] = True
    if isinstance(student, GRUStudent):
        return student.act_sequence_numpy(obs, starts)
    if isinstance(student, HistoryMLPStudent):
        return student.act_numpy(student.layout.stack_sequence(obs, starts))
    return student.act_numpy(obs)


def build_student(
    preset: Any,
    input_dim: int,
    action_dim: int,
    obs_mean: np.ndarray | None = None,
    obs_std: np.ndarray | None = None,
    seed: int = 0,
    log_std_head: bool = False,
    fields: tuple[int, ...] | None = None,
) -> nn.Module:
    """A freshly initialised student of a preset's shape and family; the seed fixes the initial
    weights without touching the global torch RNG. `input_dim` is one observation's width (a history
    student stacks `preset.history` of them, laid out by the observation's `fields` sizes; default one
    field); `obs_mean`/`obs_std` are per observation dim."""
    if preset.activation != ACTIVATION:
        raise DistillError(f"preset {preset.name!r} asks for activation {preset.activation!r}; only {ACTIVATION!r} is built")
    family = getattr(preset, "family", "mlp")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "history":
            return HistoryMLPStudent(input_dim, action_dim, preset.depth, preset.width, preset.history,
                                     fields or (input_dim,), obs_mean, obs_std, log_std_head)
        if family == "gru":
            return GRUStudent(input_dim, action_dim, preset.hidden, preset.layers, preset.depth, preset.width,
                              obs_mean, obs_std, log_std_head)
        return MLPStudent(input_dim, action_dim, preset.depth, preset.width, obs_mean, obs_std, log_std_head)
