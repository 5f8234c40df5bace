"""benchmarks/go2_trial.py: the curve and baseline it reads, success by goal distance, the bar to ship."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "go2_trial", Path(__file__).resolve().parent.parent / "benchmarks" / "go2_trial.py")
go2_trial = importlib.util.module_from_spec(_spec)
sys.modules["go2_trial"] = go2_trial  # dataclasses look their module up there
_spec.loader.exec_module(go2_trial)

HEADER = ("iteration,env_steps,sgd_steps,wall_s,success,time_at_goal,final_success,final_distance,actor_loss,"
          "critic_loss,critic_accuracy,entropy,alpha,reach_mean,reach_p95,goal_radius,ring_success\n")


def _files(tmp_path: Path, rows: list[str]) -> tuple[Path, Path]:
    curve = tmp_path / "curve.csv"
    curve.write_text(HEADER + "".join(r + "\n" for r in rows))
    base = tmp_path / "random_baseline.csv"
    base.write_text("goals,episodes,episode_length,success,time_at_goal,final_success,final_distance,reach_mean,"
                    "reach_p95\ncurve,128,500,0.01,0.1,0.0,2.2,0.24,0.33\nfinal,128,500,0.02,0.1,0.0,2.2,0.25,0.35\n")
    return curve, base


def test_summary_reads_the_latest_row_the_best_row_and_the_curve_baseline(tmp_path):
    curve, base = _files(tmp_path, [
        "20,128000,2720,110,0.0,0,0.0,2.2,1,1,0.1,7,0.03,0.07,0.10,0.8,0.11",
        "40,256000,5920,220,0.62,30,0.4,1.1,1,1,0.1,7,0.03,0.9,1.6,1.4,0.55",
        "60,384000,9120,360,0.45,20,0.3,1.3,1,1,0.1,7,0.03,0.8,1.5,1.6,0.40"])
    s = go2_trial.summarise("g", go2_trial.read_curve(curve), go2_trial.read_baseline(base))
    assert s.env_steps == 384000 and s.hours == pytest.approx(0.1)
    assert (s.last_success, s.best_success, s.best_success_env_steps) == (0.45, 0.62, 256000)
    assert (s.goal_radius, s.ring_success) == (1.6, 0.40)
    assert (s.random_success, s.random_reach_mean) == (0.01, 0.24)  # the curve's goals, not the final ones
    assert not s.ships  # the latest row decides, not the best
    assert "does not clear the bar" in go2_trial.markdown(s, [])


def test_a_run_without_a_curriculum_has_no_radius(tmp_path):
    curve, base = _files(tmp_path, ["20,128000,2720,110,0.7,0,0.5,0.6,1,1,0.1,7,0.03,1.2,2.5,,"])
    s = go2_trial.summarise("g", go2_trial.read_curve(curve), go2_trial.read_baseline(base))
    assert s.goal_radius is None and s.ring_success is None and s.ships
    assert "Curriculum" not in go2_trial.markdown(s, [])


def test_a_curve_without_success_names_no_best_row(tmp_path):
    curve, base = _files(tmp_path, ["20,128000,2720,110,0.0,0,0.0,2.2,1,1,0.1,7,0.03,0.1,0.2,,",
                                    "40,256000,5920,220,0.0,0,0.0,2.2,1,1,0.1,7,0.03,0.1,0.2,,"])
    md = go2_trial.markdown(go2_trial.summarise("g", go2_trial.read_curve(curve), go2_trial.read_baseline(base)), [])
    assert "best curve row (none succeeded)" in md and "128,000 env steps" not in md  # no row singled out


def test_success_by_distance_bins_goals_and_keeps_the_far_edge():
    sample = go2_trial.ReachSample("teacher", reach=np.array([0.2, 1.1, 1.7, 3.0, 2.1]),
                                   goal_distance=np.array([1.0, 1.4, 1.6, 3.0, 2.6]),
                                   success=np.array([1.0, 0.0, 1.0, 1.0, 0.0]),
                                   progress=np.array([0.1, 0.5, 1.0, 2.0, 1.4]))
    rows = go2_trial.success_by_distance(sample, (1.0, 1.5, 2.0, 3.0))
    assert [(r.episodes, r.success) for r in rows] == [(2, 0.5), (1, 1.0), (2, 0.5)]
    empty = go2_trial.success_by_distance(sample, (0.0, 0.5, 1.0))
    assert [(r.episodes, r.success) for r in empty] == [(0, None), (1, 1.0)]  # 1.0 falls in the last band
    md = go2_trial.markdown(go2_trial.summarise("g", go2_trial.Curve(*[np.array([1.0])] * 9), go2_trial.Baseline(
        0, 0, 0.2, 0.3)), [sample])
    assert "| 2.5-3.0 | 2 | 0.500 |" in md and "share beyond 1 m 0.800" in md
    assert "teacher mean 1.000 m (62% of its mean reach)" in md  # 1.0 of a 1.62 m mean reach
