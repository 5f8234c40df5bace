"""The deep path: `make distill TEACHER=humanoid_1024 RANDOM_INIT=1 CONFIG=configs/cpu_small.toml`,
run here through the same library call on episodes of 4 steps instead of 16."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from distill.data import RolloutReader
from distill.pipeline import LATENCY_MIN_CALLS, RunRequest, load_dagger_config, run_distillation

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "cpu_small.toml"


def test_cpu_small_config_loads():
    cfg = load_dagger_config(CONFIG)
    assert cfg.envs * cfg.episode_length == cfg.label_chunk  # one round = one arithmetic-bound chunk
    assert cfg.heldout_envs == cfg.eval_episodes  # the held-out rollout reuses the evaluation's compile


@pytest.mark.slow
def test_humanoid_1024_runs_end_to_end_on_the_cpu_config(tmp_path, monkeypatch):
    root = tmp_path / "root"
    for rel in ("teachers/humanoid_1024/teacher.toml", "students/presets.toml", "benchmarks/targets/go2.toml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    monkeypatch.setenv("DISTILL_ROOT", str(root))
    cfg = replace(load_dagger_config(CONFIG), episode_length=4)

    report = run_distillation(RunRequest(teacher="humanoid_1024", config=cfg, random_init=True, run="deep"))

    assert report.random_init and (report.teacher.actor_depth, report.teacher.critic_depth) == (512, 1024)
    reader = RolloutReader(root / "datasets" / "deep" / "rollouts.h5")
    assert reader.committed_rounds == list(range(cfg.rounds)) and len(reader) == cfg.rounds * cfg.envs * 4
    rows = reader.read(("critic_value", "teacher_action"))
    assert np.isfinite(rows["critic_value"]).all() and np.abs(rows["teacher_action"]).max() <= 1.0
    for r in report.rounds:
        assert r.new_rows == cfg.envs * 4 and r.labelled_rows_per_s > 0
        assert r.stages.teacher > 0 and r.stages.critic > 0 and r.stages.write > 0
    teacher_rows = [row.result for row in report.latency if row.model == "teacher actor"]
    assert {r.backend for r in teacher_rows} >= {"onnxruntime_cpu", "jax_jit"}
    assert all(LATENCY_MIN_CALLS <= r.n_calls for r in teacher_rows)
    assert Path(report.artifacts["teacher_actor_onnx"]).is_file()
