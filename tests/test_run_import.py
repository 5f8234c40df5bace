"""Importing a real scaling-crl run folder (tests/fixtures/scaling_crl_run/, see its README): the
args.pkl is read as plain data, the checkpoint is checked against it, and the teacher is exactly
the one scaling-crl's own modules compute, in the physics it was trained in.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import jax
import numpy as np
import onnx
import pytest

from distill import labels
from distill.cli import main
from distill.errors import DistillError
from distill.export.teacher_onnx import export_teacher_actor_onnx
from distill.teachers import load_teacher, networks
from distill.teachers.importer import import_run_folder, import_teacher
from distill.teachers.manifest import read_manifest
from distill.teachers.safe_unpickle import safe_load_args

RUN = Path(__file__).resolve().parent / "fixtures" / "scaling_crl_run"
FOLDER = RUN / "ant_u_maze_3"
OUTPUTS = ("actor_mean", "actor_log_std", "deterministic_action", "sa_repr", "g_repr", "energy")


def rel_err(got, want) -> float:
    want = np.asarray(want, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("run_import_root")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_ROOT", str(path))
        yield path


@pytest.fixture(scope="module")
def imported(root):
    """The run folder imported through the CLI with no flags, as a user would."""
    assert main(["teacher", "import", str(FOLDER), "--name", "ant_run"]) == 0
    return load_teacher("ant_run")


def _copy_run(tmp_path: Path, **edits) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(FOLDER, folder)
    os.chmod(folder, 0o755)
    for name in os.listdir(folder):
        os.chmod(folder / name, 0o644)
    for old, new in edits.get("args", []):
        raw = (folder / "args.pkl").read_bytes()
        assert raw.count(old) == 1
        (folder / "args.pkl").write_bytes(raw.replace(old, new))
    return folder


def test_run_folder_records_env_backend_and_architecture(imported, root):
    manifest = read_manifest(root / "teachers" / "ant_run")
    assert (manifest.env, manifest.backend) == ("ant_u_maze", "spring")
    arch = manifest.arch
    assert (arch.actor_depth, arch.critic_depth, arch.width, arch.activation) == (4, 4, 64, "swish")
    assert (arch.obs_dim, arch.goal_dim, arch.action_dim) == (29, 2, 8)
    prov = manifest.provenance
    assert prov["format"] == "scaling-crl run folder" and prov["checkpoint"] == "final.pkl"
    assert prov["run_folder"] == "ant_u_maze_3"
    assert prov["args"]["env_id"] == "ant_u_maze" and prov["args"]["seed"] == 3
    assert "always add their input" in prov["skip_connections"]
    assert imported.env_backend == "spring"


def test_forward_pass_matches_scaling_crl_modules(imported):
    expected = np.load(RUN / "ant_u_maze_3.expected.npz")
    obs, action = expected["obs"], expected["action"]
    o = imported.arch.obs_dim
    mean, log_std = imported.actor_dist(obs)
    sa, g = jax.jit(networks.critic_reprs)(imported.critic_params, obs[:, :o], action, obs[:, o:])
    got = {
        "actor_mean": mean, "actor_log_std": log_std, "deterministic_action": imported.act(obs),
        "sa_repr": sa, "g_repr": g, "energy": imported.critic(obs[:, :o], action, obs[:, o:]),
    }
    for key in OUTPUTS:
        assert rel_err(got[key], expected[key]) < 1e-5, key


def test_step_checkpoint_and_missing_checkpoint(root, tmp_path):
    directory = import_run_folder(FOLDER, "ant_run_step", step=18848)
    assert read_manifest(directory).provenance["checkpoint"] == "step_18848.pkl"
    with pytest.raises(DistillError, match=r"no step_5\.pkl \(checkpoints here: final\.pkl, step_18848\.pkl\)"):
        import_run_folder(FOLDER, "ant_run_nostep", step=5)


def test_checkpoint_that_disagrees_with_its_args_is_refused(root, tmp_path):
    folder = _copy_run(tmp_path, args=[(b"actor_depth\x94K\x04", b"actor_depth\x94K\x08")])
    with pytest.raises(DistillError, match="args say actor_depth 8, the checkpoint/env has 4") as exc:
        import_run_folder(folder, "disagrees")
    assert "\n" not in str(exc.value) and not (root / "teachers" / "disagrees").exists()


def test_env_we_do_not_have_and_contradicting_flags_are_refused(root, tmp_path):
    folder = _copy_run(tmp_path, args=[(b"\x8c\nant_u_maze\x94\x8c\x0e", b"\x8c\nant_pushh_\x94\x8c\x0e")])
    with pytest.raises(DistillError, match="env_id 'ant_pushh_' has no env in distill"):
        import_run_folder(folder, "pushh")
    with pytest.raises(DistillError, match="contradicts"):
        import_run_folder(FOLDER, "contra", env="humanoid")
    with pytest.raises(DistillError, match="args.pkl says it"):
        import_teacher(FOLDER, "flags", activation="relu")
    with pytest.raises(DistillError, match="no args.pkl"):
        import_run_folder(tmp_path, "empty")


class _Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_malicious_args_pkl_runs_nothing_and_is_refused(tmp_path, root, capsys):
    folder = _copy_run(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "args.pkl").write_bytes(pickle.dumps({"env_id": "ant_u_maze", "x": _Touch(marker)}))
    code = main(["teacher", "import", str(folder), "--name", "evil_args"])
    err = capsys.readouterr().err
    assert code == 2 and "refused to load" in err and "system" in err and err.count("\n") == 1
    assert not marker.exists() and not (root / "teachers" / "evil_args").exists()


def test_args_reader_accepts_plain_data_only(tmp_path):
    with open(FOLDER / "args.pkl", "rb") as f:
        fields = safe_load_args(f, "args.pkl")
    assert fields["env_id"] == "ant_u_maze" and fields["use_relu"] == 0
    assert isinstance(fields["num_prefill_actor_steps"], float)  # a numpy scalar, as plain data
    # BUILD with a non-dict state or REDUCE with arguments: refused, one line
    crafted = b"\x80\x04\x8c\x08__main__\x8c\x04Args\x93\x8c\x01x\x85R."
    with pytest.raises(DistillError, match="not a readable args.pkl"):
        safe_load_args(__import__("io").BytesIO(crafted), "crafted.pkl")


# --- a ReLU teacher, end to end ------------------------------------------------------------------

def _numpy_actor(params, obs: np.ndarray, activation) -> np.ndarray:
    """scaling-crl's actor written out in numpy, independent of distill.teachers.networks."""
    def norm(p, x):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-6) * np.asarray(p["scale"]) + np.asarray(p["bias"])

    def layer(d, n, x):
        return activation(norm(n, x @ np.asarray(d["kernel"]) + np.asarray(d["bias"])))

    t = params["trunk"]
    h = layer(t["input"]["dense"], t["input"]["norm"], obs)
    blocks = jax.tree_util.tree_map(np.asarray, t["blocks"])
    for b in range(blocks["dense"]["kernel"].shape[0]):
        identity = h
        for i in range(4):
            h = layer({k: v[b, i] for k, v in blocks["dense"].items()},
                      {k: v[b, i] for k, v in blocks["norm"].items()}, h)
        h = h + identity
    return np.tanh(h @ np.asarray(params["mean"]["kernel"]) + np.asarray(params["mean"]["bias"]))


def test_relu_teacher_end_to_end(tmp_path, root):
    folder = _copy_run(tmp_path, args=[(b"use_relu\x94K\x00", b"use_relu\x94K\x01")])
    teacher = load_teacher(import_run_folder(folder, "ant_relu"))
    assert teacher.arch.activation == "relu"
    obs = np.load(RUN / "ant_u_maze_3.expected.npz")["obs"]
    relu = _numpy_actor(teacher.actor_params, obs, lambda x: np.maximum(x, 0.0))
    swish = _numpy_actor(teacher.actor_params, obs, lambda x: x / (1.0 + np.exp(-x)))
    assert np.abs(relu - swish).max() > 1e-2, "the activation must matter for this check to mean anything"
    np.testing.assert_allclose(np.asarray(teacher.act(obs)), relu, atol=2e-5)
    np.testing.assert_allclose(labels.label_actor(teacher, obs).action, relu, atol=2e-5)
    export = export_teacher_actor_onnx(teacher, tmp_path / "teacher_relu.onnx", obs=obs)
    ops = {node.op_type for node in onnx.load(export.path).graph.node}
    assert "Relu" in ops and "Sigmoid" not in ops
    meta = {p.key: p.value for p in onnx.load(export.path).metadata_props}
    assert meta["distill.activation"] == "relu" and meta["distill.teacher_sha256"] == teacher.weights_identity


# --- the imported teacher in the physics it was trained in -----------------------------------------

UPSTREAM = json.loads((RUN / "ant_u_maze_3.upstream_eval.json").read_text())


@pytest.mark.slow
def test_evaluation_in_spring_ant_u_maze_matches_upstream(imported):
    """Same policy, same physics, different random draws: the mean distance to the goal over the
    1,000-step episode must agree with scaling-crl's own evaluation within sampling error."""
    from distill.dagger import evaluate_teacher
    from distill.envs import make_env

    episodes = UPSTREAM["num_eval_envs"]
    metrics = evaluate_teacher(make_env("ant_u_maze", "spring"), imported, jax.random.PRNGKey(7), episodes)
    upstream_dist = UPSTREAM["eval/episode_dist"] / UPSTREAM["eval/avg_episode_length"]
    # goals are U-maze cells 4-11.3 m from the start: per-episode sd ~2.2 m, so the difference of two
    # 32-episode means has sd ~0.55 m; 3 sd
    assert abs(metrics.mean_distance - upstream_dist) < 1.7, (metrics.mean_distance, upstream_dist)
    assert metrics.success <= 2 / episodes and UPSTREAM["eval/episode_success_any"] == 0.0
