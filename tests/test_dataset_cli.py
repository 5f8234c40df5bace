"""`distill dataset info / validate` through the real CLI, on real HDF5 files: the report, and a
one-line error, exit 2 and an untouched file for every kind of bad input."""

from __future__ import annotations

import hashlib
import os
import re
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomli_w

from distill.cli import main
from distill.data import SCHEMA_VERSION, DatasetMeta, RolloutWriter
from distill.data.validate import validate_dataset

OBS, GOAL, ACT = 14, 2, 3
STEPS, ENVS, ROUNDS = 50, 40, 3


def rows(k: int, steps: int = STEPS, envs: int = ENVS, dims: int = OBS + GOAL) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(k)
    n = steps * envs
    mean = rng.normal(size=(n, ACT)).astype(np.float32)
    return {
        "obs": rng.normal(size=(n, dims)).astype(np.float32), "goal": rng.normal(size=(n, GOAL)),
        "teacher_action": np.tanh(mean), "teacher_mean": mean, "teacher_log_std": np.full((n, ACT), -2.0),
        "behavior_action": np.tanh(mean), "critic_value": np.zeros(n), "episode": k * envs + np.tile(np.arange(envs), steps),
        "t": np.repeat(np.arange(steps), envs).astype(np.int32), "done": np.zeros(n, bool), "success": np.zeros(n, bool),
    }


LABELLING_WEIGHTS = b"the weights that labelled the rows"
LABELLING_SHA = hashlib.sha256(LABELLING_WEIGHTS).hexdigest()


def make_meta(dims: int) -> DatasetMeta:
    return DatasetMeta(
        env_name="synthetic", teacher_name="t", teacher_sha256=LABELLING_SHA, obs_dim=dims - GOAL, goal_dim=GOAL,
        action_dim=ACT, obs_names=tuple(f"o{i}" for i in range(dims)), goal_names=("gx", "gy"),
        action_names=("a0", "a1", "a2"), control_dt=0.02, lineage={"test": True},
    )


def make_dataset(path: Path, rounds: int = ROUNDS, steps: int = STEPS, dims: int = OBS + GOAL) -> Path:
    with RolloutWriter.create(path, make_meta(dims)) as w:
        for k in range(rounds):
            w.append_round(k, rows(k, steps, dims=dims))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "run" / "rollouts.h5")


def teacher_folder(tmp_path: Path, obs_dim: int, goal_dim: int, action_dim: int,
                   weights: bytes = LABELLING_WEIGHTS) -> Path:
    """A teacher folder whose weights file hashes to what `dataset validate --teacher` compares."""
    folder = tmp_path / f"teacher_{obs_dim}_{goal_dim}_{action_dim}"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(weights)
    sha = hashlib.sha256(weights).hexdigest()
    arch = {"obs_dim": obs_dim, "goal_dim": goal_dim, "action_dim": action_dim, "actor_depth": 4,
            "critic_depth": 4, "width": 32, "repr_dim": 16}
    doc = {"name": folder.name, "env": "synthetic", "arch": arch,
           "weights": {"file": "weights.safetensors", "sha256": sha, "format": "safetensors"}}
    (folder / "teacher.toml").write_text(tomli_w.dumps(doc))
    return folder


def test_info_reports_rows_rounds_episodes_dims_and_lineage(dataset, tmp_path, capsys):
    teacher = teacher_folder(tmp_path, OBS, GOAL, ACT)
    assert main(["dataset", "info", str(dataset), "--teacher", str(teacher)]) == 0
    out = capsys.readouterr().out
    assert "6000 committed" in out
    assert "3: 0: rows 0-2000, 1: rows 2000-4000, 2: rows 4000-6000" in out
    assert "episodes    120" in out
    assert "obs 16 = 14 state + 2 goal, action 3" in out and "o0, o1" in out and "a0, a1, a2" in out
    assert "gzip level 4" in out and "lzf" not in out
    assert '"test": true' in out and "synthetic" in out and f"schema {SCHEMA_VERSION}" in out
    assert f"teacher {teacher.name} dims (16 in, 3 out)" in out and "not the ones" not in out
    assert main(["dataset", "validate", str(dataset)]) == 0
    assert "6000 rows, 3 rounds, 120 episodes; ok" in capsys.readouterr().out


def test_columns_use_only_filters_every_hdf5_tool_has(dataset):
    builtin = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE}
    with h5py.File(dataset, "r") as f:
        for name, ds in f.items():
            plist = ds.id.get_create_plist()
            filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
            assert filters == builtin, name


def test_rows_of_a_crashed_append_are_reported_not_counted(dataset, monkeypatch, capsys):
    def crash(*_args: object) -> None:
        raise RuntimeError("simulated crash before commit")

    monkeypatch.setattr(RolloutWriter, "_commit", crash)
    with pytest.raises(RuntimeError):
        RolloutWriter.open(dataset).append_round(3, rows(3))
    assert main(["dataset", "info", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "6000 committed (8000 stored" in out and "episodes    120" in out


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - size // 3)


def _set(column: str, row: int, value: float):
    def change(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            f[column][row] = value
    return change


def _replace_column(column: str, dtype: str, width_delta: int):
    def change(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            old = f[column]
            shape = (old.shape[0], old.shape[1] + width_delta) if old.ndim == 2 else old.shape
            del f[column]
            f.create_dataset(column, shape=shape, dtype=dtype)
    return change


def _del_attr(name: str):
    def change(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            del f.attrs[name]
    return change


def _set_attr(name: str, value: object):
    def change(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            f.attrs[name] = value
    return change


BAD_INPUTS = {
    "truncated": (_truncate, r"file is truncated \(\d+ of \d+ bytes\)"),
    "wrong dtype": (_replace_column("teacher_action", "float64", 0), r"column 'teacher_action' is float64"),
    "wrong shape": (_replace_column("obs", "float32", 1), r"column 'obs' is float32\[6000, 17\]"),
    "missing attribute": (_del_attr("control_dt"), r"root attribute 'control_dt' is missing"),
    "NaN label": (_set("teacher_mean", 17, np.nan), r"column 'teacher_mean' holds NaN or inf in 1 row\(s\) from row 17"),
    "inf label": (_set("teacher_log_std", 4321, -np.inf), r"column 'teacher_log_std' holds NaN .* from row 4321"),
    "inf obs": (_set("obs", 2500, np.inf), r"column 'obs' holds NaN or inf in 1 row\(s\) from row 2500"),
    "commit marker": (_set_attr("committed_rows", 3000), r"'committed_rows' is 3000 but the committed rounds end at row 2000"),
    "round column": (_set("round", 100, 5), r"column 'round' is 5 at row 100, inside round 0"),
}


@pytest.mark.parametrize("command", ["info", "validate"])
@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_files_give_one_line_naming_file_and_field(dataset, capsys, command, kind):
    damage, message = BAD_INPUTS[kind]
    damage(dataset)
    before = (dataset.read_bytes(), os.stat(dataset).st_mtime_ns)
    assert main(["dataset", command, str(dataset)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and str(dataset) in err, err
    assert re.search(message, err), err
    assert (dataset.read_bytes(), os.stat(dataset).st_mtime_ns) == before


@pytest.mark.parametrize(
    "dims, message",
    [((10, 3, ACT), r"column 'obs' has 16 dims but teacher teacher_10_3_3 reads 13 \(10 state \+ 3 goal\)"),
     ((OBS, GOAL, 8), r"action_dim is 3 but teacher teacher_14_2_8 acts in 8 dims")],
)
def test_teacher_dims_must_match(dataset, tmp_path, capsys, dims, message):
    teacher = teacher_folder(tmp_path, *dims)
    before = (dataset.read_bytes(), os.stat(dataset).st_mtime_ns)
    assert main(["dataset", "validate", str(dataset), "--teacher", str(teacher)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(dataset) in err
    assert re.search(message, err), err
    assert (dataset.read_bytes(), os.stat(dataset).st_mtime_ns) == before
    assert main(["dataset", "validate", str(dataset), "--teacher", str(tmp_path / "nope")]) == 2
    assert "unknown teacher" in capsys.readouterr().err


def test_teacher_with_other_weights_is_noted(dataset, tmp_path, capsys):
    teacher = teacher_folder(tmp_path, OBS, GOAL, ACT, weights=b"other weights")
    assert main(["dataset", "info", str(dataset), "--teacher", str(teacher)]) == 0
    assert "weights are not the ones that labelled these rows" in capsys.readouterr().out


def test_missing_and_foreign_files(tmp_path, capsys):
    assert main(["dataset", "info", str(tmp_path / "none.h5")]) == 2
    assert "none.h5 does not exist" in capsys.readouterr().err
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    assert main(["dataset", "validate", str(plain)]) == 2
    assert "plain.h5 is not a distill rollout dataset" in capsys.readouterr().err


def test_the_scan_stays_within_its_memory_cap(tmp_path):
    """Allocations through Python's allocators (numpy included) while validating a dataset several
    times bigger than the cap."""
    big = make_dataset(tmp_path / "big.h5", rounds=2, steps=400, dims=64)
    validate_dataset(big, max_memory_mb=4.0)  # first use: lazy imports
    assert big.stat().st_size > 2 * 4 * 2**20
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        report = validate_dataset(big, max_memory_mb=4.0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert report.rows == 2 * 400 * ENVS and report.episodes == 2 * ENVS
    assert peak <= 4.0 * 2**20
