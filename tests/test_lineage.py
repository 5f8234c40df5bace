"""Lineage that tells the truth, and a teacher checked before it labels anything.

Every artifact of a run names the weights that labelled it: the weights file's sha256 (hashed here,
independently of what teacher.toml says), or `random-init:<seed>` when the weights were random.
A teacher that does far worse than its teacher.toml records (the symptom of running it in another
env or physics) stops `distill run` before a row is collected.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import jax
import numpy as np
import onnx
import pytest
from conftest import SMALL_ENVS, TINY_PRESETS, TINY_ROUNDS, tiny_distill

from distill.cli import main
from distill.data import RolloutReader
from distill.data.validate import validate_dataset
from distill.report import RunReport
from distill.teachers import checkpoint, networks
from distill.teachers.manifest import read_manifest

REPO = Path(__file__).resolve().parent.parent


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _root(tmp_path_factory, name: str, rounds: int = TINY_ROUNDS) -> Path:
    """A DISTILL_ROOT with the tiny presets, targets, reacher_8 and tiny.toml of `rounds` DAgger rounds."""
    root = tmp_path_factory.mktemp(name)
    (root / "students").mkdir()
    (root / "students" / "presets.toml").write_text(TINY_PRESETS)
    shutil.copytree(REPO / "benchmarks" / "targets", root / "benchmarks" / "targets")
    shutil.copytree(REPO / "teachers" / "reacher_8", root / "teachers" / "reacher_8")
    (root / "tiny.toml").write_text(tiny_distill(rounds))
    return root


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
    """`distill run --random-init` of the reacher teacher, one tiny round (every artifact, no refit)."""
    root = _root(tmp_path_factory, "random_init_root", rounds=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_ROOT", str(root))
        code = main(["run", "--teacher", "reacher_8", "--run", "rand", "--random-init",
                     "--config", str(root / "tiny.toml")])
    assert code == 0
    return root


def test_random_init_run_names_random_weights_everywhere(random_run):
    trained = _file_sha256(random_run / "teachers" / "reacher_8" / "weights.safetensors")
    identity = "random-init:0"
    meta = RolloutReader(random_run / "datasets" / "rand" / "rollouts.h5").meta
    report = RunReport.load(random_run / "students" / "rand")
    onnx_meta = {p.key: p.value for p in onnx.load(random_run / "students" / "rand" / "teacher_actor.onnx").metadata_props}
    for where, value in (("dataset", meta.teacher_sha256), ("report", report.teacher.weights_sha256),
                         ("teacher ONNX", onnx_meta["distill.teacher_sha256"])):
        assert value == identity, where
        assert value != trained, f"{where} names weights that never labelled anything"
    check = validate_dataset(random_run / "datasets" / "rand" / "rollouts.h5", teacher="reacher_8").teacher
    assert check is not None and not check.labelled_this_dataset


def test_a_real_run_names_the_weights_file(tiny_run):
    weights = REPO / "teachers" / "reacher_8" / "weights.safetensors"
    sha = _file_sha256(weights)
    dataset = tiny_run.root / "datasets" / "tiny" / "rollouts.h5"
    assert RolloutReader(dataset).meta.teacher_sha256 == sha
    assert RunReport.load(tiny_run.folder).teacher.weights_sha256 == sha
    onnx_meta = {p.key: p.value for p in onnx.load(tiny_run.folder / "teacher_actor.onnx").metadata_props}
    assert onnx_meta["distill.teacher_sha256"] == sha
    check = validate_dataset(dataset, teacher=str(REPO / "teachers" / "reacher_8")).teacher
    assert check is not None and check.labelled_this_dataset


def test_validate_hashes_the_weights_file_not_the_toml(tiny_run, tmp_path):
    """A teacher folder whose toml still names the right sha256 but whose weights were swapped."""
    fake = tmp_path / "reacher_swapped"
    shutil.copytree(REPO / "teachers" / "reacher_8", fake)
    blob = bytearray((fake / "weights.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (fake / "weights.safetensors").write_bytes(bytes(blob))
    check = validate_dataset(tiny_run.root / "datasets" / "tiny" / "rollouts.h5", teacher=str(fake)).teacher
    assert check is not None and not check.labelled_this_dataset


@pytest.fixture(scope="module")
def untrained_with_a_trained_record(tmp_path_factory):
    """reacher_8's teacher.toml (its recorded success) over random weights: a teacher that will do
    far worse here than its record, as one run in the wrong physics does."""
    root = _root(tmp_path_factory, "mismatch_root")
    manifest = read_manifest(REPO / "teachers" / "reacher_8")
    k_a, k_c = jax.random.split(jax.random.PRNGKey(3))
    doc = checkpoint.read_toml(REPO / "teachers" / "reacher_8")
    checkpoint.save_teacher(
        root / "teachers" / "untrained", name="untrained", env=manifest.env, arch=manifest.arch,
        actor=jax.device_get(networks.init_actor(k_a, manifest.arch)),
        critic=jax.device_get(networks.init_critic(k_c, manifest.arch)),
        provenance={"source": "test"}, metrics=doc["metrics"],
    )
    return root


def test_teacher_far_below_its_record_stops_before_collecting(untrained_with_a_trained_record, capsys):
    root = untrained_with_a_trained_record
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_ROOT", str(root))
        code = main(["run", "--teacher", "untrained", "--run", "stopped", "--config", str(root / "tiny.toml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "its teacher.toml records" in err and "--force" in err and "distill env compare" in err
    assert len([line for line in err.splitlines() if line.startswith("distill: error")]) == 1
    assert not (root / "datasets" / "stopped").exists(), "nothing may be collected"


def test_recorded_teacher_passes_its_own_check():
    from distill.dagger import evaluate_teacher, teacher_mismatch
    from distill.envs import make_env
    from distill.teachers import load_teacher

    teacher = load_teacher("reacher_8")
    env = make_env("reacher")
    measured = evaluate_teacher(env, teacher, jax.random.PRNGKey(10_000), 2 * SMALL_ENVS, batch=SMALL_ENVS)
    assert teacher.manifest.metrics is not None
    assert teacher_mismatch(teacher, env, measured) is None
    far = measured.__class__(**{**measured.as_dict(), "success": 0.0, "time_at_goal": 0.0})
    assert "records" in teacher_mismatch(teacher, env, far)
    assert np.isfinite(measured.mean_distance)
