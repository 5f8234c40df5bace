"""Reads the committed rows of a rollout dataset, as numpy arrays or torch batches.

A reader takes a snapshot of the commit marker when it is built: rows below it never change
(appends only add rows), so the reader's view stays consistent while a writer goes on appending.
Build a new reader to see later rounds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from distill.data.schema import DatasetMeta, check_column_names, open_file, read_commit, read_meta
from distill.errors import DistillError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import TensorDataset

TRAIN_COLUMNS = ("obs", "teacher_action")


class RolloutReader:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with open_file(self.path, "r") as f:
            self.meta: DatasetMeta = read_meta(f, self.path)
            self.committed_rows, spans = read_commit(f, self.path)
        starts = [0] + [end for _, end in spans[:-1]]
        self._spans = {r: (start, end) for (r, end), start in zip(spans, starts)}

    @property
    def committed_rounds(self) -> list[int]:
        """Committed round indices in the order they were appended."""
        return list(self._spans)

    def __len__(self) -> int:
        return self.committed_rows

    def round_rows(self, round_index: int) -> slice:
        """The committed rows a round occupies."""
        if round_index not in self._spans:
            raise DistillError(
                f"{self.path}: round {round_index} is not committed; "
                f"committed rounds: {self.committed_rounds}"
            )
        return slice(*self._spans[round_index])

    def read(
        self, columns: Iterable[str] | None = None, rounds: Iterable[int] | None = None
    ) -> dict[str, np.ndarray]:
        """Committed rows of the given columns (default all), of the given rounds (default all)."""
        names = check_column_names(columns, self.path, self.meta.dims)
        slices = (
            [slice(0, self.committed_rows)]
            if rounds is None
            else [self.round_rows(r) for r in rounds]
        )
        with open_file(self.path, "r") as f:
            out = {}
            for name in names:
                ds = f[name]
                parts = [ds[s] for s in slices]
                out[name] = (
                    np.concatenate(parts) if parts else np.empty((0, *ds.shape[1:]), ds.dtype)
                )
            return out

    def torch_dataset(
        self, columns: Iterable[str] = TRAIN_COLUMNS, rounds: Iterable[int] | None = None
    ) -> TensorDataset:
        """An in-memory `TensorDataset` whose items are tuples in `columns` order."""
        import torch
        from torch.utils.data import TensorDataset

        names = check_column_names(columns, self.path, self.meta.dims)
        data = self.read(names, rounds)
        return TensorDataset(*(torch.from_numpy(data[n]) for n in names))

    def iter_batches(
        self,
        batch_size: int,
        columns: Iterable[str] = TRAIN_COLUMNS,
        shuffle: bool = True,
        seed: int = 0,
        rounds: Iterable[int] | None = None,
        drop_last: bool = False,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """One epoch of batches: every committed row exactly once (the last batch may be short)."""
        import torch

        if batch_size < 1:
            raise DistillError(f"{self.path}: batch_size must be at least 1, got {batch_size}")
        names = check_column_names(columns, self.path, self.meta.dims)
        tensors = {n: torch.from_numpy(a) for n, a in self.read(names, rounds).items()}
        n = len(next(iter(tensors.values())))
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for i in range(0, stop, batch_size):
            idx = torch.from_numpy(order[i : i + batch_size])
            yield {name: t[idx] for name, t in tensors.items()}
