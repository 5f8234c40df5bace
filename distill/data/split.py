"""Which episodes are held out for validation: a fixed hash of the episode id.

The split is a property of the rows alone (not of a seed, a rank or the order rows were read in),
so every DDP rank, every rerun and every DAgger round agrees on it, and an episode never
straddles training and validation.
"""

from __future__ import annotations

import numpy as np

from distill.errors import DistillError

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
SCRATCH_BYTES_PER_ROW = 26
"""What `validation_mask` and its negation allocate per row (two uint64 arrays, two bool masks)."""


def episode_hash(episode: np.ndarray) -> np.ndarray:
    """splitmix64 of each id (uint64, uniform over [0, 2**64)); in-place steps keep temporaries to two arrays."""
    x = np.asarray(episode).astype(np.uint64)
    x += _GAMMA
    t = np.right_shift(x, np.uint64(30))
    x ^= t
    x *= _MIX1
    np.right_shift(x, np.uint64(27), out=t)
    x ^= t
    x *= _MIX2
    np.right_shift(x, np.uint64(31), out=t)
    x ^= t
    return x


def check_fraction(fraction: float) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise DistillError(f"val_fraction = {fraction!r}; expected a number in [0, 1)")
    return float(fraction)


def validation_mask(episode: np.ndarray, fraction: float) -> np.ndarray:
    """True for rows whose episode falls in the held-out `fraction` of episode ids."""
    fraction = check_fraction(fraction)
    if fraction == 0.0:
        return np.zeros(np.shape(episode), bool)
    return episode_hash(episode) < np.uint64(int(fraction * 2.0**64))


def training_mask(episode: np.ndarray, fraction: float) -> np.ndarray:
    """The complement of `validation_mask`."""
    return ~validation_mask(episode, fraction)
