"""A DAgger round's fresh fit for a student of any family: MLPs on shuffled rows (`fit`), students
with memory on whole episodes (`sequence_fit`). Beside both, so neither imports the other's caller."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from distill.students.distributed import SINGLE, DistContext
from distill.students.fit import FitResult, fit_mlp_round
from distill.students.memory import Student
from distill.students.presets import StudentPreset, StudentTrainConfig
from distill.students.sequence_fit import fit_memory_round


def fit_round(
    dataset: str | os.PathLike, preset: StudentPreset, train_cfg: StudentTrainConfig, input_dim: int,
    action_dim: int, seed: int, log_dir: str | Path | None, rounds: Iterable[int] | None = None, *,
    progress: bool = True, threads: int | None = 1, dist: DistContext = SINGLE, fields: tuple[int, ...] | None = None,
) -> tuple[Student, FitResult]:
    """A fresh student of `preset` fitted on the dataset (the training split streamed under the
    memory cap, the normaliser fitted on it); `fields` are the observation's field sizes a history
    student stacks by."""
    fit = fit_mlp_round if preset.family == "mlp" else fit_memory_round
    return fit(dataset, preset, train_cfg, input_dim, action_dim, seed, log_dir, rounds,
               progress=progress, threads=threads, dist=dist, fields=fields)
