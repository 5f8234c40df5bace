"""Collection and labelling split over several devices give the single-device rows.

jax fixes its device count when it starts, so the multi-device side runs in a subprocess
(`tests/_sharded_run.py`) with `--xla_force_host_platform_device_count=2`, or as two processes
joined by `jax.distributed` on localhost, and the single-device side runs here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from distill import labels, sharding
from distill.data import RolloutReader
from distill.errors import DistillError
from distill.students.memory import build_student
from distill.students.presets import get_preset
from distill.teachers import load_teacher

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _sharded_run as worker

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(worker.__file__)


def _env(**extra: str) -> dict[str, str]:
    """This process's environment (same XLA flags, so the same code generation) plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "SLURM_", "OMPI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _two_devices(what: str, out: Path) -> None:
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    done = subprocess.run([sys.executable, str(WORKER), what, str(out)], check=False,
                          env=_env(XLA_FLAGS=flags),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("reacher_8")


def test_labels_split_over_two_devices_match_one(teacher, tmp_path):
    _two_devices("labels", tmp_path / "two.npz")
    two = np.load(tmp_path / "two.npz")
    assert int(two["devices"]) == 2
    obs, action = worker.label_inputs()
    one = labels.label_actor(teacher, obs, chunk=128)
    # Each device multiplies half the chunk's rows: float32 rounding may differ in the last bits.
    np.testing.assert_allclose(two["mean"], one.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(two["log_std"], one.log_std, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(two["action"], one.action, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(two["q"], labels.critic_values(teacher, obs, action, chunk=128), rtol=1e-6, atol=1e-6)


def test_env_count_must_divide_over_devices():
    devices = jax.devices() * 2  # the check comes before any device is used
    with pytest.raises(DistillError, match="envs = 7 does not divide over 2 devices") as exc:
        sharding.env_mesh(7, devices)
    assert "\n" not in str(exc.value)
    assert sharding.env_mesh(8, jax.devices()[:1]) is None


def test_launcher_environment(monkeypatch):
    for var in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "SLURM_STEP_NODELIST", "OMPI_MCA_orte_hnp_uri",
                "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert sharding.launcher_environment() is None and not sharding.initialize_distributed()
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node1")
    assert sharding.launcher_environment() is None  # one task: nothing to join
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert sharding.launcher_environment() == "slurm"
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    assert sharding.launcher_environment() == "jax"
    monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
    with pytest.raises(DistillError, match="JAX_NUM_PROCESSES"):
        sharding.initialize_distributed()


@pytest.mark.slow
def test_collection_split_over_two_devices_matches_one(reacher, teacher, tmp_path):
    from distill.dagger import collect_round

    _two_devices("collect", tmp_path / "two.npz")
    two = np.load(tmp_path / "two.npz")
    student = build_student(get_preset("mlp_2x64"), 13, 2, seed=3)
    for beta, k in worker.ROUNDS:
        one = collect_round(reacher, teacher, student, beta, worker.small_config(), k).columns
        first = one["t"] == 0
        for name, want in one.items():
            got = two[f"{k}/{name}"]
            np.testing.assert_array_equal(got[first], want[first], err_msg=f"round {k} {name}, first step")
            assert_rows_close(got, want, f"round {k} {name}")


def assert_rows_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Identical where nothing is floating point; float columns within float32 rounding grown over
    an episode. The first step is bit-identical; later steps drift by ulps, because XLA:CPU compiles
    MJX's batched reductions for 4 envs per device differently than for 8 (measured on the reacher:
    at most 2e-5 in observations, 1e-4 in labels after 50 steps)."""
    if np.issubdtype(want.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=5e-4, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_write_the_single_device_rows_once(reacher, teacher, tmp_path):
    """Two processes joined by jax.distributed (one device each) run the DAgger loop: process 0
    writes the dataset, process 1 collects its half of every round and writes nothing."""
    from distill.dagger import collect_round

    address = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(
        [sys.executable, str(WORKER), "dagger", str(tmp_path / f"run{i}")],
        env=_env(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=1200)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    assert "process 0: result 2" in outs[0] and "process 1: result none" in outs[1]
    assert not (tmp_path / "run1").exists()
    reader = RolloutReader(tmp_path / "run0" / "rollouts.h5")
    assert reader.committed_rounds == [0, 1]
    student = build_student(get_preset("mlp_2x64"), 13, 2, seed=3)  # unused: the teacher drives
    for k in (0, 1):
        want = collect_round(reacher, teacher, student, 1.0, worker.small_config(), k).columns
        got = reader.read(tuple(want), rounds=[k])
        for name in want:
            assert_rows_close(got[name], want[name], f"round {k} {name}")
