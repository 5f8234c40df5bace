"""Native teacher checkpoints: exact round trip, and a swapped or corrupted file is refused."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from distill.cli import main
from distill.errors import DistillError
from distill.hashing import sha256_file
from distill.teachers import checkpoint, load_teacher, networks


@pytest.fixture()
def saved(tmp_path):
    arch = networks.CRLArch(obs_dim=10, goal_dim=3, action_dim=2, actor_depth=8, critic_depth=4, width=16)
    actor = networks.init_actor(jax.random.PRNGKey(0), arch)
    critic = networks.init_critic(jax.random.PRNGKey(1), arch)
    checkpoint.save_teacher(tmp_path / "t", name="t", env="reacher", arch=arch, actor=actor, critic=critic,
                            provenance={"source": "test"}, metrics={"success": 0.5})
    return tmp_path / "t", arch, actor, critic


def test_round_trip_is_exact(saved):
    directory, arch, actor, _ = saved
    t = load_teacher(directory)
    assert t.arch == arch and t.env == "reacher" and t.manifest.metrics.success == 0.5
    assert t.weights_identity == sha256_file(directory / checkpoint.WEIGHTS_NAME)
    for a, b in zip(jax.tree_util.tree_leaves(actor), jax.tree_util.tree_leaves(t.actor_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    obs = np.random.default_rng(0).normal(size=(4, 13)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(t.act(obs)), np.asarray(networks.actor_act(actor, obs)), atol=1e-6)
    q = t.critic(obs[:, :10], np.zeros((4, 2)), obs[:, 10:])
    assert q.shape == (4,) and np.all(np.asarray(q) <= 0)


def test_wrong_sha256_is_refused(saved):
    directory = saved[0]
    blob = bytearray((directory / checkpoint.WEIGHTS_NAME).read_bytes())
    blob[-1] ^= 0xFF
    (directory / checkpoint.WEIGHTS_NAME).write_bytes(bytes(blob))
    with pytest.raises(DistillError, match="sha256"):
        load_teacher(directory)


def test_missing_weights_cli_says_how_to_get_them(saved, capsys, project_elsewhere):
    directory = saved[0]
    (directory / checkpoint.WEIGHTS_NAME).unlink()
    assert main(["run", "--teacher", str(directory)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no weights" in err[0] and "distill teacher import" in err[0]


def test_unknown_teacher_is_one_line(capsys):
    assert main(["run", "--teacher", "no_such_teacher_xyz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown teacher" in err[0]


def test_humanoid_1024_without_weights_exits_nonzero(capsys, project_elsewhere):
    assert main(["run", "--teacher", "humanoid_1024"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "humanoid_1024" in err[0] and "import" in err[0]


def test_bf16_inference_tracks_float32(saved):
    directory = saved[0]
    f32, bf16 = load_teacher(directory), load_teacher(directory, compute_dtype="bfloat16")
    leaf = jax.tree_util.tree_leaves(bf16.actor_params)[0]
    assert leaf.dtype == jax.numpy.bfloat16
    obs = np.random.default_rng(1).normal(size=(32, 13)).astype(np.float32)
    a32, a16 = np.asarray(f32.act(obs)), np.asarray(bf16.act(obs))
    assert a16.dtype == np.float32 and not np.array_equal(a32, a16)  # really computed in bf16
    np.testing.assert_allclose(a16, a32, atol=0.05)
    q32 = np.asarray(f32.critic(obs[:, :10], a32, obs[:, 10:]))
    q16 = np.asarray(bf16.critic(obs[:, :10], a32, obs[:, 10:]))
    np.testing.assert_allclose(q16, q32, rtol=0.05, atol=0.05)
    with pytest.raises(DistillError, match="compute_dtype"):
        load_teacher(directory, compute_dtype="float8")


def test_rewriting_a_recipe_keeps_its_header_comments_once(saved):
    directory, arch, actor, critic = saved
    toml = directory / checkpoint.TOML_NAME
    toml.write_text("# why this recipe\n#   and how to train it\nname = \"t\"\n# not a header comment\n")
    for _ in range(2):  # a resumed training writes again: the header is kept, not repeated
        checkpoint.save_teacher(directory, name="t", env="reacher", arch=arch, actor=actor, critic=critic,
                                provenance={"source": "test"}, metrics={"success": 0.75})
    text = toml.read_text()
    assert text.startswith("# why this recipe\n#   and how to train it\nname = ")
    assert text.count("# why this recipe") == 1 and "not a header comment" not in text
    assert load_teacher(directory).manifest.metrics.success == 0.75
