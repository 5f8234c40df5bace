"""Bounded fits for DAgger rounds: a fixed number of gradient steps whatever the aggregate.

A fresh fit on every row so far costs O(rows) per round and O(rounds²) per run; at the humanoid's
dataset sizes that, not the teacher, becomes the bill. `fit_bounded` instead continues a student
(the previous round's, or a fresh one for round 0) for `steps` gradient steps on batches that mix
the newest round's training rows (`new_fraction` of each batch) with a sample of the older rounds'.
Its rows are read once, and never more than the steps can draw or the memory cap holds: the newest
round's rows, a shuffled sample of at most `steps × (1 − new_fraction) × batch_size` older rows,
and the newest round's validation rows with as many older ones. So its cost is set by the steps,
the batch and the rows of one round, not by the aggregate.

The validation loss is measured `CHECKPOINTS` times along the way and the best weights are kept,
as in `fit.fit_student`; the checkpoints are the fit log's "epochs". Deterministic under a seed.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from distill.data.split import training_mask, validation_mask
from distill.data.stream import RowStream
from distill.errors import DistillError
from distill.students.fit import FitResult
from distill.students.fit_log import EpochRecord, FitLog
from distill.students.losses import LOSS_COLUMNS, TrainForward, batch_loss, per_row_loss
from distill.students.memory import build_student
from distill.students.mlp import MLPStudent
from distill.students.normalizer import fit_normalizer
from distill.students.presets import StudentPreset, StudentTrainConfig
from distill.students.sources import Batch
from distill.students.threads import torch_threads

CHECKPOINTS = 5
"""Validation passes per fit (the best weights among them are kept)."""
EVAL_CHUNK = 65_536


@dataclass(frozen=True)
class Rows:
    """Rows held in memory as tensors: the observation and the loss's label columns."""

    obs: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return self.obs.shape[0]

    def take(self, index: torch.Tensor) -> Batch:
        return Batch(self.obs[index], {k: v[index] for k, v in self.labels.items()})

    @staticmethod
    def join(*parts: Rows) -> Rows:
        parts = tuple(p for p in parts if len(p))
        return Rows(torch.cat([p.obs for p in parts]),
                    {k: torch.cat([p.labels[k] for p in parts]) for k in parts[0].labels}) if parts else None


def _read_rows(path: str | os.PathLike, columns: tuple[str, ...], rounds: list[int], keep, limit: int,
               seed: int, batch_size: int, max_memory_mb: float) -> Rows:
    """Up to `limit` committed rows of `rounds` passing `keep` (all of them when there are no more,
    else a shuffled sample of whole blocks' rows), read once."""
    if not rounds or limit <= 0:
        return Rows(torch.empty(0), {})
    stream = RowStream(path, columns, batch_size=batch_size, max_memory_mb=max_memory_mb, rounds=rounds,
                       row_filter=keep)
    parts, got = [], 0
    source = stream.blocks() if stream.total_rows <= limit else stream.batches(epoch=0, seed=seed)
    for block in source:
        parts.append({k: np.array(v[: limit - got]) for k, v in block.items()})
        got += len(parts[-1]["obs"])
        if got >= limit:
            break
    if not parts:
        return Rows(torch.empty(0), {})
    cat = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in columns}
    return Rows(cat.pop("obs"), cat)


@dataclass(frozen=True)
class BoundedData:
    new: Rows
    old: Rows
    val: Rows | None


def load_bounded(path: str | os.PathLike, cfg: StudentTrainConfig, round_index: int, steps: int,
                 new_fraction: float, seed: int) -> BoundedData:
    """The rows one bounded fit of round `round_index` reads (see the module docstring); the memory
    cap is split between the newest round's rows, the older sample and the validation sample."""
    columns = ("obs", *LOSS_COLUMNS[cfg.loss])
    row_bytes = RowStream(path, columns, batch_size=1, max_memory_mb=cfg.max_memory_mb,
                          rounds=[round_index]).plan.row_bytes
    cap = max(cfg.batch_size, int(cfg.max_memory_mb * 2**20 / 4 / max(row_bytes, 1)))
    f = cfg.val_fraction
    train = partial(training_mask, fraction=f) if f > 0 else None
    val = partial(validation_mask, fraction=f)
    read = partial(_read_rows, path, columns, batch_size=cfg.batch_size, max_memory_mb=cfg.max_memory_mb / 4)
    older = list(range(round_index))
    old_draws = steps * (cfg.batch_size - _new_rows_per_batch(cfg.batch_size, new_fraction, bool(older)))
    new = read([round_index], train, cap, seed)
    if not len(new):
        raise DistillError(f"{path}: round {round_index} has no training rows (every episode fell in the "
                           f"validation split at val_fraction {f}); lower val_fraction")
    old = read(older, train, min(cap, old_draws), seed + 1)
    val_rows = None
    if f > 0:  # the newest round's validation episodes, and as many older validation rows
        val_new = read([round_index], val, cap // 2, seed + 2)
        val_rows = Rows.join(val_new, read(older, val, min(cap // 2, max(len(val_new), cfg.batch_size)), seed + 3))
    return BoundedData(new, old, val_rows)


def _new_rows_per_batch(batch_size: int, new_fraction: float, has_old: bool) -> int:
    return batch_size if not has_old else min(batch_size, max(1, round(batch_size * new_fraction)))


class _Draws:
    """Indices into `n` rows, `k` at a time, from successive seeded permutations (every row once
    per pass)."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng, self.order, self.at = n, rng, np.empty(0, np.int64), 0

    def take(self, k: int) -> torch.Tensor:
        out = []
        while k > 0:
            if self.at >= len(self.order):
                self.order, self.at = self.rng.permutation(self.n), 0
            part = self.order[self.at : self.at + k]
            self.at += len(part)
            k -= len(part)
            out.append(part)
        return torch.from_numpy(np.concatenate(out))


@torch.no_grad()
def _mean_loss(model: TrainForward, rows: Rows | None, loss: str) -> float | None:
    if rows is None or not len(rows):
        return None
    model.eval()
    total = 0.0
    for i in range(0, len(rows), EVAL_CHUNK):
        b = rows.take(torch.arange(i, min(i + EVAL_CHUNK, len(rows))))
        total += float(per_row_loss(loss, model(b.obs), b).sum())
    return total / len(rows)


def fit_bounded(student: MLPStudent, data: BoundedData, cfg: StudentTrainConfig, steps: int, new_fraction: float,
                seed: int, log_dir: str | Path | None = None, threads: int | None = 1) -> FitResult:
    """Trains `student` in place for `steps` Adam steps (a fresh optimiser, the train config's lr
    and weight decay) on batches of `batch_size` rows: `new_fraction` of them from `data.new`, the
    rest from `data.old` (all from `data.new` when there are no older rows). The normaliser is not
    touched (`fit_round_bounded` refits it). The weights with the best validation loss among the checkpoints are kept."""
    if steps < 1:
        raise DistillError(f"a bounded fit needs at least 1 step, got {steps}")
    if not 0.0 < new_fraction <= 1.0:
        raise DistillError(f"new_fraction = {new_fraction}; expected a number in (0, 1]")
    with torch_threads(threads):
        return _fit(student, data, cfg, steps, new_fraction, seed, log_dir)


def _fit(student, data: BoundedData, cfg, steps, new_fraction, seed, log_dir) -> FitResult:
    start = time.perf_counter()
    has_old = len(data.old) > 0
    n_new = _new_rows_per_batch(cfg.batch_size, new_fraction, has_old)
    rng = np.random.default_rng([seed, 7])
    new_draws, old_draws = _Draws(len(data.new), rng), _Draws(len(data.old), rng)
    train_rows = Rows.join(data.new, data.old)
    model = TrainForward(student, cfg.loss)
    loss_start, val_start = _mean_loss(model, train_rows, cfg.loss), _mean_loss(model, data.val, cfg.loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    log = FitLog(log_dir, cfg.loss) if log_dir is not None else None
    every = max(1, math.ceil(steps / CHECKPOINTS))
    best_loss, best_epoch, best_state = math.inf, 0, None
    history, running, count, train_seconds = [], 0.0, 0, 0.0
    try:
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            model.train()
            batch = data.new.take(new_draws.take(n_new))
            if n_new < cfg.batch_size:
                old = data.old.take(old_draws.take(cfg.batch_size - n_new))
                batch = Batch(torch.cat([batch.obs, old.obs]),
                              {k: torch.cat([batch.labels[k], old.labels[k]]) for k in batch.labels})
            value = batch_loss(cfg.loss, model(batch.obs), batch)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            running, count = running + value.item(), count + 1
            train_seconds += time.perf_counter() - t0
            if not math.isfinite(running):
                raise DistillError(f"the {cfg.loss} loss became {value.item()} at step {step}; lower lr "
                                   "or check the labels with `distill dataset validate`")
            if step % every == 0 or step == steps:
                val_loss = _mean_loss(model, data.val, cfg.loss)
                record = EpochRecord(len(history) + 1, step, running / count, val_loss, time.perf_counter() - start)
                history.append(record)
                running, count = 0.0, 0
                if log is not None:
                    log.write(record)
                score = val_loss if val_loss is not None else -step  # without validation: the last
                if score < best_loss:
                    best_loss, best_epoch = score, record.epoch
                    best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
    finally:
        if log is not None:
            log.close()
    student.load_state_dict(best_state)
    student.eval()
    val_rows = 0 if data.val is None else len(data.val)
    return FitResult(
        loss=cfg.loss, loss_start=loss_start, loss_final=_mean_loss(model, train_rows, cfg.loss),
        val_loss_start=val_start, val_loss_final=best_loss if val_rows else None, best_epoch=best_epoch,
        epochs=len(history), steps=steps, samples=steps * cfg.batch_size, rows=len(train_rows), val_rows=val_rows,
        batch_size=cfg.batch_size, seed=seed, seconds=time.perf_counter() - start, train_seconds=train_seconds,
        stopped_early=False, history=tuple(history), world_size=1,
        log_dir=None if log is None else str(log.directory), tensorboard=log is not None and log.writes_tensorboard,
    )


def fit_round_bounded(
    dataset: str | os.PathLike, student: MLPStudent | None, preset: StudentPreset, cfg: StudentTrainConfig,
    input_dim: int, action_dim: int, round_index: int, steps: int, new_fraction: float, seed: int,
    log_dir: str | Path | None = None,
) -> tuple[MLPStudent, FitResult]:
    """A DAgger round's bounded fit: `student` (a copy of it; None: a fresh student of `preset`)
    continued for `steps` steps. Its normaliser is refitted on the fit's training rows (the new
    round's and the older sample), as a fresh fit refits it on every row: a normaliser kept from
    round 0 can hold a near-zero std where the teacher's states barely varied (one goal
    coordinate over two episodes), and the states the student visits later then reach its
    network scaled a hundredfold, saturate its tanh, and stall the fit (measured on the point maze)."""
    data = load_bounded(dataset, cfg, round_index, steps, new_fraction, seed)
    if data.new.obs.shape[1] != input_dim:
        raise DistillError(f"{dataset}: obs has {data.new.obs.shape[1]} dims, expected {input_dim}; "
                           "is it this env's dataset?")
    mean, std = fit_normalizer(Rows.join(data.new, data.old).obs.numpy())
    if student is None:
        student = build_student(preset, input_dim, action_dim, mean, std, seed=seed, log_std_head=cfg.loss == "kl")
    else:
        student = copy.deepcopy(student).cpu()
        student.set_normalizer(mean, std)
    result = fit_bounded(student, data, cfg, steps, new_fraction, seed, log_dir)
    return student, result
