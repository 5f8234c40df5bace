"""Fitting students from HDF5: the bounded-memory stream, the episode split, the streaming
normaliser, losses (mse, kl), early stopping, logs, `fit_round`, and DDP under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import distill
from distill.data import DatasetMeta, RolloutReader, RolloutWriter
from distill.data.split import episode_hash, training_mask, validation_mask
from distill.data.stream import RowStream
from distill.errors import DistillError
from distill.export.onnx_export import export_onnx, onnx_io, ort_session, run_onnx
from distill.students.checkpoint import load_student, read_student_toml, save_student
from distill.students.fit import FitResult, fit_student
from distill.students.fit_cli import fit_dataset
from distill.students.fit_log import CSV_NAME, read_fit_csv, tensorboard_available
from distill.students.jax_mirror import student_apply, student_params_to_jax
from distill.students.losses import kl
from distill.students.memory import build_student
from distill.students.mlp import MLPStudent
from distill.students.normalizer import Moments, fit_normalizer, merge_moments
from distill.students.presets import (
    StudentTrainConfig,
    get_preset,
    load_train_config,
    read_train_overrides,
)
from distill.students.round_fit import fit_round
from distill.students.sources import ArraySource, Batch, HDF5Source

OBS, GOAL, ACT = 14, 2, 3
PRESET = get_preset("mlp_2x64")


def make_meta(input_dim: int = OBS + GOAL) -> DatasetMeta:
    return DatasetMeta(
        env_name="synthetic", teacher_name="t", teacher_sha256="ab" * 32, obs_dim=input_dim - GOAL,
        goal_dim=GOAL, action_dim=ACT, obs_names=tuple(f"o{i}" for i in range(input_dim)),
        goal_names=("gx", "gy"), action_names=("a0", "a1", "a2"), control_dt=0.02, lineage={"test": True},
    )


def teacher_labels(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed smooth teacher: pre-tanh mean and log std as functions of the observation."""
    rng = np.random.default_rng(1234)
    d = obs.shape[1]
    w1 = rng.standard_normal((d, 32)) / np.sqrt(d)
    w2 = rng.standard_normal((32, ACT)) / np.sqrt(8)
    h = np.tanh((obs / 3) @ w1)
    return (h @ w2).astype(np.float32), (-2.0 + h[:, :ACT]).astype(np.float32)


def easy_teacher_labels(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A teacher a small student matches closely, so its mean error stays well below the teacher's
    std and a KL fit must recover the std itself."""
    z = (obs - np.linspace(-2, 3, obs.shape[1])) / np.linspace(0.5, 4, obs.shape[1])
    return (0.5 * z[:, :ACT]).astype(np.float32), (-1.5 + 0.5 * np.tanh(z[:, ACT : 2 * ACT])).astype(np.float32)


def round_columns(
    k: int, steps: int, envs: int, input_dim: int, first_row: int, labels=teacher_labels
) -> dict[str, np.ndarray]:
    """Time-major rows of `envs` episodes (ids unique per round and env); `critic_value` holds the
    row's index in the file so tests can tell rows apart."""
    rng = np.random.default_rng(k)
    n = steps * envs
    obs = (rng.standard_normal((n, input_dim)) * np.linspace(0.5, 4, input_dim)
           + np.linspace(-2, 3, input_dim)).astype(np.float32)
    mean, log_std = labels(obs)
    env = np.tile(np.arange(envs), steps)
    return {
        "obs": obs, "goal": obs[:, -GOAL:], "teacher_action": np.tanh(mean), "teacher_mean": mean,
        "teacher_log_std": log_std, "behavior_action": np.tanh(mean),
        "critic_value": np.arange(first_row, first_row + n, dtype=np.float32),
        "episode": (k * envs + env).astype(np.int64), "t": np.repeat(np.arange(steps), envs).astype(np.int32),
        "done": np.zeros(n, bool), "success": np.zeros(n, bool),
    }


def write_dataset(
    path: Path, rounds: list[tuple[int, int]], input_dim: int = OBS + GOAL, labels=teacher_labels
) -> Path:
    """One round per (steps, envs)."""
    row = 0
    with RolloutWriter.create(path, make_meta(input_dim)) as w:
        for k, (steps, envs) in enumerate(rounds):
            row = w.append_round(k, round_columns(k, steps, envs, input_dim, row, labels))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """6,000 rows in 3 rounds of 40 episodes."""
    return write_dataset(tmp_path_factory.mktemp("fit") / "rollouts.h5", [(50, 40)] * 3)


@pytest.fixture(scope="module")
def cfg() -> StudentTrainConfig:
    return replace(load_train_config(), epochs=8, batch_size=128, lr=3e-3, min_steps=0, patience=0)


def row_ids(batches) -> np.ndarray:
    return np.concatenate([b["critic_value"] for b in batches]).astype(np.int64)


# ---------------------------------------------------------------- the episode split


def test_validation_split_is_a_fixed_function_of_the_episode_id():
    ids = np.arange(20_000, dtype=np.int64) * 1_000_003 + 7
    held = validation_mask(ids, 0.1)
    assert 0.09 < held.mean() < 0.11
    perm = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_array_equal(validation_mask(ids[perm], 0.1), held[perm])
    np.testing.assert_array_equal(training_mask(ids, 0.1), ~held)
    assert not validation_mask(ids, 0.0).any()
    assert np.all(validation_mask(ids, 0.1) <= validation_mask(ids, 0.3))
    assert episode_hash(np.array([5]))[0] == episode_hash(np.array([5, 6]))[0] != episode_hash(np.array([6]))[0]
    for bad in (1.0, -0.1, True):
        with pytest.raises(DistillError, match="val_fraction"):
            validation_mask(ids, bad)


# ---------------------------------------------------------------- the stream


def test_stream_yields_every_row_once_per_epoch_in_a_seeded_order(dataset):
    stream = RowStream(dataset, ("obs", "critic_value"), batch_size=100, max_memory_mb=1.3)
    assert stream.plan.block_rows < 6000 and stream.num_blocks > stream.plan.buffer_blocks
    table = RolloutReader(dataset).read(["obs"])["obs"]
    orders = []
    for epoch in (0, 0, 1):
        batches = list(stream.batches(epoch, seed=3))
        assert [len(b["obs"]) for b in batches] == [100] * 60
        ids = row_ids(batches)
        np.testing.assert_array_equal(np.sort(ids), np.arange(6000))
        for b in batches[:5]:
            np.testing.assert_array_equal(b["obs"], table[b["critic_value"].astype(np.int64)])
        orders.append(ids)
    assert np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], orders[2])
    # rows mix across blocks: a batch draws from more than one block
    assert len(np.unique(row_ids(batches[:1]) // stream.plan.block_rows)) > 1
    assert len(list(stream.batches(0, seed=3, steps=7))) == 7
    last = list(RowStream(dataset, ("critic_value",), batch_size=128, max_memory_mb=2).batches(0, seed=0))
    assert len(last[-1]["critic_value"]) == 6000 % 128


def test_stream_rounds_filter_and_shards(dataset):
    only_1 = row_ids(RowStream(dataset, ("critic_value",), batch_size=64, max_memory_mb=2, rounds=[1]).batches(0, 0))
    np.testing.assert_array_equal(np.sort(only_1), np.arange(2000, 4000))
    episode = RolloutReader(dataset).read(["episode"])["episode"]
    keep = lambda ep: training_mask(ep, 0.25)
    shards = [RowStream(dataset, ("critic_value",), batch_size=64, max_memory_mb=2, row_filter=keep,
                        rank=r, world_size=3) for r in range(3)]
    seen = [row_ids(s.batches(0, seed=1)) for s in shards]
    assert all(len(ids) == s.rows for ids, s in zip(seen, shards))
    assert [s.rank_rows(r) for r, s in enumerate(shards)] == [shards[0].rank_rows(r) for r in range(3)]
    everything = np.concatenate(seen)
    assert len(np.unique(everything)) == len(everything)  # disjoint
    np.testing.assert_array_equal(np.sort(everything), np.flatnonzero(training_mask(episode, 0.25)))
    blocks = np.concatenate([b["critic_value"].copy() for b in shards[1].blocks()]).astype(np.int64)
    np.testing.assert_array_equal(np.sort(blocks), np.sort(seen[1]))
    with pytest.raises(DistillError, match="rank 3 of world_size 3"):
        RowStream(dataset, ("obs",), batch_size=8, max_memory_mb=2, rank=3, world_size=3)


def test_stream_refuses_a_cap_below_its_needs(dataset):
    with pytest.raises(DistillError, match=r"max_memory_mb = 0.01 is too small .* at least \d+"):
        RowStream(dataset, ("obs", "teacher_action"), batch_size=128, max_memory_mb=0.01)


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory) -> Path:
    """25,600 rows of 64-dim observations: 6.8 MB of obs and teacher_action, against caps of 4 MB."""
    return write_dataset(tmp_path_factory.mktemp("big") / "rollouts.h5", [(200, 64)] * 2, input_dim=64)


CAP_MB = 4.0


def peak_allocated(run) -> int:
    """Peak bytes allocated through Python's allocators (numpy's data included) while `run` runs,
    above what was allocated when it started."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_stream_holds_less_than_its_cap(big_dataset):
    data_bytes = 25_600 * (64 + ACT) * 4
    assert data_bytes > CAP_MB * 2**20
    stream = RowStream(big_dataset, ("obs", "teacher_action"), batch_size=128, max_memory_mb=CAP_MB,
                       row_filter=lambda ep: training_mask(ep, 0.1))
    plan = stream.plan
    assert plan.total_bytes <= CAP_MB * 2**20 and plan.buffer_blocks * plan.block_rows < stream.rows

    def consume():
        held = []
        for batch in stream.batches(0, seed=0):
            held = [batch]  # the consumer keeps the newest batch while the next one is made
        for block in stream.blocks():
            held = [block]
        assert held

    assert peak_allocated(consume) <= plan.array_bytes <= CAP_MB * 2**20 - plan.hdf5_bytes


# ---------------------------------------------------------------- normaliser


def test_streaming_normaliser_equals_the_in_memory_one(dataset):
    data = RolloutReader(dataset).read(["obs", "episode"])
    train_obs = data["obs"][training_mask(data["episode"], 0.2)]
    want_mean, want_std = fit_normalizer(train_obs)
    for world in (1, 3):
        sources = [HDF5Source(dataset, "mse", 120, val_fraction=0.2, max_memory_mb=1.5, rank=r, world_size=world)
                   for r in range(world)]
        mean, std = merge_moments(s.moments() for s in sources).normalizer()
        np.testing.assert_allclose(mean, want_mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std, want_std, rtol=1e-6)
    shifted = train_obs.astype(np.float64) + 1e6  # large offsets: the merge must not cancel
    np.testing.assert_allclose(np.sqrt(Moments.of(shifted).m2 / len(shifted)), train_obs.std(0), rtol=1e-6)


# ---------------------------------------------------------------- fitting from HDF5


def test_fit_streams_a_dataset_larger_than_its_memory_cap(big_dataset, dataset, tmp_path):
    """The whole fit's allocations through Python's allocators (numpy arrays included; torch
    tensors and HDF5's C buffers are not seen) stay under the cap, on a dataset bigger than it."""
    cfg = replace(load_train_config(), epochs=3, batch_size=128, lr=3e-3, min_steps=0, patience=0,
                  val_fraction=0.1, max_memory_mb=CAP_MB)
    assert big_dataset.stat().st_size > CAP_MB * 2**20
    # first use imports parts of torch (optimiser, autograd) lazily: not the fit's memory
    fit_round(dataset, PRESET, replace(cfg, epochs=1), OBS + GOAL, ACT, seed=0, log_dir=None, progress=False)
    out: dict[str, object] = {}

    def run():
        out["fit"] = fit_round(big_dataset, PRESET, cfg, 64, ACT, seed=0, log_dir=tmp_path / "logs", progress=False)

    peak = peak_allocated(run)
    student, result = out["fit"]
    source = HDF5Source(big_dataset, "mse", 128, val_fraction=0.1, max_memory_mb=CAP_MB)
    assert source.train.plan.total_bytes <= CAP_MB * 2**20
    assert peak <= CAP_MB * 2**20
    assert result.rows == source.rows and result.val_rows == source.val_rows > 0
    assert result.rows + result.val_rows == 25_600
    assert result.loss_final < 0.2 * result.loss_start and result.val_loss_final < 0.2 * result.val_loss_start
    assert result.epochs == 3 and result.steps == 3 * -(-result.rows // 128) and result.samples == 3 * result.rows
    assert not student.training and not student.has_log_std_head


def test_fit_round_fits_the_normaliser_on_training_rows(dataset, cfg, tmp_path):
    student, result = fit_round(dataset, PRESET, replace(cfg, epochs=1, val_fraction=0.3), OBS + GOAL, ACT,
                                seed=0, log_dir=None, progress=False)
    data = RolloutReader(dataset).read(["obs", "episode"])
    mean, std = fit_normalizer(data["obs"][training_mask(data["episode"], 0.3)])
    np.testing.assert_allclose(student.obs_mean.numpy(), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(student.obs_std.numpy(), std, rtol=1e-6)
    assert result.log_dir is None
    with pytest.raises(DistillError, match="obs has 16 dims and actions 3, expected 12 and 3"):
        fit_round(dataset, PRESET, cfg, 12, ACT, seed=0, log_dir=None, progress=False)


def test_fit_is_deterministic_under_a_seed(dataset, cfg):
    def run(seed: int) -> dict[str, torch.Tensor]:
        student, _ = fit_round(dataset, PRESET, replace(cfg, epochs=2), OBS + GOAL, ACT, seed, None, progress=False)
        return student.state_dict()

    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def flipped_validation_dataset(path: Path) -> Path:
    """Validation episodes carry the opposite labels: the better a student fits the training
    split, the worse it does on validation, so early stopping must trigger."""
    rounds = []
    with RolloutWriter.create(path, make_meta()) as w:
        for k in range(2):
            cols = round_columns(k, 50, 40, OBS + GOAL, 2000 * k)
            held = validation_mask(cols["episode"], 0.3)
            for name in ("teacher_action", "teacher_mean"):
                cols[name][held] *= -1
            w.append_round(k, cols)
            rounds.append(cols)
    return path


def test_early_stopping_keeps_the_best_weights_and_logs_every_epoch(tmp_path, cfg):
    path = flipped_validation_dataset(tmp_path / "flip.h5")
    train_cfg = replace(cfg, epochs=40, val_fraction=0.3, patience=3, lr=1e-3)
    student, result = fit_round(path, PRESET, train_cfg, OBS + GOAL, ACT, seed=0, log_dir=tmp_path / "logs",
                                progress=False)
    vals = [r.val_loss for r in result.history]
    assert result.stopped_early and result.epochs == result.best_epoch + 3 < 40
    assert result.val_loss_final == min(vals) == vals[result.best_epoch - 1]
    source = HDF5Source(path, "mse", 128, val_fraction=0.3, max_memory_mb=64)
    again = fit_student(student, source, cfg=replace(train_cfg, epochs=1, lr=1e-12), progress=False)
    assert again.val_loss_start == pytest.approx(result.val_loss_final, rel=1e-6)
    assert read_fit_csv(tmp_path / "logs" / CSV_NAME) == list(result.history)
    assert [r.epoch for r in result.history] == list(range(1, result.epochs + 1))
    events = list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert bool(events) == tensorboard_available() == result.tensorboard
    # min_steps outranks patience: no stop before that many steps
    _, long = fit_round(path, PRESET, replace(train_cfg, min_steps=600), OBS + GOAL, ACT, seed=0, log_dir=None,
                        progress=False)
    assert long.steps >= 600 and long.epochs > result.epochs


# ---------------------------------------------------------------- the kl loss and the log-std head


def test_kl_matches_torch_and_the_squashed_distributions():
    g = torch.Generator().manual_seed(0)
    mu_t, mu_s = torch.randn(4, ACT, generator=g), torch.randn(4, ACT, generator=g)
    ls_t, ls_s = -1 - torch.rand(4, ACT, generator=g), -0.5 - torch.rand(4, ACT, generator=g)
    batch = Batch(torch.zeros(4, 1), {"teacher_mean": mu_t, "teacher_log_std": ls_t})
    ours = kl((mu_s, ls_s), batch)
    normal = torch.distributions.Normal
    want = torch.distributions.kl_divergence(normal(mu_t, ls_t.exp()), normal(mu_s, ls_s.exp())).sum(-1)
    torch.testing.assert_close(ours, want)
    # tanh is a bijection: the KL between the squashed distributions (Monte Carlo) is the same
    teacher = normal(mu_t[0].double(), ls_t[0].exp().double())
    squash = [torch.distributions.transforms.TanhTransform()]
    p = torch.distributions.TransformedDistribution(teacher, squash)
    q = torch.distributions.TransformedDistribution(normal(mu_s[0].double(), ls_s[0].exp().double()), squash)
    x = p.sample((200_000,)).clamp(-1 + 1e-12, 1 - 1e-12)
    mc = (p.log_prob(x) - q.log_prob(x)).sum(-1).mean()
    assert float(mc) == pytest.approx(float(ours[0]), rel=0.05)


def test_kl_fit_learns_the_teachers_distribution_and_deploys_tanh_mean(tmp_path, cfg):
    easy = write_dataset(tmp_path / "easy.h5", [(50, 40)] * 2, labels=easy_teacher_labels)
    student, result = fit_round(easy, PRESET, replace(cfg, loss="kl", epochs=10), OBS + GOAL, ACT, seed=0,
                                log_dir=None, progress=False)
    assert student.has_log_std_head and result.loss == "kl"
    assert result.loss_final < 0.01 * result.loss_start
    data = RolloutReader(easy).read(["obs", "teacher_mean", "teacher_log_std", "teacher_action"])
    obs = torch.from_numpy(data["obs"][:1000])
    with torch.no_grad():
        mean, log_std = student.distribution(obs)
        np.testing.assert_allclose(student(obs).numpy(), torch.tanh(mean).numpy(), atol=1e-6)
    assert np.abs(mean.numpy() - data["teacher_mean"][:1000]).mean() < 0.05
    assert np.abs(log_std.numpy() - data["teacher_log_std"][:1000]).mean() < 0.1
    # the head is saved in the arch, and the deployed function stays tanh(mean)
    save_student(student, tmp_path / "s")
    assert read_student_toml(tmp_path / "s")["arch"]["log_std_head"] is True
    loaded = load_student(tmp_path / "s")
    assert loaded.has_log_std_head
    np.testing.assert_array_equal(loaded.act_numpy(obs.numpy()), student.act_numpy(obs.numpy()))
    bare = MLPStudent(OBS + GOAL, ACT, PRESET.depth, PRESET.width)
    assert student.num_params() == bare.num_params()
    exported = export_onnx(student, tmp_path / "s.onnx")
    import onnx

    model = onnx.load(str(exported.path))
    assert onnx_io(model)["outputs"] == {"action": [1, ACT]}
    sizes = {tuple(t.dims) for t in model.graph.initializer}
    assert sum(int(np.prod(s)) for s in sizes) <= bare.num_params() + 2 * (OBS + GOAL)
    np.testing.assert_allclose(run_onnx(ort_session(exported.path), obs.numpy()[:20]),
                               student.act_numpy(obs.numpy()[:20]), atol=1e-5)
    mirrored = np.asarray(student_apply(student_params_to_jax(student), jnp.asarray(obs.numpy())))
    np.testing.assert_allclose(mirrored, student.act_numpy(obs.numpy()), atol=1e-5)
    assert jax.tree_util.tree_structure(student_params_to_jax(student)) == jax.tree_util.tree_structure(
        student_params_to_jax(bare))


def test_kl_needs_the_head_and_the_columns(dataset, cfg):
    student = build_student(PRESET, OBS + GOAL, ACT)
    with pytest.raises(DistillError, match="log-std head"):
        fit_student(student, dataset, cfg=replace(cfg, loss="kl"), progress=False)
    obs = RolloutReader(dataset).read(["obs"])["obs"]
    headed = build_student(PRESET, OBS + GOAL, ACT, log_std_head=True)
    with pytest.raises(DistillError, match="needs teacher_mean, teacher_log_std"):
        fit_student(headed, obs, np.zeros((len(obs), ACT)), cfg=replace(cfg, loss="kl"), progress=False)


# ---------------------------------------------------------------- in-memory sources, results, config


def test_array_source_splits_by_episode_like_the_stream(dataset, cfg):
    data = RolloutReader(dataset).read(["obs", "teacher_action", "episode"])
    arrays = ArraySource(data["obs"], data["teacher_action"], episode=data["episode"], val_fraction=0.2)
    streamed = HDF5Source(dataset, "mse", 128, val_fraction=0.2, max_memory_mb=2)
    assert (arrays.rows, arrays.val_rows) == (streamed.rows, streamed.val_rows) and arrays.val_rows > 0
    student = build_student(PRESET, OBS + GOAL, ACT, *fit_normalizer(data["obs"]))
    result = fit_student(student, arrays, cfg=replace(cfg, epochs=2), progress=False)
    assert isinstance(result, FitResult) and result.val_rows == arrays.val_rows and result.val_loss_final
    with pytest.raises(FrozenInstanceError):
        result.loss_final = 0.0


@pytest.mark.parametrize(
    "table, match",
    [
        ('loss = "huber"', r"loss = 'huber'; expected one of mse, kl"),
        ("val_fraction = 1.0", r"val_fraction = 1.0; expected a number in \[0, 1\)"),
        ("patience = -1", r"patience = -1"),
        ("max_memory_mb = 0", r"max_memory_mb = 0; expected a positive number"),
        ("batch = 3", "unknown keys"),
    ],
)
def test_bad_train_fields_name_file_and_field(tmp_path, table, match):
    path = tmp_path / "train.toml"
    path.write_text(f"[train]\n{table}\n")
    with pytest.raises(DistillError, match=match) as err:
        read_train_overrides(path, load_train_config())
    assert str(path) in str(err.value)


def test_train_overrides_and_presets_file_documents_the_new_fields(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('[train]\nloss = "kl"\nval_fraction = 0.2\npatience = 2\nmax_memory_mb = 64\n')
    cfg = read_train_overrides(path, load_train_config("mlp_4x512"))
    assert (cfg.loss, cfg.val_fraction, cfg.patience, cfg.max_memory_mb, cfg.lr) == ("kl", 0.2, 2, 64.0, 5e-4)
    shipped = load_train_config()
    assert (shipped.loss, shipped.val_fraction, shipped.patience) == ("mse", 0.1, 5)
    text = (Path(distill.__file__).parents[1] / "students" / "presets.toml").read_text()
    assert all(f"\n{key} =" in text for key in ("loss", "val_fraction", "patience", "max_memory_mb"))


# ---------------------------------------------------------------- distill fit, DDP


def test_fit_command_saves_student_and_logs(dataset, tmp_path, capsys):
    from distill.cli import main

    cfg_path = tmp_path / "train.toml"
    cfg_path.write_text("[train]\nepochs = 2\nbatch_size = 128\nmin_steps = 0\n")
    assert main(["fit", "--dataset", str(dataset), "--preset", "mlp_2x64", "--out", str(tmp_path / "s"),
                 "--train-config", str(cfg_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "training rows" in out and "samples/s" in out and "fit.csv" in out
    student = load_student(tmp_path / "s")
    meta = read_student_toml(tmp_path / "s")["meta"]
    assert meta["preset"] == "mlp_2x64" and meta["rows"] + meta["val_rows"] == 6000 and meta["world_size"] == 1
    result = json.loads((tmp_path / "s" / "logs" / "fit.json").read_text())
    assert result["epochs"] == 2 and result["loss_final"] == pytest.approx(meta["loss_final"])
    assert student.input_dim == OBS + GOAL and len(read_fit_csv(tmp_path / "s" / "logs" / CSV_NAME)) == 2
    assert main(["fit", "--dataset", str(tmp_path / "none.h5"), "--out", str(tmp_path / "x")]) == 2
    assert "none.h5 does not exist" in capsys.readouterr().err


DDP_EPOCHS = 8


def test_ddp_with_two_ranks_matches_one_process(dataset, tmp_path):
    """torchrun, 2 CPU ranks (gloo), batch 128 over both ranks (64 each) against one process with
    batch 128, same seed. Tolerance: 25% of the single-process loss — fits of this setup that
    differ only in their seed land within ±15% of each other, and DDP differs from one process
    only in the order of rows and in dropping, each epoch, the rows past the smaller shard's last
    full batch."""
    cfg_path = tmp_path / "train.toml"
    cfg_path.write_text(f"[train]\nepochs = {DDP_EPOCHS}\nbatch_size = 128\nlr = 3e-3\nmin_steps = 0\npatience = 0\n")
    root = Path(distill.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "distill.cli", "fit", "--dataset", str(dataset), "--preset", "mlp_2x64",
           "--out", str(tmp_path / "ddp"), "--train-config", str(cfg_path), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "logs" / "fit.json").read_text())
    single = fit_dataset(dataset, "mlp_2x64", tmp_path / "one", seed=0, train_config=cfg_path, progress=False)
    assert ddp["world_size"] == 2 and single.world_size == 1
    assert ddp["rows"] == single.rows and ddp["val_rows"] == single.val_rows
    assert ddp["steps"] < single.steps and ddp["samples"] == ddp["steps"] * 128
    assert abs(ddp["loss_final"] - single.loss_final) <= 0.25 * single.loss_final
    assert ddp["loss_final"] < 0.05 * ddp["loss_start"]
    obs = RolloutReader(dataset).read(["obs"])["obs"][:1000]
    gap = np.abs(load_student(tmp_path / "ddp").act_numpy(obs) - load_student(tmp_path / "one").act_numpy(obs))
    assert gap.mean() < 0.05


@pytest.mark.slow
def test_fit_throughput_at_one_and_two_ranks(dataset):
    from distill.students.throughput import fit_throughput

    one, two = (fit_throughput(dataset, r, preset="mlp_2x64", batch_size=128, epochs=2) for r in (1, 2))
    assert (one.ranks, two.ranks) == (1, 2) and one.samples == 2 * 6000
    assert two.samples == two.steps * 128 and 0 < 6000 - two.samples / 2 < 2 * 128
    assert one.samples_per_second > 0 and two.samples_per_second > 0
    with pytest.raises(DistillError, match=r"fitting with 2 rank\(s\) failed .* batch_size 127 is not divisible"):
        fit_throughput(dataset, 2, preset="mlp_2x64", batch_size=127, epochs=1)
