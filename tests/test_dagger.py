"""DAgger on the reacher with the shipped teacher, read from the session's one `distill run`
(`tiny_run`: two rounds of 32 envs): the student learns, the teacher stays frozen, rows are
aggregated per round, an interrupted run resumes without collecting a round twice and refits
the same student, and the exported ONNX succeeds in MJX like the JAX mirror."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest
from conftest import SMALL_ENVS, TINY_ROUNDS

from distill.dagger import STATE_FILE, DaggerConfig, RoundRecord, evaluate_student, run_dagger
from distill.data import RolloutReader
from distill.errors import DistillError
from distill.students.memory import build_student
from distill.teachers import load_teacher


def test_beta_schedules():
    assert [DaggerConfig(rounds=4, beta_schedule="exponential", beta_decay=0.5).beta(k) for k in range(4)] == \
        [1.0, 0.5, 0.25, 0.125]
    assert [DaggerConfig(rounds=5, beta_schedule="linear").beta(k) for k in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [DaggerConfig(rounds=3, beta_schedule="constant", beta0=0.3).beta(k) for k in range(3)] == [1.0, 0.3, 0.3]
    with pytest.raises(DistillError, match="beta_schedule"):
        DaggerConfig(beta_schedule="cosine")
    with pytest.raises(DistillError, match="unknown"):
        DaggerConfig.from_dict({"roundz": 3})
    with pytest.raises(DistillError, match="refit"):
        DaggerConfig(refit="sometimes")
    with pytest.raises(DistillError, match="refit_steps"):
        DaggerConfig(refit_steps=0)
    assert DaggerConfig(envs=16).eval_batch == 16 and DaggerConfig(envs=16, eval_envs=64).eval_batch == 64


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("reacher_8")


def _report(run) -> dict:
    assert run.exit_code == 0, run.stderr
    return json.loads((run.folder / "report.json").read_text())


def test_dagger_lifts_student_far_above_random_init(tiny_run, reacher):
    report = _report(tiny_run)
    cfg = tiny_run.config
    random_student = build_student(_preset(tiny_run), 13, 2, seed=0)
    random_metrics = evaluate_student(reacher, random_student, jax.random.PRNGKey(10_000), cfg.eval_episodes,
                                      cfg.eval_batch)
    trained, teacher = report["success"]["student"], report["success"]["teacher"]
    assert teacher["time_at_goal"] > 30  # the shipped teacher holds the target most of the episode
    assert trained["time_at_goal"] > random_metrics.time_at_goal + 15
    assert trained["final_success"] > random_metrics.final_success + 0.4
    rounds = report["rounds"]
    assert [r["round"] for r in rounds] == list(range(TINY_ROUNDS))
    assert rounds[-1]["critic_gap"] < rounds[0]["critic_gap"] + 1.0
    assert rounds[0]["fit"]["steps"] == 600 and rounds[1]["fit"]["steps"] == 400  # warm refit: a bounded budget


def _preset(run):
    from distill.students.presets import StudentPreset

    student = json.loads((run.folder / "report.json").read_text())["student"]
    return StudentPreset(student["preset"], student["depth"], student["width"])


def test_teacher_is_frozen_and_rows_aggregate(tiny_run, teacher):
    reader = RolloutReader(tiny_run.dataset)
    per_round = SMALL_ENVS * 50
    assert reader.committed_rounds == list(range(TINY_ROUNDS)) and reader.committed_rows == TINY_ROUNDS * per_round
    data = reader.read()
    assert np.all(data["round"][:per_round] == 0) and np.all(data["round"][per_round:] == 1)
    r0, r1 = slice(0, per_round), slice(per_round, None)
    np.testing.assert_allclose(data["behavior_action"][r0], data["teacher_action"][r0])  # round 0: teacher drives
    np.testing.assert_allclose(data["teacher_action"], np.tanh(data["teacher_mean"]), atol=1e-6)
    driven_by_student = ~np.isclose(data["behavior_action"][r1], data["teacher_action"][r1]).all(1)
    assert 0.2 < driven_by_student.mean() < 0.8  # beta_1 = 0.5: about half the steps are the student's
    # frozen: both rounds' labels are the saved weights' actions (a teacher updated between rounds would not be)
    for rows in (r0, r1):
        obs = data["obs"][rows][::40]
        np.testing.assert_allclose(data["teacher_action"][rows][::40], np.asarray(teacher.act(obs)),
                                   rtol=1e-5, atol=2e-5)
    assert reader.meta.teacher_sha256 == teacher.weights_identity
    assert np.all(data["critic_value"] <= 0)


def test_resume_refits_a_committed_round_without_collecting_again(tiny_run, teacher, reacher, tmp_path, monkeypatch):
    """As if killed after round 1's rows were committed (and even after its student was written):
    the rerun collects nothing, refits round 1 from round 0's student, and gets the same student."""
    monkeypatch.setenv("DISTILL_ROOT", str(tiny_run.root))  # the run's presets file
    from distill.students.presets import get_preset, load_train_config

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.folder, copy / "student")
    shutil.copy(tiny_run.dataset, copy / "rollouts.h5")
    state_path = copy / "student" / STATE_FILE
    progress = json.loads(state_path.read_text())
    recorded = RoundRecord.from_dict(progress["rounds"][1])
    progress["rounds"] = progress["rounds"][:1]
    state_path.write_text(json.dumps(progress))
    cfg = tiny_run.config
    preset = get_preset("mlp_2x256")
    resumed = run_dagger(reacher, teacher, preset, load_train_config(preset.name), cfg, copy / "rollouts.h5",
                         copy / "student", lineage={"test": True})
    assert RolloutReader(copy / "rollouts.h5").committed_rows == RolloutReader(tiny_run.dataset).committed_rows
    assert [r.round for r in resumed.rounds] == [0, 1] and resumed.rounds[1].new_rows == 0
    assert resumed.rounds[1].student == recorded.student  # seeded warm refit from the same student
    assert resumed.rounds[1].fit.loss_final == recorded.fit.loss_final

    with pytest.raises(DistillError, match="another"):
        run_dagger(reacher, teacher, preset, load_train_config(preset.name),
                   DaggerConfig(rounds=3, envs=SMALL_ENVS, eval_episodes=2 * SMALL_ENVS), copy / "rollouts.h5",
                   copy / "student", lineage={"test": True})


def test_exported_onnx_succeeds_in_mjx_like_the_jax_mirror(tiny_run):
    report = _report(tiny_run)
    mirror = report["success"]["student"]
    onnx = next(v for v in report["variants"] if v["precision"] == "fp32")["success"]
    assert onnx["episodes"] == mirror["episodes"] == 2 * SMALL_ENVS
    assert abs(onnx["time_at_goal"] - mirror["time_at_goal"]) < 1.0
    assert abs(onnx["final_success"] - mirror["final_success"]) <= 0.05
