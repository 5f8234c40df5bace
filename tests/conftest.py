"""Shared fixtures. MJX compiles are slow on CPU, so envs and jit'd functions are built once per
session and reused; tests use the same small env counts so compiled shapes match."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# Tests run tiny batches, so compile time dominates: trade XLA's expensive backend passes for
# ~20% faster compiles, and let identical programs compiled by different tests hit a disk cache.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")

SMALL_ENVS = 8


@pytest.fixture(scope="session")
def reacher():
    from distill.envs import make_env

    return make_env("reacher")


@pytest.fixture(scope="session")
def reacher_steps(reacher):
    """vmap'd, jit'd reset and step of the reacher, compiled once for the whole session."""
    import jax

    return jax.jit(jax.vmap(reacher.reset)), jax.jit(jax.vmap(reacher.step))


TINY_PRESETS = """default = "mlp_2x256"
[train]
epochs = 2
min_steps = 200
[presets.mlp_2x256]
depth = 2
width = 256
"""
TINY_DISTILL = "[distill]\nrounds = 1\nenvs = 32\neval_episodes = 64\n"
"""Shapes tests/test_dagger.py compiles too (32 envs collecting, 64 evaluation episodes)."""


@dataclass(frozen=True)
class FinishedRun:
    root: Path
    """DISTILL_ROOT the run wrote under."""
    folder: Path
    """students/<run>: report, student, ONNX files, run.log."""
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> FinishedRun:
    """One `distill run` of the shipped reacher teacher through the real CLI, shared by the CLI
    tests: one round, a fast-fitting student preset, in a temporary DISTILL_ROOT."""
    import contextlib
    import io
    import shutil

    from distill.cli import main

    repo = Path(__file__).resolve().parent.parent
    root = tmp_path_factory.mktemp("tiny_run_root")
    (root / "students").mkdir()
    (root / "students" / "presets.toml").write_text(TINY_PRESETS)
    shutil.copytree(repo / "benchmarks" / "targets", root / "benchmarks" / "targets")
    config = root / "tiny.toml"
    config.write_text(TINY_DISTILL)
    argv = ("run", "--teacher", str(repo / "teachers" / "reacher_8"), "--run", "tiny", "--config", str(config))
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setenv("DISTILL_ROOT", str(root))
        code = main(list(argv))
    return FinishedRun(root, root / "students" / "tiny", argv, code, out.getvalue(), err.getvalue())
