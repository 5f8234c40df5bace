"""Where a fit's rows come from: in-memory arrays, or a rollout dataset streamed from HDF5.

Both give the fit loop the same things: the row counts of the training and validation splits, the
moments of the training observations (for the normaliser), an epoch of shuffled training batches,
and evaluation passes over either split. The validation split is by episode
(`distill.data.split`), so no episode straddles the two; arrays without episode ids have none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from distill.data.split import training_mask, validation_mask
from distill.data.stream import RowStream
from distill.errors import DistillError
from distill.students.loss_names import LOSS_COLUMNS, check_loss
from distill.students.normalizer import Moments, check_rows

EVAL_CHUNK = 65_536
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Batch:
    """Rows for one step: raw observations, label columns by name, optional row weights."""

    obs: torch.Tensor
    labels: dict[str, torch.Tensor]
    weight: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]

    def to(self, device: torch.device) -> Batch:
        move = lambda t: t.to(device, non_blocking=True)
        weight = None if self.weight is None else move(self.weight)
        return Batch(move(self.obs), {k: move(v) for k, v in self.labels.items()}, weight)


def _from_columns(columns: dict[str, np.ndarray], labels: Iterable[str]) -> Batch:
    return Batch(torch.from_numpy(columns["obs"]), {n: torch.from_numpy(columns[n]) for n in labels})


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DistillError(f"split {split!r}: use one of {', '.join(SPLITS)}")


class ArraySource:
    """Rows held in memory. Pass `teacher_action` for the mse loss, `teacher_mean` and
    `teacher_log_std` for kl; `episode` enables the validation split; `weights` weight rows."""

    world_size = 1

    def __init__(
        self,
        obs: np.ndarray,
        teacher_action: np.ndarray | None = None,
        *,
        teacher_mean: np.ndarray | None = None,
        teacher_log_std: np.ndarray | None = None,
        episode: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        val_fraction: float = 0.0,
    ) -> None:
        self.obs = check_rows("obs", obs, None)
        given = {"teacher_action": teacher_action, "teacher_mean": teacher_mean, "teacher_log_std": teacher_log_std}
        self.labels = {name: check_rows(name, v, None) for name, v in given.items() if v is not None}
        if not self.labels:
            raise DistillError("no labels: pass teacher_action (mse), or teacher_mean and teacher_log_std (kl)")
        n = self.obs.shape[0]
        for name, arr in self.labels.items():
            if arr.shape[0] != n:
                raise DistillError(f"obs has {n} rows but {name} has {arr.shape[0]}; they must match")
        dims = {arr.shape[1] for arr in self.labels.values()}
        if len(dims) != 1:
            raise DistillError(f"label columns have different widths {sorted(dims)}; all are action_dim wide")
        held_out = np.zeros(n, bool) if episode is None else validation_mask(self._episode(episode, n), val_fraction)
        self._index = {"train": np.flatnonzero(~held_out), "val": np.flatnonzero(held_out)}
        if not len(self._index["train"]):
            raise DistillError(f"no training rows: all episodes fell in the validation split (val_fraction "
                               f"{val_fraction}); lower val_fraction")
        self._weights = None if weights is None else self._split_weights(weights, n)

    @staticmethod
    def _episode(episode: np.ndarray, n: int) -> np.ndarray:
        ids = np.asarray(episode)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise DistillError(f"episode must be {n} integer ids, got {ids.dtype} of shape {ids.shape}")
        return ids

    def _split_weights(self, weights: np.ndarray, n: int) -> dict[str, np.ndarray]:
        """Row weights scaled to mean 1 within each split, so a weighted loss keeps the MSE's scale."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise DistillError(f"weights must be {n} finite non-negative numbers with a positive sum "
                               f"(got shape {w.shape})")
        out = {}
        for split, idx in self._index.items():
            part, total = w[idx], w[idx].sum()
            out[split] = (part * len(idx) / total if total > 0 else part).astype(np.float32)
        return out

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(self.labels)

    @property
    def input_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        return next(iter(self.labels.values())).shape[1]

    @property
    def rows(self) -> int:
        return len(self._index["train"])

    @property
    def val_rows(self) -> int:
        return len(self._index["val"])

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-self.rows // batch_size)

    def moments(self) -> Moments:
        return Moments.of(self.obs[self._index["train"]])

    def _batch(self, split: str, positions: np.ndarray) -> Batch:
        rows = self._index[split][positions]
        weight = None if self._weights is None else torch.from_numpy(self._weights[split][positions])
        return Batch(
            torch.from_numpy(self.obs[rows]), {n: torch.from_numpy(a[rows]) for n, a in self.labels.items()}, weight
        )

    def train_batches(self, epoch: int, seed: int, batch_size: int) -> Iterator[Batch]:
        order = np.random.default_rng([seed, epoch]).permutation(self.rows)
        for i in range(0, self.rows, batch_size):
            yield self._batch("train", order[i : i + batch_size])

    def eval_batches(self, split: str) -> Iterator[Batch]:
        _check_split(split)
        n = len(self._index[split])
        for i in range(0, n, EVAL_CHUNK):
            yield self._batch(split, np.arange(i, min(i + EVAL_CHUNK, n)))


class HDF5Source:
    """The committed rows of a rollout dataset, streamed (see `distill.data.stream`): this rank's
    shard for training and evaluation, the training split's row counts for every rank."""

    def __init__(
        self,
        path: str | os.PathLike,
        loss: str,
        batch_size: int,
        *,
        val_fraction: float = 0.0,
        max_memory_mb: float = 1024.0,
        rounds: Iterable[int] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.loss = check_loss(loss)
        if batch_size % world_size:
            raise DistillError(f"batch_size {batch_size} is not divisible by the {world_size} ranks; "
                               "each rank takes batch_size / world_size rows per step")
        self.batch_size, self.world_size = batch_size, world_size
        self.label_columns = LOSS_COLUMNS[loss]
        rounds = None if rounds is None else tuple(rounds)
        common = {"batch_size": batch_size // world_size, "max_memory_mb": max_memory_mb, "rounds": rounds,
                      "rank": rank, "world_size": world_size}
        columns = ("obs", *self.label_columns)
        keep = partial(training_mask, fraction=val_fraction) if val_fraction > 0 else None
        self.train = RowStream(path, columns, row_filter=keep, **common)
        self.val = (RowStream(path, columns, row_filter=partial(validation_mask, fraction=val_fraction), **common)
                    if val_fraction > 0 else None)
        self.path, self.meta = self.train.path, self.train.meta
        if self.train.total_rows == 0:
            raise DistillError(f"{self.path}: no training rows (none committed in the chosen rounds, or every "
                               f"episode fell in the validation split at val_fraction {val_fraction}); "
                               "add rounds or lower val_fraction")

    @property
    def input_dim(self) -> int:
        return self.train.info["obs"].row_shape[0]

    @property
    def action_dim(self) -> int:
        return self.meta.action_dim

    @property
    def rows(self) -> int:
        return self.train.total_rows

    @property
    def val_rows(self) -> int:
        return 0 if self.val is None else self.val.total_rows

    def steps_per_epoch(self, batch_size: int) -> int:
        """With one rank, every row once (the last batch may be short). With several, the same
        number of full batches on every rank (DDP steps in lockstep): the smallest shard's."""
        self._check_batch(batch_size)
        if self.world_size == 1:
            return -(-self.rows // batch_size)
        per_rank = batch_size // self.world_size
        shards = [self.train.rank_rows(r) for r in range(self.world_size)]
        if min(shards) < per_rank:
            raise DistillError(f"{self.path}: a rank's shard holds {min(shards)} training rows, fewer than its "
                               f"batch of {per_rank}; use fewer ranks or a smaller batch_size")
        return min(shards) // per_rank

    def _check_batch(self, batch_size: int) -> None:
        if batch_size != self.batch_size:
            raise DistillError(f"this source was planned for batches of {self.batch_size} rows, not {batch_size}")

    def moments(self) -> Moments:
        """Moments of this rank's training observations (merge the ranks' for the normaliser)."""
        out = Moments.empty(self.input_dim)
        for block in self.train.blocks():
            out = out.merge(Moments.of(block["obs"]))
        return out

    def train_batches(self, epoch: int, seed: int, batch_size: int) -> Iterator[Batch]:
        many = self.world_size > 1
        steps = self.steps_per_epoch(batch_size) if many else None
        for columns in self.train.batches(epoch, seed, steps=steps, drop_last=many):
            yield _from_columns(columns, self.label_columns)

    def eval_batches(self, split: str) -> Iterator[Batch]:
        _check_split(split)
        stream = self.train if split == "train" else self.val
        for columns in () if stream is None else stream.blocks():
            yield _from_columns(columns, self.label_columns)


Source = ArraySource | HDF5Source
