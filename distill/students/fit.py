"""Supervised fitting of a student to a teacher: minibatches, Adam, a loss from `losses`, a
validation split by episode, early stopping that keeps the best weights, per-epoch logs; in one
process or data-parallel under torchrun (`distributed`).

Deterministic under a seed: the only randomness is the order of the rows, drawn from numpy
Generators seeded with (seed, epoch[, rank]), so two fits from the same initial weights give the
same weights.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distill.errors import DistillError
from distill.progress import progress_bar
from distill.students.distributed import SINGLE, DistContext
from distill.students.fit_log import EpochRecord, FitLog
from distill.students.losses import LOSS_COLUMNS, TrainForward, batch_loss, per_row_loss
from distill.students.memory import build_student
from distill.students.mlp import MLPStudent
from distill.students.normalizer import fit_normalizer, merge_moments
from distill.students.presets import StudentPreset, StudentTrainConfig
from distill.students.sources import ArraySource, Batch, HDF5Source, Source
from distill.students.threads import torch_threads

__all__ = ["FitResult", "evaluate_loss", "fit_mlp_round", "fit_normalizer", "fit_student"]


@dataclass(frozen=True)
class FitResult:
    """What one fit did. Losses are means over rows of the configured loss (`loss`)."""

    loss: str
    loss_start: float
    """Training-split loss before the first step."""
    loss_final: float
    """Training-split loss of the weights returned (the best on validation, if there is one)."""
    val_loss_start: float | None
    val_loss_final: float | None
    """Validation loss of the weights returned; None without a validation split."""
    best_epoch: int
    """1-based epoch whose weights are returned."""
    epochs: int
    """Epochs run."""
    steps: int
    samples: int
    """Rows that went through gradient steps, over all ranks and epochs."""
    rows: int
    val_rows: int
    batch_size: int
    """Rows per step over all ranks."""
    seed: int
    seconds: float
    train_seconds: float
    """Time inside training epochs (no evaluation passes, no setup)."""
    stopped_early: bool
    history: tuple[EpochRecord, ...]
    world_size: int = 1
    log_dir: str | None = None
    tensorboard: bool = False
    """Whether TensorBoard event files were written beside the CSV."""

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else float("nan")


def as_source(
    data: Source | np.ndarray | str | os.PathLike,
    target_action: np.ndarray | None,
    weights: np.ndarray | None,
    cfg: StudentTrainConfig,
    dist: DistContext,
    rounds: Iterable[int] | None = None,
) -> Source:
    """A data source from what `fit_student` was given (see there)."""
    if isinstance(data, (ArraySource, HDF5Source)) or hasattr(data, "train_batches"):
        if target_action is not None or weights is not None:
            raise DistillError("pass labels and weights inside the data source, not beside it")
        return data
    if isinstance(data, (str, os.PathLike)):
        return HDF5Source(
            data, cfg.loss, cfg.batch_size, val_fraction=cfg.val_fraction, max_memory_mb=cfg.max_memory_mb,
            rounds=rounds, rank=dist.rank, world_size=dist.world_size,
        )
    if target_action is None:
        raise DistillError("in-memory fitting needs target_action beside obs (or pass an ArraySource)")
    return ArraySource(data, target_action, weights=weights)


def fit_student(
    student: MLPStudent,
    data: Source | np.ndarray | str | os.PathLike,
    target_action: np.ndarray | None = None,
    cfg: StudentTrainConfig | None = None,
    seed: int = 0,
    weights: np.ndarray | None = None,
    progress: bool = True,
    threads: int | None = 1,
    log_dir: str | Path | None = None,
    dist: DistContext = SINGLE,
    rounds: Iterable[int] | None = None,
) -> FitResult:
    """Trains `student` in place for cfg.epochs (more if needed to reach cfg.min_steps, fewer if
    the validation loss stops improving for cfg.patience epochs) and returns what happened.

    `data` is an `ArraySource` / `HDF5Source`; a rollout dataset's path (streamed with the
    config's loss, val_fraction and max_memory_mb; `rounds` picks rounds); or, as before, an obs
    array with `target_action` and optional row `weights` (no episode ids: no validation split).
    The normaliser is not touched: fit it first (`fit_normalizer`, or `fit_round` does it all).
    `log_dir` gets `fit.csv` (and TensorBoard events). `threads` sets torch's CPU threads for the
    fit (1 by default: students are small, and on a shared machine one thread is many times faster
    than contended ones); None leaves it alone.
    """
    cfg = cfg or StudentTrainConfig()
    source = as_source(data, target_action, weights, cfg, dist, rounds)
    with torch_threads(threads):
        return _fit(student, source, cfg, seed, dist, progress, log_dir)


def _check(student: MLPStudent, source: Source, cfg: StudentTrainConfig, dist: DistContext) -> None:
    if (source.input_dim, source.action_dim) != (student.input_dim, student.action_dim):
        raise DistillError(
            f"the data has obs [N, {source.input_dim}] and actions [N, {source.action_dim}], the student reads "
            f"[N, {student.input_dim}] and acts in [N, {student.action_dim}]; build the student for this data"
        )
    missing = [c for c in LOSS_COLUMNS[cfg.loss] if c not in source.label_columns]
    if missing:
        raise DistillError(f"loss {cfg.loss!r} needs {', '.join(missing)}, which the data source does not hold")
    if source.world_size != dist.world_size:
        raise DistillError(f"the data source is sharded for {source.world_size} rank(s) but {dist.world_size} run")


@torch.no_grad()
def _evaluate(student: MLPStudent, source: Source, loss: str, dist: DistContext, split: str) -> float | None:
    """Mean (weighted) loss over a split's rows on all ranks; None for an empty split."""
    if (source.rows if split == "train" else source.val_rows) == 0:
        return None
    was_training = student.training
    student.eval()
    forward, device = TrainForward(student, loss), student.obs_mean.device
    total, rows = 0.0, 0
    for batch in source.eval_batches(split):
        b = batch.to(device)
        per_row = per_row_loss(loss, forward(b.obs), b)
        total += float((per_row if b.weight is None else per_row * b.weight).sum())
        rows += len(b)
    student.train(was_training)
    total, rows = dist.sum([total, rows])
    return total / rows


def evaluate_loss(
    student: MLPStudent, obs: np.ndarray, target_action: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """The (weighted) MSE of the student's actions over all rows."""
    return _evaluate(student, ArraySource(obs, target_action, weights=weights), "mse", SINGLE, "train")


def _train_epoch(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[Batch], loss: str,
    device: torch.device, dist: DistContext,
) -> tuple[float, int, int]:
    """(mean loss of the epoch's batches over all ranks, steps, rows over all ranks)."""
    model.train()
    total, rows, steps = 0.0, 0, 0
    for batch in batches:
        b = batch.to(device)
        value = batch_loss(loss, model(b.obs), b)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        total += value.item() * len(b)
        rows += len(b)
        steps += 1
    total, all_rows = dist.sum([total, rows])
    return total / max(all_rows, 1), steps, int(all_rows)


class _BestWeights:
    """The weights with the lowest validation loss so far; without validation, the last ones."""

    def __init__(self) -> None:
        self.epoch, self.loss, self._state = 0, math.inf, None

    def update(self, epoch: int, val_loss: float | None, student: MLPStudent) -> None:
        if val_loss is None:
            self.epoch = epoch
        elif val_loss < self.loss:
            self.epoch, self.loss = epoch, val_loss
            self._state = {k: v.detach().clone() for k, v in student.state_dict().items()}

    def restore(self, student: MLPStudent) -> None:
        if self._state is not None:
            student.load_state_dict(self._state)


def _fit(
    student: MLPStudent, source: Source, cfg: StudentTrainConfig, seed: int, dist: DistContext,
    progress: bool, log_dir: str | Path | None,
) -> FitResult:
    _check(student, source, cfg, dist)
    if dist.backend is not None:
        student.to(dist.device)
    device = student.obs_mean.device
    start = time.perf_counter()
    loss_start, val_start = (_evaluate(student, source, cfg.loss, dist, s) for s in ("train", "val"))
    unused_head = cfg.loss == "mse" and student.has_log_std_head
    model = dist.wrap(TrainForward(student, cfg.loss), find_unused_parameters=unused_head)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    max_epochs = max(cfg.epochs, -(-cfg.min_steps // source.steps_per_epoch(cfg.batch_size)))
    best, history = _BestWeights(), []
    steps = samples = 0
    train_seconds, stopped = 0.0, False
    log = FitLog(log_dir, cfg.loss) if log_dir is not None and dist.is_main else None
    bar = progress_bar(range(1, max_epochs + 1), "fit student", enabled=progress and dist.is_main,
                       unit="epoch", leave=False)
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            train_loss, n_steps, n_rows = _train_epoch(
                model, optimizer, source.train_batches(epoch, seed, cfg.batch_size), cfg.loss, device, dist)
            train_seconds += time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise DistillError(f"the {cfg.loss} loss became {train_loss} in epoch {epoch}; lower lr "
                                   "or check the labels with `distill dataset validate`")
            steps, samples = steps + n_steps, samples + n_rows
            val_loss = _evaluate(student, source, cfg.loss, dist, "val")
            record = EpochRecord(epoch, steps, train_loss, val_loss, time.perf_counter() - start)
            history.append(record)
            if log is not None:
                log.write(record)
            best.update(epoch, val_loss, student)
            bar.set_postfix(loss=f"{train_loss:.4g}", val="-" if val_loss is None else f"{val_loss:.4g}")
            if (cfg.patience and val_loss is not None and epoch - best.epoch >= cfg.patience
                    and steps >= cfg.min_steps):
                stopped = True
                break
    finally:
        if log is not None:
            log.close()
    best.restore(student)
    student.eval()
    return FitResult(
        loss=cfg.loss, loss_start=loss_start, loss_final=_evaluate(student, source, cfg.loss, dist, "train"),
        val_loss_start=val_start, val_loss_final=None if source.val_rows == 0 else best.loss,
        best_epoch=best.epoch, epochs=len(history), steps=steps, samples=samples, rows=source.rows,
        val_rows=source.val_rows, batch_size=cfg.batch_size, seed=seed, seconds=time.perf_counter() - start,
        train_seconds=train_seconds, stopped_early=stopped, history=tuple(history), world_size=dist.world_size,
        log_dir=None if log is None else str(log.directory), tensorboard=log is not None and log.writes_tensorboard,
    )


def fit_mlp_round(
    dataset: str | os.PathLike,
    preset: StudentPreset,
    train_cfg: StudentTrainConfig,
    input_dim: int,
    action_dim: int,
    seed: int,
    log_dir: str | Path | None,
    rounds: Iterable[int] | None = None,
    *,
    progress: bool = True,
    threads: int | None = 1,
    dist: DistContext = SINGLE,
    fields: tuple[int, ...] | None = None,
) -> tuple[MLPStudent, FitResult]:
    """A fresh student fitted on a rollout dataset (what a DAgger round does): the training split
    is streamed, the normaliser is fitted on it (moments merged over ranks, so all ranks share it),
    a student of `preset` is built from `seed` (with the log-std head if the loss is kl) and fitted.
    The student comes back on the CPU in eval mode. MLP presets only (`round_fit.fit_round` picks
    by family); `fields` is accepted for the same signature."""
    del fields
    if preset.family != "mlp":
        raise DistillError(f"preset {preset.name!r} is a {preset.family} student: fit it with "
                           "distill.students.round_fit.fit_round (whole episodes)")
    source = HDF5Source(
        dataset, train_cfg.loss, train_cfg.batch_size, val_fraction=train_cfg.val_fraction,
        max_memory_mb=train_cfg.max_memory_mb, rounds=rounds, rank=dist.rank, world_size=dist.world_size,
    )
    if (source.input_dim, source.action_dim) != (input_dim, action_dim):
        raise DistillError(f"{source.path}: obs has {source.input_dim} dims and actions {source.action_dim}, "
                           f"expected {input_dim} and {action_dim}; is it this env's dataset?")
    mean, std = merge_moments(dist.gather(source.moments())).normalizer()
    student = build_student(preset, input_dim, action_dim, mean, std, seed=seed,
                            log_std_head=train_cfg.loss == "kl")
    result = fit_student(student, source, cfg=train_cfg, seed=seed, progress=progress, threads=threads,
                         log_dir=log_dir, dist=dist)
    return student.cpu(), result
