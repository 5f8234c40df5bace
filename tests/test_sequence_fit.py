"""Fitting students with memory from HDF5: whole episodes streamed in bounded memory and sharded by
episode, history windows built as at run time, truncated BPTT that starts every episode from a zero
state, and students with memory learning what a memoryless one cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import distill
from distill.data import DatasetMeta, RolloutReader, RolloutWriter
from distill.data.episodes import EpisodeStream, read_sequences
from distill.data.split import training_mask, validation_mask
from distill.errors import DistillError
from distill.students.checkpoint import load_student
from distill.students.fit_cli import fit_dataset
from distill.students.history import HistoryLayout
from distill.students.memory import act_sequence
from distill.students.presets import StudentPreset, load_train_config
from distill.students.round_fit import fit_round
from distill.students.sequences import HistorySource, SequenceSource

DIM, ACT, STEPS, LAG = 3, 1, 40, 3
HISTORY = StudentPreset("hist4_1x64", 1, 64, family="history", history=4)
GRU = StudentPreset("gru32_1x64", 1, 64, family="gru", hidden=32, layers=1)
MLP = StudentPreset("mlp_1x64", 1, 64)


def lagged_round(k: int, envs: int, steps: int = STEPS, dim: int = DIM) -> dict[str, np.ndarray]:
    """Time-major rows (row = t * envs + env) of episodes whose label is the first observation dim
    LAG steps ago (0 before that): a teacher only a student with memory can imitate."""
    rng = np.random.default_rng(k)
    obs = rng.uniform(-1, 1, size=(steps, envs, dim)).astype(np.float32)
    label = np.zeros((steps, envs, ACT), np.float32)
    label[LAG:, :, 0] = 0.9 * obs[:-LAG, :, 0]
    flat = lambda x: x.reshape(steps * envs, *x.shape[2:])
    n = steps * envs
    episode = (k * envs + np.arange(envs)).astype(np.int64)
    return {
        "obs": flat(obs), "goal": np.zeros((n, 1), np.float32), "teacher_action": flat(label),
        "teacher_mean": np.arctanh(flat(label)), "teacher_log_std": np.full((n, ACT), -1.0, np.float32),
        "behavior_action": flat(label), "critic_value": np.arange(n, dtype=np.float32) + 100_000 * k,
        "episode": np.tile(episode, steps), "t": np.repeat(np.arange(steps), envs).astype(np.int32),
        "done": np.repeat(np.arange(steps) == steps - 1, envs), "success": np.zeros(n, bool),
    }


def write_lagged(path: Path, rounds: int, envs: int, dim: int = DIM) -> Path:
    meta = DatasetMeta(env_name="synthetic", teacher_name="t", teacher_sha256="cd" * 32, obs_dim=dim - 1, goal_dim=1,
                       action_dim=ACT, obs_names=tuple(f"o{i}" for i in range(dim)), goal_names=("g",),
                       action_names=("u",), control_dt=0.02, lineage={"test": True})
    with RolloutWriter.create(path, meta) as w:
        for k in range(rounds):
            w.append_round(k, lagged_round(k, envs, dim=dim))
    return path


def peak_allocated(run) -> int:
    """Peak bytes allocated through Python's allocators (numpy's data included) while `run` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def lagged(tmp_path_factory) -> Path:
    """3 rounds of 32 episodes of 40 steps: 3,840 rows."""
    return write_lagged(tmp_path_factory.mktemp("lag") / "rollouts.h5", 3, 32)


@pytest.fixture(scope="module")
def cfg():
    return replace(load_train_config(), epochs=12, batch_size=80, lr=3e-3, min_steps=0, patience=0, bptt=10,
                   val_fraction=0.2)


# ---------------------------------------------------------------- the episode stream
def test_episodes_come_whole_in_step_order_once_per_pass(lagged):
    data = RolloutReader(lagged).read(["obs", "episode", "t", "critic_value"])
    keep = lambda ids: training_mask(ids, 0.25)
    seen = set()
    for rank in range(2):
        stream = EpisodeStream(lagged, ("obs", "critic_value", "t", "episode"), max_memory_mb=8, episode_filter=keep,
                               rank=rank, world_size=2, consumer_row_bytes=20_000)
        assert len(stream.chunks) > 2  # the consumer's bytes force several chunks
        for chunk, columns in stream.iterate(stream.chunk_order(epoch=3, seed=1)):
            for start, length in zip(chunk.starts, chunk.lengths):
                ep = columns["episode"][start : start + length]
                assert len(set(ep)) == 1 and ep[0] not in seen and keep(ep[:1])[0]
                seen.add(ep[0])
                np.testing.assert_array_equal(columns["t"][start : start + length], np.arange(length))
                rows = columns["critic_value"][start : start + length]
                file_rows = np.flatnonzero(np.isin(data["critic_value"], rows))
                np.testing.assert_array_equal(columns["obs"][start : start + length],
                                              data["obs"][file_rows][np.argsort(data["t"][file_rows])])
    assert seen == set(np.unique(data["episode"][keep(data["episode"])]))  # disjoint shards, together all


def test_stream_refuses_a_cap_that_cannot_hold_an_episode(lagged):
    with pytest.raises(DistillError, match="too small to hold whole episodes of up to 40 rows.*raise it to at least"):
        EpisodeStream(lagged, ("obs", "teacher_action"), max_memory_mb=0.5, consumer_row_bytes=1 << 16)


def test_read_sequences_marks_each_episodes_first_row(lagged):
    obs, starts = read_sequences(lagged, rounds=[1], max_rows=100)
    assert obs.shape == (100, DIM) and starts.tolist() == [True] + [False] * 39 + [True] + [False] * 39 + [True] \
        + [False] * 19
    np.testing.assert_array_equal(obs[:40], lagged_round(1, 32)["obs"].reshape(STEPS, 32, DIM)[:, 0])


# ---------------------------------------------------------------- sources
def test_history_rows_are_the_windows_a_runner_would_stack(lagged):
    layout = HistoryLayout(4, (2, 1))
    source = HistorySource(lagged, "mse", 256, layout, max_memory_mb=8)
    (batch,) = [b for _, b in zip(range(1), source.eval_batches("train"))]
    obs, _ = read_sequences(lagged, max_rows=STEPS)  # the first episode in file order
    np.testing.assert_array_equal(batch.obs[:STEPS].numpy(), layout.stack_sequence(obs, np.eye(1, STEPS, 0)[0]))
    assert source.input_dim == 12 and source.rows == 3 * 32 * STEPS


def test_gru_windows_start_every_episode_from_its_first_step(lagged):
    source = SequenceSource(lagged, "mse", bptt=15, sequences=8, max_memory_mb=8)
    windows = list(source.train_windows(epoch=0, seed=0))
    firsts = [w.first for w in windows]
    assert firsts == [True, False, False] * 12  # 96 episodes in groups of 8; 40 steps in windows of 15
    assert [w.obs.shape[1] for w in windows[:3]] == [15, 15, 10] and windows[0].obs.shape[0] == 8
    assert all(w.mask.all() for w in windows) and source.steps_per_epoch() == len(windows)
    firsts_of_episodes = np.concatenate([lagged_round(k, 32)["obs"].reshape(STEPS, 32, DIM)[0] for k in range(3)])
    for w in windows[::3]:  # a group's first window begins at t = 0 of each of its episodes
        assert all((firsts_of_episodes == row).all(1).any() for row in w.obs[:, 0].numpy())


# ---------------------------------------------------------------- fitting
@pytest.fixture(scope="module")
def fits(lagged, cfg, tmp_path_factory):
    out = {}
    for preset in (MLP, HISTORY, GRU):
        out[preset.family] = fit_round(lagged, preset, cfg, DIM, ACT, seed=0, progress=False,
                                       log_dir=tmp_path_factory.mktemp(preset.family))
    return out


def test_memory_students_learn_what_the_memoryless_one_cannot(fits):
    mlp, history, gru = (fits[f][1] for f in ("mlp", "history", "gru"))
    # the label is a lagged observation: no function of the current one predicts it (variance ~0.27/3)
    assert mlp.val_loss_final > 0.05
    assert history.val_loss_final < 0.2 * mlp.val_loss_final
    assert gru.val_loss_final < 0.2 * mlp.val_loss_final
    assert gru.rows + gru.val_rows == 3840 and gru.epochs == 12 and gru.steps > 0


def test_fitted_gru_acts_on_sequences_as_it_was_fitted(fits, lagged):
    student = fits["gru"][0]
    obs, starts = read_sequences(lagged, rounds=[2], max_rows=2 * STEPS)
    label = np.zeros((2 * STEPS,), np.float32)
    for e in range(2):
        label[e * STEPS + LAG : (e + 1) * STEPS] = 0.9 * obs[e * STEPS : (e + 1) * STEPS - LAG, 0]
    err = np.abs(act_sequence(student, obs, starts)[:, 0] - label)
    assert err.mean() < 0.1
    assert not student.training


def test_bptt_fit_streams_under_its_memory_cap(tmp_path, cfg):
    """A dataset bigger than the cap: the fit's numpy allocations (what tracemalloc sees) stay under it."""
    big = write_lagged(tmp_path / "big.h5", 2, 256, dim=64)  # 20,480 rows of 64 + 1 floats: 5.3 MB
    cap = 4.0
    assert 20_480 * 65 * 4 > cap * 2**20
    tight = replace(cfg, epochs=1, max_memory_mb=cap)
    fit_round(big, GRU, replace(tight, epochs=1), 64, ACT, seed=0, log_dir=None, progress=False)  # lazy imports
    source = SequenceSource(big, "mse", tight.bptt, tight.batch_size // tight.bptt, max_memory_mb=cap,
                            val_fraction=tight.val_fraction)
    assert len(source.train.chunks) > 1 and source.train.plan.total_bytes <= cap * 2**20
    out = {}
    peak = peak_allocated(lambda: out.update(fit=fit_round(big, GRU, tight, 64, ACT, seed=0, log_dir=None,
                                                           progress=False)))
    assert peak <= cap * 2**20
    assert out["fit"][1].loss_final < out["fit"][1].loss_start


def test_validation_episodes_are_held_out_whole(lagged):
    source = SequenceSource(lagged, "mse", bptt=10, sequences=4, val_fraction=0.3, max_memory_mb=8)
    train_ids = set(source.train.episode_ids)
    val_ids = set(source.val.episode_ids)
    assert not train_ids & val_ids and train_ids | val_ids == set(range(96))
    assert val_ids == {i for i in range(96) if validation_mask(np.array([i]), 0.3)[0]}
    assert source.val_rows == STEPS * len(val_ids)


def test_fit_command_fits_a_gru_student(lagged, tmp_path):
    cfg_path = tmp_path / "train.toml"
    cfg_path.write_text("[train]\nepochs = 2\nmin_steps = 0\nbptt = 10\n")
    result = fit_dataset(lagged, "gru64_2x128", tmp_path / "s", train_config=cfg_path, progress=False)
    student = load_student(tmp_path / "s")
    assert student.family == "gru" and student.hidden == 64 and result.epochs == 2
    assert isinstance(student.initial_state(), torch.Tensor)


def test_ddp_gru_fit_with_two_ranks_steps_in_lockstep(lagged, tmp_path):
    """torchrun, 2 CPU ranks (gloo): each rank takes whole episodes of its shard; the fit matches one
    process closely enough (the ranks' windows differ only in which episodes share a group)."""
    cfg_path = tmp_path / "train.toml"
    cfg_path.write_text("[train]\nepochs = 6\nbatch_size = 160\nlr = 3e-3\nmin_steps = 0\npatience = 0\nbptt = 10\n")
    root = Path(distill.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "distill.cli",
           "fit", "--dataset", str(lagged), "--preset", "gru64_2x128", "--out", str(tmp_path / "ddp"),
           "--train-config", str(cfg_path), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "logs" / "fit.json").read_text())
    single = fit_dataset(lagged, "gru64_2x128", tmp_path / "one", train_config=cfg_path, progress=False)
    assert ddp["world_size"] == 2 and ddp["rows"] == single.rows
    assert ddp["loss_final"] < 0.5 * ddp["loss_start"]
    assert abs(ddp["loss_final"] - single.loss_final) <= 0.5 * single.loss_final + 0.005
