"""Fitting students with memory on a rollout dataset: what `fit.fit_mlp_round` does for a preset of the
history or gru family.

- history: an MLP over stacked windows (`sequences.HistorySource`), trained by the same loop as
  every MLP (`fit.fit_student`); the normaliser is fitted per observation dim and tiled.
- gru: truncated back-propagation through time over windows of `bptt` steps
  (`sequences.SequenceSource`): the hidden state starts at zeros at every episode's first step, flows
  from one window to the next of the same episodes, and is detached between windows, so each
  gradient step sees at most `bptt` steps of history while the forward pass sees the whole episode
  so far (rsl_rl's recurrent distillation does the same with its `gradient_length`). Losses are
  the same per-step losses as for MLPs (`losses`), averaged over real (unpadded) steps. Validation,
  early stopping on it, best weights kept, logs and DDP (windows in lockstep on every rank) as in `fit`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from distill.errors import DistillError
from distill.progress import progress_bar
from distill.students.distributed import SINGLE, DistContext
from distill.students.fit import FitResult, _BestWeights, fit_student
from distill.students.fit_log import EpochRecord, FitLog
from distill.students.gru import GRUStudent
from distill.students.history import HistoryLayout
from distill.students.losses import per_row_loss
from distill.students.memory import Student, build_student
from distill.students.normalizer import merge_moments
from distill.students.presets import StudentPreset, StudentTrainConfig
from distill.students.sequences import HistorySource, SequenceSource, Window
from distill.students.sources import Batch
from distill.students.threads import torch_threads


class SequenceForward(nn.Module):
    """A window through the GRU student, as one module DDP can wrap: pre-tanh means (and log stds
    for kl) [S, W, A] and the state after the window."""

    def __init__(self, student: GRUStudent, loss: str) -> None:
        super().__init__()
        if loss == "kl" and not student.has_log_std_head:
            raise DistillError("loss 'kl' needs a student with a log-std head (build_student(..., log_std_head=True))")
        self.student, self.with_log_std = student, loss == "kl"

    def forward(self, obs: torch.Tensor, h: torch.Tensor):
        if self.with_log_std:
            mean, log_std, h_out = self.student.sequence_distribution(obs, h)
            return (mean, log_std), h_out
        pre, h_out = self.student.sequence(obs, h)
        return (pre,), h_out


def _window_loss(loss: str, outputs: tuple[torch.Tensor, ...], window: Window) -> torch.Tensor:
    """Per real step losses of a window, flattened [rows]."""
    mask = window.mask
    flat = tuple(o[mask] for o in outputs)
    return per_row_loss(loss, flat, Batch(window.obs[mask], {k: v[mask] for k, v in window.labels.items()}))


@torch.no_grad()
def _evaluate(student: GRUStudent, source: SequenceSource, loss: str, dist: DistContext, split: str) -> float | None:
    if (source.rows if split == "train" else source.val_rows) == 0:
        return None
    was_training = student.training
    student.eval()
    forward, device = SequenceForward(student, loss), student.obs_mean.device
    total, rows = 0.0, 0
    for window in source.eval_groups(split):
        w = window.to(device)
        outputs, _ = forward(w.obs, student.initial_state(w.obs.shape[0]))
        total += float(_window_loss(loss, outputs, w).sum())
        rows += w.rows
    student.train(was_training)
    total, rows = dist.sum([total, rows])
    return total / rows


def _train_epoch(model, student: GRUStudent, optimizer, source: SequenceSource, epoch: int, seed: int, loss: str,
                 device: torch.device, dist: DistContext) -> tuple[float, int, int]:
    model.train()
    total, rows, steps = 0.0, 0, 0
    h = None
    for window in source.train_windows(epoch, seed):
        w = window.to(device)
        if w.first or h is None or h.shape[1] != w.obs.shape[0]:
            h = student.initial_state(w.obs.shape[0])
        outputs, h = model(w.obs, h.detach())
        per_row = _window_loss(loss, outputs, w)
        value = per_row.mean()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        total += float(per_row.detach().sum())
        rows += w.rows
        steps += 1
    total, all_rows = dist.sum([total, rows])
    return total / max(all_rows, 1), steps, int(all_rows)


def fit_sequences(
    student: GRUStudent, source: SequenceSource, cfg: StudentTrainConfig, seed: int = 0, *,
    progress: bool = True, threads: int | None = 1, log_dir: str | Path | None = None, dist: DistContext = SINGLE,
) -> FitResult:
    """Trains a GRU student in place by truncated BPTT (see the module docstring)."""
    if (source.input_dim, source.action_dim) != (student.input_dim, student.action_dim):
        raise DistillError(f"the data has obs [N, {source.input_dim}] and actions [N, {source.action_dim}], the "
                           f"student reads {student.input_dim} and acts in {student.action_dim}")
    if source.world_size != dist.world_size:
        raise DistillError(f"the data source is sharded for {source.world_size} rank(s) but {dist.world_size} run")
    with torch_threads(threads):
        return _fit(student, source, cfg, seed, dist, progress, log_dir)


def _fit(student, source, cfg, seed, dist, progress, log_dir) -> FitResult:
    if dist.backend is not None:
        student.to(dist.device)
    device = student.obs_mean.device
    start = time.perf_counter()
    loss_start, val_start = (_evaluate(student, source, cfg.loss, dist, s) for s in ("train", "val"))
    unused_head = cfg.loss == "mse" and student.has_log_std_head
    model = dist.wrap(SequenceForward(student, cfg.loss), find_unused_parameters=unused_head)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    max_epochs = max(cfg.epochs, -(-cfg.min_steps // source.steps_per_epoch()))
    best, history = _BestWeights(), []
    steps = samples = 0
    train_seconds, stopped = 0.0, False
    log = FitLog(log_dir, cfg.loss) if log_dir is not None and dist.is_main else None
    bar = progress_bar(range(1, max_epochs + 1), "fit student (BPTT)", enabled=progress and dist.is_main,
                       unit="epoch", leave=False)
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            train_loss, n_steps, n_rows = _train_epoch(model, student, optimizer, source, epoch, seed, cfg.loss,
                                                       device, dist)
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
        val_rows=source.val_rows, batch_size=source.sequences * source.bptt * dist.world_size, seed=seed,
        seconds=time.perf_counter() - start, train_seconds=train_seconds, stopped_early=stopped,
        history=tuple(history), world_size=dist.world_size, log_dir=None if log is None else str(log.directory),
        tensorboard=log is not None and log.writes_tensorboard,
    )


def sequences_per_batch(cfg: StudentTrainConfig, world_size: int = 1) -> int:
    """Episodes per gradient step of a GRU fit on each rank: about `batch_size` rows per step over all
    ranks, as for MLPs."""
    return max(1, cfg.batch_size // cfg.bptt // world_size)


def fit_memory_round(
    dataset: str | os.PathLike, preset: StudentPreset, train_cfg: StudentTrainConfig, input_dim: int,
    action_dim: int, seed: int, log_dir: str | Path | None, rounds: Iterable[int] | None = None, *,
    progress: bool = True, threads: int | None = 1, dist: DistContext = SINGLE, fields: tuple[int, ...] | None = None,
) -> tuple[Student, FitResult]:
    """`fit.fit_mlp_round` for the history and gru families: a fresh student fitted on the dataset's
    episodes (streamed), its normaliser fitted on the training split's observations first."""
    common = {"val_fraction": train_cfg.val_fraction, "max_memory_mb": train_cfg.max_memory_mb, "rounds": rounds,
              "rank": dist.rank, "world_size": dist.world_size}
    if preset.family == "history":
        layout = HistoryLayout(preset.history, fields or (input_dim,))
        source = HistorySource(dataset, train_cfg.loss, train_cfg.batch_size, layout, **common)
    elif preset.family == "gru":
        source = SequenceSource(dataset, train_cfg.loss, train_cfg.bptt,
                                sequences_per_batch(train_cfg, dist.world_size), **common)
    else:
        raise DistillError(f"preset {preset.name!r} is of family {preset.family!r}, which carries no memory")
    dim = source.layout.step_dim if preset.family == "history" else source.input_dim
    if (dim, source.action_dim) != (input_dim, action_dim):
        raise DistillError(f"{source.path}: obs has {dim} dims and actions {source.action_dim}, "
                           f"expected {input_dim} and {action_dim}; is it this env's dataset?")
    mean, std = merge_moments(dist.gather(source.moments())).normalizer()
    student = build_student(preset, input_dim, action_dim, mean, std, seed=seed, log_std_head=train_cfg.loss == "kl",
                            fields=fields)
    if preset.family == "history":
        result = fit_student(student, source, cfg=train_cfg, seed=seed, progress=progress, threads=threads,
                             log_dir=log_dir, dist=dist)
    else:
        result = fit_sequences(student, source, train_cfg, seed, progress=progress, threads=threads, log_dir=log_dir,
                               dist=dist)
    return student.cpu(), result
