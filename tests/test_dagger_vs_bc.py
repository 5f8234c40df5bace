"""benchmarks/dagger_vs_bc.py: labels to 95% of the teacher, and its bootstrap interval over seeds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location(
    "dagger_vs_bc", Path(__file__).resolve().parent.parent / "benchmarks" / "dagger_vs_bc.py")
dagger_vs_bc = importlib.util.module_from_spec(_spec)
sys.modules["dagger_vs_bc"] = dagger_vs_bc  # dataclasses look their module up there
_spec.loader.exec_module(dagger_vs_bc)

KEY = ("reacher", "mlp_1x32", "dagger")
LABELS = (800, 1600, 2400, 3200)


def _points(curves: list[list[float]], teacher: float = 40.0) -> list:
    return [dagger_vs_bc.Point(*KEY, seed, k, n, t, 0.0, 0.0, 0.0, teacher, 1.0, 50)
            for seed, curve in enumerate(curves) for k, (n, t) in enumerate(zip(LABELS, curve, strict=True))]


def test_every_seed_alike_gives_a_point_interval():
    points = _points([[10, 20, 39, 40]] * 5)  # 95% of 40 is 38: reached at 2,400 labels by every seed
    assert dagger_vs_bc.labels_to_95(points, KEY) == 2400
    assert dagger_vs_bc.labels_to_95_interval(points, KEY) == (2400.0, 2400.0)


def test_spread_seeds_widen_the_interval_and_never_is_infinite():
    fast, slow, never = [38, 39, 40, 40], [10, 20, 30, 39], [10, 10, 10, 10]
    points = _points([fast, fast, slow, slow, never])
    # the mean never reaches 38 (33.6 at 3,200); resampled, it does by 2,400 labels when at most one draw
    # is `slow` and none `never` (P = 0.061; at 800 only if all are `fast`, P = 0.010), and never
    # whenever a draw is `never` (P = 0.67)
    assert dagger_vs_bc.labels_to_95(points, KEY) is None
    low, high = dagger_vs_bc.labels_to_95_interval(points, KEY)
    assert low == 2400.0 and high == np.inf
    assert dagger_vs_bc.labels_to_95_interval(points, KEY, seed=1) == (low, high)  # as wide with other draws
    assert "never" == dagger_vs_bc._labels(high) and "2,400" == dagger_vs_bc._labels(2400.0)
