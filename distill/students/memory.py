"""What a student carries from one control step to the next, described once for every runtime.

`Recurrence.of(student)` is a small hashable record (family, observation width, history layout,
GRU shape): the JAX mirror, the host-side ONNX stepper and the robot-side runner read the same
facts from it (or from the ONNX metadata written from it). The reset rule is the same everywhere:
at an episode's first step a history buffer is filled with that first observation and a GRU state
is zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distill.errors import DistillError
from distill.students.gru import GRUStudent
from distill.students.history import HistoryLayout, HistoryMLPStudent
from distill.students.mlp import MLPStudent

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
