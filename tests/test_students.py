"""Students: presets, the MLP (normaliser and tanh inside), its JAX mirror, checkpoints, fitting."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from distill.errors import DistillError
from distill.students.checkpoint import (
    TOML_NAME,
    WEIGHTS_NAME,
    load_student,
    read_student_toml,
    save_student,
)
from distill.students.fit import evaluate_loss, fit_normalizer, fit_student
from distill.students.jax_mirror import student_apply, student_params_to_jax
from distill.students.memory import build_student
from distill.students.mlp import STD_FLOOR, MLPStudent
from distill.students.presets import (
    StudentPreset,
    StudentTrainConfig,
    default_preset_name,
    get_preset,
    load_presets,
    load_train_config,
)

IN_DIM, ACT_DIM = 12, 4


def raw_obs(n: int, seed: int) -> np.ndarray:
    """Observations on a scale far from N(0, 1), so the normaliser matters."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.05, 8.0, IN_DIM)
    return (rng.standard_normal((n, IN_DIM)) * scale + np.linspace(-3, 5, IN_DIM)).astype(np.float32)


def teacher_like(obs: np.ndarray) -> np.ndarray:
    """A fixed smooth squashed function of the normalised observation, like a teacher's tanh(mean)."""
    rng = np.random.default_rng(1234)
    w1 = rng.standard_normal((IN_DIM, 32)) / np.sqrt(IN_DIM)
    w2 = rng.standard_normal((32, ACT_DIM)) / np.sqrt(8)
    mean, std = obs.mean(0), obs.std(0)
    return np.tanh(np.tanh(((obs - mean) / std) @ w1) @ w2).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    obs = raw_obs(2048, seed=0)
    return obs, teacher_like(obs)


@pytest.fixture(scope="module")
def small_cfg() -> StudentTrainConfig:
    return replace(load_train_config(), epochs=8, batch_size=128, lr=3e-3, min_steps=200)


# ---------------------------------------------------------------- presets


def test_presets_file_has_the_documented_sizes():
    presets = load_presets()
    for name, depth, width in [("mlp_2x256", 2, 256), ("mlp_3x256", 3, 256), ("mlp_2x64", 2, 64), ("mlp_4x512", 4, 512), ("mlp_1x32", 1, 32)]:
        assert presets[name] == StudentPreset(name, depth, width, "elu")
    assert default_preset_name() == "mlp_2x256"
    assert get_preset() == presets["mlp_2x256"]
    for p in presets.values():
        assert 1 <= p.depth <= 8 and 32 <= p.width <= 512


def test_unknown_preset_lists_known_ones():
    with pytest.raises(DistillError, match="unknown student preset 'mlp_9x9'.*mlp_2x256"):
        get_preset("mlp_9x9")


def test_train_config_shared_table_and_per_preset_override():
    shared = load_train_config()
    assert shared.epochs >= 1 and shared.batch_size >= 1 and shared.lr > 0
    big = load_train_config("mlp_4x512")
    assert big.lr != shared.lr and big.epochs == shared.epochs
    assert load_train_config("mlp_2x64") == shared


@pytest.mark.parametrize(
    "table, match",
    [
        ("depth = 9\nwidth = 64", r"depth = 9"),
        ("depth = 2\nwidth = 16", r"width = 16"),
        ("depth = 2\nwidth = 64\nactivation = \"relu\"", "activation"),
        ("depth = 2\nwidth = 64\nwdith = 3", "unknown keys"),
        ("width = 64", "missing `depth`"),
    ],
)
def test_bad_preset_tables_name_file_and_field(tmp_path, table, match):
    path = tmp_path / "presets.toml"
    path.write_text(f'default = "x"\n[presets.x]\n{table}\n')
    with pytest.raises(DistillError, match=match) as info:
        load_presets(path)
    assert str(path) in str(info.value)


def test_bad_train_table_is_refused(tmp_path):
    path = tmp_path / "presets.toml"
    path.write_text('[train]\nepochs = 3\nlearning_rate = 1.0\n[presets.x]\ndepth = 1\nwidth = 32\n')
    with pytest.raises(DistillError, match="unknown keys"):
        load_train_config(path=path)
    path.write_text('[train]\nlr = -1.0\n[presets.x]\ndepth = 1\nwidth = 32\n')
    with pytest.raises(DistillError, match="lr"):
        load_train_config(path=path)


# ---------------------------------------------------------------- the module


def test_forward_is_bounded_and_normalises_inside():
    obs = raw_obs(256, seed=3)
    mean, std = fit_normalizer(obs)
    student = build_student(get_preset("mlp_2x64"), IN_DIM, ACT_DIM, mean, std, seed=0)
    extreme = obs * 1e3
    out = student.act_numpy(extreme)
    assert out.shape == (256, ACT_DIM) and np.all(np.abs(out) <= 1.0)
    # Same weights without a normaliser, fed pre-normalised inputs, must give the same actions.
    bare = MLPStudent(IN_DIM, ACT_DIM, 2, 64)
    bare.load_state_dict({k: v for k, v in student.state_dict().items() if not k.startswith("obs_")}, strict=False)
    np.testing.assert_allclose(student.act_numpy(obs), bare.act_numpy((obs - mean) / std), atol=1e-6)
    assert not np.allclose(student.act_numpy(obs), bare.act_numpy(obs), atol=1e-3)


def test_std_is_floored():
    std = np.zeros(IN_DIM, np.float32)
    student = MLPStudent(IN_DIM, ACT_DIM, 1, 32, np.zeros(IN_DIM), std)
    assert torch.all(student.obs_std == STD_FLOOR)
    mean, fitted_std = fit_normalizer(np.ones((10, IN_DIM), np.float32))
    assert np.all(fitted_std == np.float32(STD_FLOOR)) and np.all(mean == 1.0)


def test_fit_normalizer_matches_numpy():
    obs = raw_obs(500, seed=4)
    mean, std = fit_normalizer(obs)
    np.testing.assert_allclose(mean, obs.astype(np.float64).mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, np.maximum(obs.astype(np.float64).std(0), STD_FLOOR), rtol=1e-5)


def test_build_student_is_seeded_and_leaves_global_rng_alone():
    preset = get_preset("mlp_2x64")
    torch.manual_seed(99)
    before = torch.rand(1)
    torch.manual_seed(99)
    a = build_student(preset, IN_DIM, ACT_DIM, seed=7)
    assert torch.rand(1) == before
    b = build_student(preset, IN_DIM, ACT_DIM, seed=7)
    c = build_student(preset, IN_DIM, ACT_DIM, seed=8)
    assert torch.equal(a.head.weight, b.head.weight) and not torch.equal(a.head.weight, c.head.weight)


def test_bad_normaliser_shape_is_refused():
    with pytest.raises(DistillError, match="obs_mean"):
        MLPStudent(IN_DIM, ACT_DIM, 2, 64, obs_mean=np.zeros(IN_DIM + 1))


# ---------------------------------------------------------------- JAX mirror


@pytest.fixture(scope="module")
def jit_apply():
    return jax.jit(student_apply)


@pytest.mark.parametrize("depth, width", [(1, 32), (2, 64), (3, 128), (8, 64)])
def test_jax_mirror_equals_pytorch(jit_apply, depth, width):
    obs = raw_obs(128, seed=depth)
    mean, std = fit_normalizer(obs)
    student = build_student(StudentPreset("t", depth, width), IN_DIM, ACT_DIM, mean, std, seed=depth)
    params = student_params_to_jax(student)
    want = student.act_numpy(obs)
    got = np.asarray(jit_apply(params, jnp.asarray(obs)))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    single = np.asarray(jax.vmap(student_apply, in_axes=(None, 0))(params, jnp.asarray(obs)))
    np.testing.assert_allclose(single, want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path):
    obs = raw_obs(64, seed=5)
    mean, std = fit_normalizer(obs)
    student = build_student(get_preset("mlp_3x256"), IN_DIM, ACT_DIM, mean, std, seed=1)
    save_student(student, tmp_path / "s", metadata={"preset": "mlp_3x256", "round": 2})
    loaded = load_student(tmp_path / "s")
    assert loaded.config() == student.config()
    np.testing.assert_array_equal(loaded.act_numpy(obs), student.act_numpy(obs))
    assert read_student_toml(tmp_path / "s")["meta"] == {"preset": "mlp_3x256", "round": 2}
    assert not list((tmp_path / "s").glob("*.tmp"))


def test_changed_weights_are_refused(tmp_path):
    student = MLPStudent(IN_DIM, ACT_DIM, 1, 32)
    save_student(student, tmp_path)
    other = MLPStudent(IN_DIM, ACT_DIM, 1, 32)
    (tmp_path / WEIGHTS_NAME).write_bytes(st_save(other.state_dict()))
    with pytest.raises(DistillError, match="sha256"):
        load_student(tmp_path)
    (tmp_path / TOML_NAME).unlink()
    with pytest.raises(DistillError, match="not a student folder"):
        load_student(tmp_path)


# ---------------------------------------------------------------- fitting


def test_fit_lowers_the_loss(data, small_cfg):
    obs, target = data
    mean, std = fit_normalizer(obs)
    student = build_student(get_preset("mlp_2x64"), IN_DIM, ACT_DIM, mean, std, seed=0)
    out = fit_student(student, obs, target, small_cfg, seed=0, progress=False)
    assert out.loss_final < 0.2 * out.loss_start
    batches = int(np.ceil(len(obs) / small_cfg.batch_size))
    assert out.epochs == max(small_cfg.epochs, int(np.ceil(small_cfg.min_steps / batches)))
    assert out.steps == out.epochs * batches >= small_cfg.min_steps
    assert out.loss_final == pytest.approx(evaluate_loss(student, obs, target), rel=1e-6)
    assert not student.training


def test_fit_is_deterministic_under_a_seed(data, small_cfg):
    obs, target = data
    mean, std = fit_normalizer(obs)
    cfg = replace(small_cfg, epochs=2)

    def run(seed: int) -> dict[str, torch.Tensor]:
        student = build_student(get_preset("mlp_2x64"), IN_DIM, ACT_DIM, mean, std, seed=0)
        fit_student(student, obs, target, cfg, seed=seed, progress=False)
        return student.state_dict()

    a, b, c = run(11), run(11), run(12)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fit_honours_row_weights(data, small_cfg):
    obs, target = data
    mean, std = fit_normalizer(obs)
    half = len(obs) // 2
    noisy = target.copy()
    noisy[half:] = np.random.default_rng(0).uniform(-1, 1, noisy[half:].shape)
    weights = np.r_[np.ones(half), np.zeros(len(obs) - half)]
    student = build_student(get_preset("mlp_2x64"), IN_DIM, ACT_DIM, mean, std, seed=0)
    out = fit_student(student, obs, noisy, small_cfg, seed=0, weights=weights, progress=False)
    clean_err = evaluate_loss(student, obs[:half], target[:half])
    noisy_err = evaluate_loss(student, obs[half:], noisy[half:])
    assert out.loss_final == pytest.approx(clean_err, rel=1e-5)
    assert clean_err < 0.25 * noisy_err


def test_fit_rejects_mismatched_rows(data, small_cfg):
    obs, target = data
    student = MLPStudent(IN_DIM, ACT_DIM, 1, 32)
    with pytest.raises(DistillError, match="rows"):
        fit_student(student, obs, target[:-1], small_cfg, seed=0, progress=False)
    with pytest.raises(DistillError, match=r"\[N, 12\]"):
        fit_student(student, obs[:, :5], target, small_cfg, seed=0, progress=False)
    with pytest.raises(DistillError, match="weights"):
        fit_student(student, obs, target, small_cfg, seed=0, weights=-np.ones(len(obs)), progress=False)
