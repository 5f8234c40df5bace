"""Fitting data for students with memory, cut from whole episodes of a rollout dataset.

Both sources stream episodes (`distill.data.episodes.EpisodeStream`) under the train config's memory
cap, split train / validation by episode (`distill.data.split`) and shard whole episodes over DDP
ranks.

- `HistorySource` gives the row batches `distill.students.fit` trains any MLP on: each row's input
  is its episode's last k observations stacked as the student's `HistoryLayout` lays them out (the
  slots before the episode's first step hold that first observation, as at run time).
- `SequenceSource` gives a GRU windows of consecutive steps: episodes shuffled into groups of
  `sequences` episodes, each group padded to its longest episode (a mask marks real steps) and cut
  into windows of `bptt` steps; the fit carries the hidden state from one window of a group to the
  next and zeroes it at a group's first window, which is every episode's first step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from distill.data.episodes import EpisodeStream
from distill.data.split import training_mask, validation_mask
from distill.errors import DistillError
from distill.students.history import HistoryLayout
from distill.students.losses import LOSS_COLUMNS, check_loss
from distill.students.normalizer import Moments
from distill.students.sources import EVAL_CHUNK, Batch

LIVE_BATCHES = 3


def _streams(path, columns, val_fraction, max_memory_mb, rounds, rank, world_size, row_bytes, batch_bytes):
    common = {"max_memory_mb": max_memory_mb, "rounds": None if rounds is None else tuple(rounds), "rank": rank,
              "world_size": world_size, "consumer_row_bytes": row_bytes, "consumer_bytes": batch_bytes}
    keep = partial(training_mask, fraction=val_fraction) if val_fraction > 0 else None
    train = EpisodeStream(path, columns, episode_filter=keep, **common)
    val = (EpisodeStream(path, columns, episode_filter=partial(validation_mask, fraction=val_fraction), **common)
           if val_fraction > 0 else None)
    if train.total_rows == 0:
        raise DistillError(f"{train.path}: no training rows (none committed in the chosen rounds, or every episode "
                           f"fell in the validation split at val_fraction {val_fraction}); add rounds or lower "
                           "val_fraction")
    return train, val


def _moments(stream: EpisodeStream, dim: int) -> Moments:
    out = Moments.empty(dim)
    for _, columns in stream.iterate():
        out = out.merge(Moments.of(columns["obs"]))
    return out


class HistorySource:
    """Rows of stacked observation windows with their labels: a `distill.students.fit` source."""

    def __init__(
        self, path: str | os.PathLike, loss: str, batch_size: int, layout: HistoryLayout, *,
        val_fraction: float = 0.0, max_memory_mb: float = 1024.0, rounds: Iterable[int] | None = None,
        rank: int = 0, world_size: int = 1,
    ) -> None:
        self.loss = check_loss(loss)
        if batch_size % world_size:
            raise DistillError(f"batch_size {batch_size} is not divisible by the {world_size} ranks; "
                               "each rank takes batch_size / world_size rows per step")
        self.batch_size, self.world_size, self.layout = batch_size, world_size, layout
        self.label_columns = LOSS_COLUMNS[loss]
        self.eval_rows = max(1, EVAL_CHUNK // (4 * layout.length))  # stacked windows: k rows each, and copies
        per_rank = max(batch_size // world_size, self.eval_rows)
        window = layout.length * (8 + 2 * 4 * layout.step_dim)  # indices, gathered window, stacked input
        self.train, self.val = _streams(path, ("obs", *self.label_columns), val_fraction, max_memory_mb, rounds, rank,
                                        world_size, 24, LIVE_BATCHES * per_rank * window)
        self.path, self.meta = self.train.path, self.train.meta
        dim = self.train.info["obs"].row_shape[0]
        if dim != layout.step_dim:
            raise DistillError(f"{self.path}: obs has {dim} dims, the history layout {dim} expects {layout.step_dim}")

    @property
    def input_dim(self) -> int:
        return self.layout.input_dim

    @property
    def action_dim(self) -> int:
        return self.meta.action_dim

    @property
    def rows(self) -> int:
        return self.train.total_rows

    @property
    def val_rows(self) -> int:
        return 0 if self.val is None else self.val.total_rows

    def moments(self) -> Moments:
        """Moments of this rank's training observations, per step (tile them over the window)."""
        return _moments(self.train, self.layout.step_dim)

    def _per_rank_batch(self, batch_size: int) -> int:
        if batch_size != self.batch_size:
            raise DistillError(f"this source was planned for batches of {self.batch_size} rows, not {batch_size}")
        return batch_size // self.world_size

    def steps_per_epoch(self, batch_size: int) -> int:
        """One rank: every row once (a chunk's last batch may be short). Several: the same number of
        full batches on every rank, the smallest shard's."""
        per_rank = self._per_rank_batch(batch_size)
        if self.world_size == 1:
            return sum(-(-self.train.chunks[c].rows // per_rank) for c in self.train.rank_chunks(0))
        steps = [sum(self.train.chunks[c].rows // per_rank for c in self.train.rank_chunks(r))
                 for r in range(self.world_size)]
        if min(steps) < 1:
            raise DistillError(f"{self.path}: a rank's shard holds fewer training rows than its batch of {per_rank}; "
                               "use fewer ranks or a smaller batch_size")
        return min(steps)

    def _batch(self, columns: dict[str, np.ndarray], ep_start: np.ndarray, t: np.ndarray, idx: np.ndarray) -> Batch:
        offsets = np.arange(1 - self.layout.length, 1)
        window = ep_start[idx, None] + np.maximum(t[idx, None] + offsets[None, :], 0)
        stacked = self.layout.stack(columns["obs"][window])
        return Batch(torch.from_numpy(np.ascontiguousarray(stacked)),
                     {n: torch.from_numpy(columns[n][idx]) for n in self.label_columns})

    @staticmethod
    def _positions(chunk) -> tuple[np.ndarray, np.ndarray]:
        ep_start = np.repeat(chunk.starts, chunk.lengths)
        return ep_start, np.arange(chunk.rows) - ep_start

    def train_batches(self, epoch: int, seed: int, batch_size: int) -> Iterator[Batch]:
        per_rank = self._per_rank_batch(batch_size)
        many = self.world_size > 1
        steps = self.steps_per_epoch(batch_size) if many else None
        rng = np.random.default_rng([seed, epoch, self.train.rank, 1])
        done = 0
        for chunk, columns in self.train.iterate(self.train.chunk_order(epoch, seed)):
            ep_start, t = self._positions(chunk)
            order = rng.permutation(chunk.rows)
            stop = chunk.rows - chunk.rows % per_rank if many else chunk.rows
            for i in range(0, stop, per_rank):
                if steps is not None and done >= steps:
                    return
                yield self._batch(columns, ep_start, t, order[i : i + per_rank])
                done += 1

    def eval_batches(self, split: str) -> Iterator[Batch]:
        stream = self.train if split == "train" else self.val
        for chunk, columns in () if stream is None else stream.iterate():
            ep_start, t = self._positions(chunk)
            for i in range(0, chunk.rows, self.eval_rows):
                yield self._batch(columns, ep_start, t, np.arange(i, min(i + self.eval_rows, chunk.rows)))


@dataclass(frozen=True)
class Window:
    """Consecutive steps of a group of episodes: obs [S, W, D], labels [S, W, A], mask [S, W] (real
    steps); `first` marks a group's first window, where every episode starts."""

    obs: torch.Tensor
    labels: dict[str, torch.Tensor]
    mask: torch.Tensor
    first: bool

    @property
    def rows(self) -> int:
        return int(self.mask.sum())

    def to(self, device: torch.device) -> Window:
        move = lambda t: t.to(device, non_blocking=True)
        return Window(move(self.obs), {k: move(v) for k, v in self.labels.items()}, move(self.mask), self.first)


class SequenceSource:
    """Windows of whole episodes for truncated back-propagation through time."""

    def __init__(
        self, path: str | os.PathLike, loss: str, bptt: int, sequences: int, *, val_fraction: float = 0.0,
        max_memory_mb: float = 1024.0, rounds: Iterable[int] | None = None, rank: int = 0, world_size: int = 1,
    ) -> None:
        self.loss = check_loss(loss)
        if bptt < 1 or sequences < 1:
            raise DistillError(f"bptt {bptt} and sequences {sequences} must both be >= 1")
        self.bptt, self.sequences, self.world_size = bptt, sequences, world_size
        self.label_columns = LOSS_COLUMNS[loss]
        columns = ("obs", *self.label_columns)
        # padded groups alive at once (the torch windows are views of them): each longest episode x
        # sequences rows, plus the gather indices and mask
        group = lambda longest, row_bytes: LIVE_BATCHES * sequences * max(longest, 1) * (row_bytes + 9)
        self.train, self.val = _streams(path, columns, val_fraction, max_memory_mb, rounds, rank, world_size, 8, group)
        self.path, self.meta = self.train.path, self.train.meta

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

    def moments(self) -> Moments:
        return _moments(self.train, self.input_dim)

    def _groups(self, chunk, rng: np.random.Generator | None) -> list[np.ndarray]:
        order = np.arange(len(chunk.episodes)) if rng is None else rng.permutation(len(chunk.episodes))
        return [order[i : i + self.sequences] for i in range(0, len(order), self.sequences)]

    def _windows_in(self, lengths: np.ndarray, bptt: int) -> int:
        return -(-int(lengths.max()) // bptt)

    def steps_per_epoch(self) -> int:
        """Windows per epoch; with several ranks the smallest shard's (DDP steps in lockstep).
        Counted as if groups were cut in chunk order: shuffling changes which episodes share a
        group, and so a group's longest episode, only when episode lengths differ."""
        def rank_steps(rank: int) -> int:
            total = 0
            for c in self.train.rank_chunks(rank):
                lengths = self.train.chunks[c].lengths
                total += sum(self._windows_in(lengths[g], self.bptt) for g in
                             (np.arange(i, min(i + self.sequences, len(lengths)))
                              for i in range(0, len(lengths), self.sequences)))
            return total

        steps = [rank_steps(r) for r in range(self.world_size)]
        if min(steps) < 1:
            raise DistillError(f"{self.path}: a rank's shard holds no training episode; use fewer ranks")
        return min(steps)

    def _group(self, chunk, columns: dict[str, np.ndarray], members: np.ndarray):
        starts, lengths = chunk.starts[members], chunk.lengths[members]
        longest = int(lengths.max())
        t = np.arange(longest)
        mask = t[None, :] < lengths[:, None]
        rows = np.where(mask, starts[:, None] + t[None, :], starts[:, None])
        pick = lambda name: np.where(mask.reshape(*mask.shape, 1), columns[name][rows], 0).astype(np.float32)
        return pick("obs"), {n: pick(n) for n in self.label_columns}, mask

    def _cut(self, obs, labels, mask, bptt: int) -> Iterator[Window]:
        for w, i in enumerate(range(0, obs.shape[1], bptt)):
            yield Window(torch.from_numpy(obs[:, i : i + bptt]),
                         {n: torch.from_numpy(a[:, i : i + bptt]) for n, a in labels.items()},
                         torch.from_numpy(mask[:, i : i + bptt]), w == 0)

    def train_windows(self, epoch: int, seed: int) -> Iterator[Window]:
        steps = self.steps_per_epoch() if self.world_size > 1 else None
        rng = np.random.default_rng([seed, epoch, self.train.rank, 2])
        done = 0
        for chunk, columns in self.train.iterate(self.train.chunk_order(epoch, seed)):
            for members in self._groups(chunk, rng):
                for window in self._cut(*self._group(chunk, columns, members), self.bptt):
                    if steps is not None and done >= steps:
                        return
                    yield window
                    done += 1

    def eval_groups(self, split: str) -> Iterator[Window]:
        """Whole episodes, `sequences` at a time, each one window long (evaluation runs them at once)."""
        stream = self.train if split == "train" else self.val
        for chunk, columns in () if stream is None else stream.iterate():
            for members in self._groups(chunk, None):
                obs, labels, mask = self._group(chunk, columns, members)
                yield from self._cut(obs, labels, mask, obs.shape[1])
