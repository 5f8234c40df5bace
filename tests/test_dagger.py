"""DAgger on the reacher with the shipped teacher: the student learns, the teacher stays frozen,
rows are aggregated per round, and an interrupted run resumes without collecting a round twice."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from distill.dagger import STATE_FILE, DaggerConfig, evaluate_student, run_dagger
from distill.data import RolloutReader
from distill.errors import DistillError
from distill.students.mlp import build_student
from distill.students.presets import get_preset, load_train_config
from distill.teachers import load_teacher

CFG = DaggerConfig(rounds=2, envs=32, eval_episodes=64, beta_schedule="exponential", beta0=1.0, beta_decay=0.5)


def test_beta_schedules():
    assert [DaggerConfig(rounds=4, beta_schedule="exponential", beta_decay=0.5).beta(k) for k in range(4)] == \
        [1.0, 0.5, 0.25, 0.125]
    assert [DaggerConfig(rounds=5, beta_schedule="linear").beta(k) for k in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [DaggerConfig(rounds=3, beta_schedule="constant", beta0=0.3).beta(k) for k in range(3)] == [1.0, 0.3, 0.3]
    with pytest.raises(DistillError, match="beta_schedule"):
        DaggerConfig(beta_schedule="cosine")
    with pytest.raises(DistillError, match="unknown"):
        DaggerConfig.from_dict({"roundz": 3})


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("reacher_8")


@pytest.fixture(scope="module")
def dagger_run(tmp_path_factory, teacher, reacher):
    root = tmp_path_factory.mktemp("dagger")
    before = [np.asarray(x).copy() for x in jax.tree_util.tree_leaves(teacher.actor_params)]
    preset = get_preset("mlp_2x256")
    result = run_dagger(reacher, teacher, preset, load_train_config("mlp_2x256"), CFG,
                        root / "rollouts.h5", root / "student", lineage={"test": True})
    return root, result, before


def test_dagger_lifts_student_far_above_random_init(dagger_run, reacher):
    _, result, _ = dagger_run
    random_student = build_student(get_preset("mlp_2x256"), 13, 2, seed=0)
    random_metrics = evaluate_student(reacher, random_student, jax.random.PRNGKey(10_000), CFG.eval_episodes)
    trained = result.rounds[-1].student
    teacher = result.teacher_metrics
    assert teacher.time_at_goal > 30  # the shipped teacher holds the target most of the episode
    assert trained.time_at_goal > random_metrics.time_at_goal + 15
    assert trained.final_success > random_metrics.final_success + 0.4
    assert result.rounds[-1].critic_gap < result.rounds[0].critic_gap + 1.0


def test_teacher_is_frozen_and_rows_aggregate(dagger_run, teacher):
    root, _, before = dagger_run
    after = [np.asarray(x) for x in jax.tree_util.tree_leaves(teacher.actor_params)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    reader = RolloutReader(root / "rollouts.h5")
    per_round = CFG.envs * 50
    assert reader.committed_rounds == [0, 1] and reader.committed_rows == 2 * per_round
    data = reader.read()
    assert np.all(data["round"][:per_round] == 0) and np.all(data["round"][per_round:] == 1)
    r0 = slice(0, per_round)
    np.testing.assert_allclose(data["behavior_action"][r0], data["teacher_action"][r0])  # round 0: teacher drives
    np.testing.assert_allclose(data["teacher_action"], np.tanh(data["teacher_mean"]), atol=1e-6)
    r1 = slice(per_round, None)
    driven_by_student = ~np.isclose(data["behavior_action"][r1], data["teacher_action"][r1]).all(1)
    assert 0.2 < driven_by_student.mean() < 0.8  # beta_1 = 0.5: about half the steps are the student's
    assert reader.meta.teacher_sha256 == teacher.weights_identity
    assert np.all(data["critic_value"] <= 0)


def test_resume_refits_a_committed_round_without_collecting_again(dagger_run, teacher, reacher):
    root, result, _ = dagger_run
    state_path = root / "student" / STATE_FILE
    progress = json.loads(state_path.read_text())
    progress["rounds"] = progress["rounds"][:1]  # as if killed after round 1's rows were committed
    state_path.write_text(json.dumps(progress))
    rows_before = RolloutReader(root / "rollouts.h5").committed_rows
    resumed = run_dagger(reacher, teacher, get_preset("mlp_2x256"), load_train_config("mlp_2x256"), CFG,
                         root / "rollouts.h5", root / "student", lineage={"test": True})
    assert RolloutReader(root / "rollouts.h5").committed_rows == rows_before
    assert [r.round for r in resumed.rounds] == [0, 1]
    assert resumed.rounds[1].student == result.rounds[1].student  # seeded refit: same student

    with pytest.raises(DistillError, match="another"):
        run_dagger(reacher, teacher, get_preset("mlp_2x256"), load_train_config("mlp_2x256"),
                   DaggerConfig(rounds=3, envs=32, eval_episodes=64), root / "rollouts.h5", root / "student",
                   lineage={"test": True})


def test_exported_onnx_succeeds_in_mjx_like_the_jax_mirror(dagger_run, reacher, tmp_path):
    from distill.bench.onnx_success import evaluate_onnx
    from distill.dagger import evaluation_key
    from distill.export.onnx_export import export_onnx

    _, result, _ = dagger_run
    export = export_onnx(result.student, tmp_path / "student.onnx")
    onnx = evaluate_onnx(reacher, export.path, evaluation_key(CFG), CFG.eval_episodes, progress=False)
    mirror = result.rounds[-1].student
    assert onnx.episodes == mirror.episodes
    assert abs(onnx.time_at_goal - mirror.time_at_goal) < 1.0
    assert abs(onnx.final_success - mirror.final_success) <= 0.05
