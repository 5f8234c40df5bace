"""A privileged teacher and a deployable student: on `reacher_egocentric` the teacher reads the
reacher's observation (13 dims, fingertip and target in the world frame) and the student only joint
angles, joint velocities and the target relative to the fingertip (8 dims). Each must get its own
observation everywhere: rollouts, dataset, fitting, export and evaluation."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from conftest import SMALL_ENVS

from distill.bench.onnx_success import evaluate_onnx
from distill.dagger import DaggerConfig, evaluate_student, evaluation_key, run_dagger
from distill.data import RolloutReader
from distill.envs import make_env
from distill.errors import DistillError
from distill.export.onnx_export import export_onnx, onnx_io
from distill.rollouts import batched_reset, batched_step
from distill.students.memory import build_student
from distill.students.presets import get_preset, load_train_config
from distill.teachers import load_teacher

CFG = DaggerConfig(rounds=2, envs=SMALL_ENVS, eval_episodes=SMALL_ENVS, heldout_envs=SMALL_ENVS, heldout_rows=512,
                   refit_steps=400)
"""One batch size for everything (the physics compiles once); a bounded warm refit in round 1."""
PRESET = "mlp_2x256"


def _train_config():
    return dataclasses.replace(load_train_config(PRESET), min_steps=600)


@pytest.fixture(scope="module")
def env():
    return make_env("reacher_egocentric")


def egocentric_from_teacher(teacher_obs: np.ndarray, joint_vel: np.ndarray) -> np.ndarray:
    """The student's observation rebuilt from the teacher's (and the joint velocities, which the
    teacher does not observe): cos/sin of the joints, velocities, target − fingertip in x, y."""
    return np.concatenate([teacher_obs[:, 0:4], joint_vel, teacher_obs[:, 10:12] - teacher_obs[:, 4:6]], 1)


def test_spec_declares_both_observations(env):
    spec = env.spec
    assert spec.asymmetric and spec.input_dim == 13 and spec.student_input_dim == 8
    assert spec.student_observation.goal_dim == 2 and spec.student_observation.names[-2:] == ("goal_rel_x", "goal_rel_y")
    assert not make_env("reacher").spec.asymmetric
    assert make_env("reacher").spec.student_input_dim == 13


def test_state_carries_both_observations(env):
    state = batched_reset(env)(jax.random.split(jax.random.PRNGKey(0), SMALL_ENVS))
    state = batched_step(env)(state, np.full((SMALL_ENVS, 2), 0.5, np.float32))
    teacher_obs, student_obs = np.asarray(state.obs), np.asarray(state.student_obs)
    assert teacher_obs.shape == (SMALL_ENVS, 13) and student_obs.shape == (SMALL_ENVS, 8)
    np.testing.assert_allclose(student_obs, egocentric_from_teacher(teacher_obs, np.asarray(state.data.qvel[:, :2])),
                               atol=1e-6)


@pytest.fixture(scope="module")
def run(tmp_path_factory, env):
    root = tmp_path_factory.mktemp("asym")
    teacher = load_teacher("reacher_8")  # trained on `reacher`: its observation is this env's teacher observation
    result = run_dagger(env, teacher, get_preset(PRESET), _train_config(), CFG, root / "rollouts.h5",
                        root / "student", lineage={"test": True})
    return root, result, teacher


def test_dataset_stores_each_observation_under_its_name(run):
    root, _, _ = run
    reader = RolloutReader(root / "rollouts.h5")
    meta = reader.meta
    assert meta.asymmetric and meta.teacher_input_dim == 13 and meta.obs_dim + meta.goal_dim == 8
    assert meta.obs_names[-2:] == ("goal_rel_x", "goal_rel_y") and meta.teacher_obs_names[-3:] == ("goal_x", "goal_y", "goal_z")
    data = reader.read(("obs", "teacher_obs", "goal", "teacher_action", "teacher_mean"))
    assert data["obs"].shape[1] == 8 and data["teacher_obs"].shape[1] == 13
    np.testing.assert_array_equal(data["teacher_obs"][:, 10:], data["goal"])  # the teacher's holds the world goal
    np.testing.assert_allclose(data["obs"][:, :4], data["teacher_obs"][:, :4], atol=1e-6)
    np.testing.assert_allclose(data["obs"][:, 6:], data["teacher_obs"][:, 10:12] - data["teacher_obs"][:, 4:6], atol=1e-6)
    np.testing.assert_allclose(data["teacher_action"], np.tanh(data["teacher_mean"]), atol=1e-6)


def test_teacher_labels_come_from_the_teacher_observation(run):
    root, _, teacher = run
    data = RolloutReader(root / "rollouts.h5").read(("teacher_obs", "teacher_action"))
    again = np.asarray(teacher.act(data["teacher_obs"][:512]))
    np.testing.assert_allclose(data["teacher_action"][:512], again, rtol=1e-5, atol=2e-5)


def test_student_reads_its_own_observation_and_learns(run, env):
    _, result, _ = run
    student = result.student
    assert student.input_dim == 8
    random_student = build_student(get_preset(PRESET), 8, 2, seed=0)
    random_metrics = evaluate_student(env, random_student, evaluation_key(CFG), CFG.eval_episodes, CFG.eval_batch)
    trained = result.rounds[-1].student
    assert trained.time_at_goal > random_metrics.time_at_goal + 10
    assert np.isfinite(result.rounds[-1].critic_gap)


def test_exported_student_takes_the_student_observation(run, env, tmp_path):
    _, result, _ = run
    export = export_onnx(result.student, tmp_path / "student.onnx")
    import onnx

    assert onnx_io(onnx.load(str(export.path)))["inputs"] == {"obs": [1, 8]}
    onnx_metrics = evaluate_onnx(env, export.path, evaluation_key(CFG), CFG.eval_episodes, CFG.eval_batch)
    mirror = result.rounds[-1].student
    assert abs(onnx_metrics.time_at_goal - mirror.time_at_goal) < 1.0


def test_teacher_of_another_observation_is_refused(env, tmp_path):
    teacher = load_teacher("ant_16", random_init=True)
    with pytest.raises(DistillError, match="teacher observation"):
        run_dagger(env, teacher, get_preset(PRESET), _train_config(), CFG, tmp_path / "r.h5",
                   tmp_path / "s", lineage={})


# --- a robot's student: memory, noise and delay ------------------------------------------------------
ROBOT_CFG = DaggerConfig(rounds=2, envs=32, eval_episodes=32, heldout_envs=32, obs_noise="gaussian",
                         obs_noise_scale={"goal_rel": 0.05}, action_delay=1)


@pytest.fixture(scope="module")
def robot_run(tmp_path_factory, env):
    from dataclasses import replace

    from distill.students.presets import StudentPreset

    root = tmp_path_factory.mktemp("robot")
    teacher = load_teacher("reacher_8")
    preset = StudentPreset("gru16_1x32", 1, 32, family="gru", hidden=16, layers=1)
    train = replace(load_train_config(), epochs=2, min_steps=100, bptt=10)
    result = run_dagger(env, teacher, preset, train, ROBOT_CFG, root / "rollouts.h5", root / "student",
                        lineage={"test": True})
    return root, result, teacher


def test_noise_reaches_only_the_students_view_and_the_teacher_labels_clean(robot_run):
    root, _, teacher = robot_run
    data = RolloutReader(root / "rollouts.h5").read(("obs", "teacher_obs", "teacher_action"))
    clean_rel = data["teacher_obs"][:, 10:12] - data["teacher_obs"][:, 4:6]
    noise = data["obs"][:, 6:8] - clean_rel
    assert 0.045 < noise.std() < 0.055 and abs(noise.mean()) < 0.005  # goal_rel: std 0.05
    np.testing.assert_array_equal(data["obs"][:, :4], data["teacher_obs"][:, :4])  # other fields untouched
    np.testing.assert_allclose(data["teacher_action"][:512], np.asarray(teacher.act(data["teacher_obs"][:512])),
                               rtol=1e-5, atol=2e-5)


def test_actions_land_one_step_late_and_each_episode_starts_with_none_in_flight(robot_run):
    root, _, _ = robot_run
    reader = RolloutReader(root / "rollouts.h5")
    r0 = reader.read(("behavior_action", "teacher_action", "t"), rounds=[0])  # the teacher drives round 0
    steps, envs = 50, ROBOT_CFG.envs
    executed = r0["behavior_action"].reshape(steps, envs, 2)
    computed = r0["teacher_action"].reshape(steps, envs, 2)
    assert np.all(r0["t"].reshape(steps, envs) == np.arange(steps)[:, None])
    np.testing.assert_array_equal(executed[0], 0.0)
    np.testing.assert_allclose(executed[1:], computed[:-1], atol=1e-6)


def test_perturbed_run_records_its_settings_and_reports_both_figures(robot_run):
    import json

    from distill.dagger import STATE_FILE
    from distill.students.gru import GRUStudent

    root, result, _ = robot_run
    config = json.loads((root / "student" / STATE_FILE).read_text())["config"]
    assert config["obs_noise"] == "gaussian" and config["obs_noise_scale"] == {"goal_rel": 0.05}
    assert config["action_delay"] == 1 and config["stale_obs_prob"] == 0.0
    for record in result.rounds:
        assert record.student_perturbed is not None and record.student_perturbed.episodes == ROBOT_CFG.eval_episodes
    assert isinstance(result.student, GRUStudent) and np.isfinite(result.rounds[-1].critic_gap)
    heldout = np.load(root / "student" / "heldout.npz")
    assert heldout["student_seq"].shape == (50, 32, 8) and heldout["starts"][0].all()
