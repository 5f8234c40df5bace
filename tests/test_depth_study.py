"""benchmarks/depth_study.py: which runs form the study, and the per-depth rows it reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "depth_study", Path(__file__).resolve().parent.parent / "benchmarks" / "depth_study.py")
depth_study = importlib.util.module_from_spec(_spec)
sys.modules["depth_study"] = depth_study  # dataclasses look their module up there
_spec.loader.exec_module(depth_study)


def test_study_names_take_depth_and_seed():
    names = ["point_medium_maze_4", "point_medium_maze_4_seed1", "point_medium_maze_32", "point_u_maze_32",
             "point_medium_maze_x", "point_medium_maze_16_seed2_old"]
    assert depth_study.study_names(names, "point_medium_maze") == {
        "point_medium_maze_4": (4, 0), "point_medium_maze_4_seed1": (4, 1), "point_medium_maze_32": (32, 0)}


def _curve(name, depth, seed, final):
    steps = np.arange(1, len(final) + 1) * 1000.0
    return depth_study.Curve(name, depth, seed, steps, np.asarray(final, float), np.asarray(final, float) * 100,
                             steps / 10)


def test_rows_compare_seeds_at_the_fewest_env_steps_reached():
    curves = [_curve("a", 4, 0, [0.1, 0.5, 0.9, 0.95]), _curve("b", 4, 1, [0.2, 0.85, 0.7]),
              _curve("c", 32, 0, [0.0, 0.3])]
    rows = depth_study.summarise(curves)
    assert [r.depth for r in rows] == [4, 32]
    four = rows[0]
    assert four.seeds == 2 and four.env_steps == 3000  # seed 1 stopped at 3,000 steps
    assert four.final_success == pytest.approx((0.9 + 0.7) / 2)
    assert (four.final_success_min, four.final_success_max) == (0.7, 0.9)
    assert four.steps_to_target == [3000, 2000] and rows[1].steps_to_target == [None]
    assert four.hours == pytest.approx(300 / 3600)
    md = depth_study.markdown("m", rows, curves)
    assert "| 4 | 2 | 3,000 | 0.800 (0.700-0.900)" in md and "not yet" in md
