"""The student's input normaliser: per-dimension mean and std of the training observations.

In memory (`fit_normalizer`) or one block at a time (`Moments`): each block's count, mean and sum
of squared deviations are computed in float64 and merged pairwise (Chan, Golub & LeVeque), which
is as accurate as the two-pass in-memory formula and lets DDP ranks merge their shards' moments
into one normaliser that every rank shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce

import numpy as np

from distill.errors import DistillError
from distill.students.mlp import STD_FLOOR

PIECES_PER_BLOCK = 4
"""A block's float64 work is done in quarters, so its float64 copy (8 bytes per value) takes half
the bytes of the float32 block it came from."""


def check_rows(name: str, value: object, cols: int | None) -> np.ndarray:
    """A non-empty, finite float32 [N, cols] array, or a one-line error naming `name`."""
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or (cols is not None and arr.shape[1] != cols):
        want = f"[N, {cols}]" if cols is not None else "[N, D]"
        raise DistillError(f"{name} has shape {arr.shape}; expected a non-empty {want} array")
    if not np.all(np.isfinite(arr)):
        raise DistillError(f"{name} contains NaN or inf; drop those rows before fitting")
    return arr


def _floored(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return mean.astype(np.float32), np.maximum(std, STD_FLOOR).astype(np.float32)


def fit_normalizer(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the rows (std floored like the student floors it)."""
    arr = check_rows("obs", obs, None).astype(np.float64)
    return _floored(arr.mean(axis=0), arr.std(axis=0))


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (float64) of some rows, per dimension."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> Moments:
        return cls(0, np.zeros(dim), np.zeros(dim))

    @classmethod
    def of(cls, rows: np.ndarray) -> Moments:
        """Moments of a float array [N, D], computed a piece at a time (see PIECES_PER_BLOCK)."""
        rows = np.asarray(rows)
        if rows.ndim != 2:
            raise DistillError(f"moments need rows [N, D], got shape {rows.shape}")
        piece = max(1, -(-rows.shape[0] // PIECES_PER_BLOCK))
        out = cls.empty(rows.shape[1])
        for i in range(0, rows.shape[0], piece):
            x = rows[i : i + piece].astype(np.float64)
            mean = x.mean(axis=0)
            x -= mean
            np.square(x, out=x)
            out = out.merge(cls(x.shape[0], mean, x.sum(axis=0)))
        return out

    def merge(self, other: Moments) -> Moments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return Moments(n, mean, m2)

    def normalizer(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) as float32, std floored as `fit_normalizer` floors it."""
        if self.count == 0:
            raise DistillError("no training rows to fit the normaliser on")
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.m2))):
            raise DistillError("the training observations contain NaN or inf; check the dataset "
                               "with `distill dataset validate`")
        return _floored(self.mean, np.sqrt(self.m2 / self.count))


def merge_moments(parts: Iterable[Moments]) -> Moments:
    """Merges in the order given, so every rank that merges the same list gets the same bits."""
    parts = list(parts)
    if not parts:
        raise DistillError("no moments to merge")
    return reduce(Moments.merge, parts)
