"""The HDF5 rollout dataset: round trips, the commit protocol under crashes, and refusals."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from distill.data import COLUMNS, SCHEMA_VERSION, DatasetMeta, RolloutReader, RolloutWriter

SYMMETRIC_COLUMNS = tuple(c for c in COLUMNS if not c.optional)
from distill.data.schema import COMMITTED_ROUNDS, COMMITTED_ROWS
from distill.errors import DistillError

OBS, GOAL, ACT = 4, 2, 3


@pytest.fixture
def meta() -> DatasetMeta:
    return DatasetMeta(
        env_name="reacher",
        teacher_name="reacher_d4",
        teacher_sha256="ab" * 32,
        obs_dim=OBS,
        goal_dim=GOAL,
        action_dim=ACT,
        obs_names=("q0", "q1", "v0", "v1", "gx", "gy"),
        goal_names=("gx", "gy"),
        action_names=("a0", "a1", "a2"),
        control_dt=0.02,
        env_config={"episode_length": 50, "radius": 0.05, "noise": [0.1, 0.2]},
        lineage={"run": "test", "beta": {"schedule": "linear"}, "student": "mlp_2x64"},
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "rollouts.h5"


def make_round(n: int, seed: int, first_episode: int = 0) -> dict[str, np.ndarray]:
    """Random rows with every column; `episode` is unique per row so rows can be told apart."""
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.normal(size=(n, OBS + GOAL)),
        "goal": rng.normal(size=(n, GOAL)).astype(np.float32),
        "teacher_action": np.tanh(rng.normal(size=(n, ACT))),
        "teacher_mean": rng.normal(size=(n, ACT)),
        "teacher_log_std": rng.uniform(-5, -1.5, size=(n, ACT)),
        "behavior_action": rng.uniform(-1, 1, size=(n, ACT)),
        "critic_value": -rng.uniform(0, 3, size=n),
        "episode": np.arange(first_episode, first_episode + n),
        "t": rng.integers(0, 50, size=n, dtype=np.int32),
        "done": rng.random(n) < 0.1,
        "success": rng.random(n) < 0.5,
    }


def expected(*rounds: tuple[int, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = {
        c.name: np.concatenate([cols[c.name] for _, cols in rounds]).astype(c.dtype)
        for c in SYMMETRIC_COLUMNS
        if c.name != "round"
    }
    out["round"] = np.concatenate([np.full(len(cols["obs"]), k, np.int32) for k, cols in rounds])
    return out


def raw_rows(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return f["obs"].shape[0]


def crash_commit(*_args: object) -> None:
    raise RuntimeError("simulated crash before commit")


def test_round_trip_every_column_and_attribute(meta, path):
    r0, r1 = make_round(37, 0), make_round(21, 1, first_episode=37)
    with RolloutWriter.create(path, meta) as w:
        assert w.append_round(0, r0) == 37
        assert w.append_round(1, r1) == 58
    reader = RolloutReader(path)
    assert dataclasses.asdict(reader.meta) == dataclasses.asdict(meta)
    assert (
        reader.meta.env_config["noise"] == [0.1, 0.2]
        and reader.meta.schema_version == SCHEMA_VERSION
    )
    assert reader.committed_rows == len(reader) == 58 and reader.committed_rounds == [0, 1]
    data, want = reader.read(), expected((0, r0), (1, r1))
    assert set(data) == {c.name for c in SYMMETRIC_COLUMNS}
    for c in SYMMETRIC_COLUMNS:
        assert data[c.name].dtype == c.dtype and data[c.name].shape == (58, *c.shape(meta.dims))
        np.testing.assert_array_equal(data[c.name], want[c.name], err_msg=c.name)
    only1 = reader.read(["obs", "round"], rounds=[1])
    np.testing.assert_array_equal(only1["obs"], want["obs"][37:])
    assert set(only1["round"]) == {1}
    swapped = reader.read(["episode"], rounds=[1, 0])["episode"]
    np.testing.assert_array_equal(swapped, np.r_[want["episode"][37:], want["episode"][:37]])
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "distill.rollouts" and f.attrs[COMMITTED_ROWS] == 58
        for c in SYMMETRIC_COLUMNS:
            ds = f[c.name]
            assert ds.compression == "lzf" and ds.chunks is not None and ds.maxshape[0] is None


def test_meta_from_env_spec_and_name_checks(meta):
    from distill.envs.reacher import SPEC

    m = DatasetMeta.from_env_spec(SPEC, teacher_name="t", teacher_sha256="00")
    assert m.goal_names == ("goal_x", "goal_y", "goal_z") and len(m.obs_names) == SPEC.input_dim
    assert DatasetMeta.from_attrs(m.to_attrs(), "x") == m
    with pytest.raises(DistillError, match="obs_names has 5 names, expected 6"):
        dataclasses.replace(meta, obs_names=meta.obs_names[:5])
    with pytest.raises(DistillError, match="lineage is not JSON-serialisable"):
        dataclasses.replace(meta, lineage={"f": object()})


def test_create_reopens_same_meta_and_refuses_other(meta, path):
    RolloutWriter.create(path, meta).append_round(0, make_round(10, 0))
    later = dataclasses.replace(meta, created="2030-01-01T00:00:00+00:00")
    w = RolloutWriter.create(path, later)
    assert w.committed_rows == 10 and w.append_round(1, make_round(5, 1)) == 15
    with pytest.raises(DistillError, match="teacher_sha256, lineage") as err:
        RolloutWriter.create(path, dataclasses.replace(meta, teacher_sha256="cd" * 32, lineage={}))
    assert str(path) in str(err.value)
    assert RolloutReader(path).committed_rows == 15


def test_uncommitted_rows_invisible_then_overwritten(meta, path, monkeypatch):
    r0 = make_round(20, 0)
    w = RolloutWriter.create(path, meta)
    w.append_round(0, r0)
    with monkeypatch.context() as m:
        m.setattr(RolloutWriter, "_commit", crash_commit)
        with pytest.raises(RuntimeError, match="simulated crash"):
            w.append_round(1, make_round(30, 1))
    assert raw_rows(path) == 50, (
        "the crashed round's rows must be in the file for this test to mean anything"
    )
    reader = RolloutReader(path)
    assert reader.committed_rows == 20 and reader.committed_rounds == [0]
    np.testing.assert_array_equal(reader.read(["obs"])["obs"], expected((0, r0))["obs"])
    r1 = make_round(7, 2, first_episode=20)
    assert w.append_round(1, r1) == 27
    assert raw_rows(path) == 27
    data, want = RolloutReader(path).read(), expected((0, r0), (1, r1))
    for name in want:
        np.testing.assert_array_equal(data[name], want[name], err_msg=name)


def test_round_listed_past_marker_does_not_count(meta, path):
    """A crash between writing `committed_rounds` and moving the marker."""
    w = RolloutWriter.create(path, meta)
    w.append_round(0, make_round(10, 0))
    with h5py.File(path, "r+") as f:
        f.attrs[COMMITTED_ROUNDS] = "[[0, 10], [1, 25]]"
    assert RolloutReader(path).committed_rounds == [0]
    assert w.append_round(1, make_round(4, 1)) == 14
    assert RolloutReader(path).committed_rounds == [0, 1]


KILLED_WRITER = textwrap.dedent("""
    import os, sys
    import numpy as np
    from distill.data import RolloutWriter
    path, rows = sys.argv[1], dict(np.load(sys.argv[2]))
    RolloutWriter._commit = lambda *a: os._exit(17)
    RolloutWriter.open(path).append_round(1, rows)
    sys.exit(0)
""")


def test_killed_writer_subprocess(meta, path, tmp_path):
    r0, doomed = make_round(25, 0), make_round(40, 1, first_episode=25)
    RolloutWriter.create(path, meta).append_round(0, r0)
    np.savez(tmp_path / "doomed.npz", **doomed)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path), str(tmp_path / "doomed.npz")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 17, proc.stderr
    assert raw_rows(path) == 65
    reader = RolloutReader(path)
    assert reader.committed_rows == 25 and reader.committed_rounds == [0]
    np.testing.assert_array_equal(reader.read(["episode"])["episode"], np.arange(25))
    r1 = make_round(9, 2, first_episode=25)
    w = RolloutWriter.open(path, expect_meta=meta)
    assert w.committed_rounds == [0] and w.append_round(1, r1) == 34
    data, want = RolloutReader(path).read(), expected((0, r0), (1, r1))
    for name in want:
        np.testing.assert_array_equal(data[name], want[name], err_msg=name)


def test_double_append_of_committed_round_refused(meta, path):
    RolloutWriter.create(path, meta).append_round(0, make_round(10, 0))
    resumed = RolloutWriter.open(path, expect_meta=meta)
    with pytest.raises(
        DistillError, match="round 0 is already committed; .* continue from round 1"
    ):
        resumed.append_round(0, make_round(10, 1))
    assert resumed.committed_rows == 10 and raw_rows(path) == 10
    assert resumed.append_round(1, make_round(3, 2)) == 13


@pytest.mark.parametrize(
    "field,value",
    [
        ("teacher_sha256", "cd" * 32),
        ("env_name", "ant"),
        ("action_dim", 8),
    ],
)
def test_reopen_with_mismatched_meta_refused(meta, path, field, value):
    RolloutWriter.create(path, meta)
    other = dataclasses.replace(
        meta, **{field: value}, action_names=("a",) * (value if field == "action_dim" else ACT)
    )
    with pytest.raises(DistillError) as err:
        RolloutWriter.open(path, expect_meta=other)
    msg = str(err.value)
    assert f": {field} is " in msg and str(path) in msg and "\n" not in msg


def test_reopen_allows_new_lineage(meta, path):
    RolloutWriter.create(path, meta)
    assert RolloutWriter.open(
        path, expect_meta=dataclasses.replace(meta, lineage={"resumed": True})
    )


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c.pop("teacher_log_std"), "missing column(s) 'teacher_log_std'"),
        (
            lambda c: c.update(goal=np.zeros((10, GOAL + 1))),
            "column 'goal' has shape (10, 3), expected (N, 2)",
        ),
        (
            lambda c: c.update(critic_value=np.zeros((10, 1))),
            "column 'critic_value' has shape (10, 1), expected (N, )",
        ),
        (lambda c: c.update(done=np.zeros(10)), "column 'done' has dtype float64, expected bool"),
        (lambda c: c.update(t=np.zeros(10)), "column 't' has dtype float64, expected int32"),
        (lambda c: c.update(success=np.zeros(9, bool)), "different row counts"),
        (lambda c: c.update(reward=np.zeros(10)), "unknown column(s) 'reward'"),
        (lambda c: c.update(round=np.full(10, 3)), "column 'round' holds values other than 0"),
    ],
)
def test_bad_columns_refused_naming_the_column(meta, path, change, message):
    w = RolloutWriter.create(path, meta)
    cols = make_round(10, 0)
    change(cols)
    with pytest.raises(DistillError) as err:
        w.append_round(0, cols)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert w.committed_rows == 0 and raw_rows(path) == 0


def test_files_that_are_not_datasets_refused(meta, path, tmp_path):
    with pytest.raises(DistillError, match="does not exist"):
        RolloutReader(tmp_path / "nope.h5")
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DistillError, match="not a readable HDF5 file"):
        RolloutReader(text)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DistillError, match="plain.h5 is not a distill rollout dataset"):
        RolloutReader(plain)
    RolloutWriter.create(path, meta).append_round(0, make_round(5, 0))
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    for opener in (RolloutReader, RolloutWriter.open):
        with pytest.raises(
            DistillError, match=f"schema version {SCHEMA_VERSION + 1}, .* reads version"
        ):
            opener(path)


def test_torch_batches_cover_committed_rows_once(meta, path, monkeypatch):
    w = RolloutWriter.create(path, meta)
    w.append_round(0, make_round(37, 0))
    w.append_round(1, make_round(50, 1, first_episode=37))
    with monkeypatch.context() as m:
        m.setattr(RolloutWriter, "_commit", crash_commit)
        with pytest.raises(RuntimeError):
            w.append_round(2, make_round(13, 2, first_episode=87))
    reader = RolloutReader(path)
    table = reader.read()
    cols = ("obs", "teacher_action", "episode", "done")
    orders = []
    for seed in (0, 0, 1):
        batches = list(reader.iter_batches(16, cols, shuffle=True, seed=seed))
        assert [len(b["obs"]) for b in batches] == [16] * 5 + [7]
        for b in batches:
            assert b["obs"].dtype == torch.float32 and b["obs"].shape[1:] == (OBS + GOAL,)
            assert b["teacher_action"].shape[1:] == (ACT,) and b["done"].dtype == torch.bool
            np.testing.assert_array_equal(b["obs"].numpy(), table["obs"][b["episode"].numpy()])
        seen = torch.cat([b["episode"] for b in batches]).numpy()
        np.testing.assert_array_equal(np.sort(seen), np.arange(87))
        orders.append(seen)
    assert np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], orders[2])
    plain = torch.cat([b["episode"] for b in reader.iter_batches(40, ["episode"], shuffle=False)])
    np.testing.assert_array_equal(plain.numpy(), np.arange(87))
    assert sum(len(b["obs"]) for b in reader.iter_batches(16, drop_last=True)) == 80

    ds = reader.torch_dataset()
    assert len(ds) == 87
    obs, action = ds[5]
    assert obs.dtype == torch.float32 and obs.shape == (OBS + GOAL,) and action.shape == (ACT,)
    np.testing.assert_array_equal(obs.numpy(), table["obs"][5])
    assert len(reader.torch_dataset(["obs"], rounds=[1])) == 50
