"""Shared fixtures. An MJX step compiles in 20-30 s on a CPU, once per (env, batch size), so every
reacher test steps SMALL_ENVS envs at a time through the same compiled functions the library uses
(`rollouts.batched_reset` / `batched_step`), and one `distill run` (`tiny_run`) serves every test
of the end-to-end path: the CLI's, DAgger's, resuming, export and evaluation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# Tests run tiny batches, so compile time dominates: trade XLA's expensive backend passes for
# ~20% faster compiles, and let identical programs compiled by different tests hit a disk cache.
# `make test` runs one xdist worker per core, so each worker's XLA and PyTorch run on one thread: their
# thread pools would otherwise contend for the other worker's core (a fresh-clone suite measured 12%
# faster, with 17% less CPU time, than with the default pools).
ONE_WORKER_PER_CORE = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if ONE_WORKER_PER_CORE:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
                      + (" --xla_cpu_multi_thread_eigen=false" if ONE_WORKER_PER_CORE else ""))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")

SMALL_ENVS = 32
"""Envs per batch in every reacher test: collection, evaluation (64 episodes are two batches),
held-out states and the env tests share one compiled step."""


TINY_RUN_FILES = frozenset({"tests/test_cli.py", "tests/test_dagger.py", "tests/test_lineage.py"})
"""The test files that use the session's `tiny_run`: `make test` runs them in one worker, so that run
(the suite's most expensive fixture) happens once, not once in each worker."""


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's: the suite also runs without it
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` (make test), with TINY_RUN_FILES as one work unit: every other file is its
    own unit, so its module fixtures compile once."""
    from xdist.scheduler import LoadFileScheduling

    class SharedRunScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return "tiny_run" if file in TINY_RUN_FILES else file

    return SharedRunScheduling(config, log) if config.getvalue("dist") == "loadfile" else None


def pytest_collection_modifyitems(config, items):
    """Keeps TINY_RUN_FILES true: a file that starts using `tiny_run` must join the set."""
    root = config.rootpath
    missing = {item.path.relative_to(root).as_posix() for item in items
               if "tiny_run" in getattr(item, "fixturenames", ())} - TINY_RUN_FILES
    if missing:
        raise pytest.UsageError(f"{', '.join(sorted(missing))} use(s) tiny_run: add to TINY_RUN_FILES in tests/conftest.py")


@pytest.fixture(scope="session")
def reacher():
    from distill.envs import make_env

    return make_env("reacher")


@pytest.fixture(scope="session")
def reacher_steps(reacher):
    """The reacher's batched reset and step, compiled once per session for SMALL_ENVS envs (the
    library's own cached functions, so DAgger and evaluation reuse the compile)."""
    from distill.rollouts import batched_reset, batched_step

    return batched_reset(reacher), batched_step(reacher)


@pytest.fixture
def project_elsewhere(tmp_path, monkeypatch) -> Path:
    """A project root outside the checkout (as $DISTILL_ROOT) that sees the shipped teachers and
    presets: CLI runs that stop early still open students/RUN/run.log, which must not land in the
    checkout (where a user's own run of that name may live)."""
    repo = Path(__file__).resolve().parent.parent
    root = tmp_path / "project"
    (root / "students").mkdir(parents=True)
    (root / "teachers").symlink_to(repo / "teachers")
    (root / "students" / "presets.toml").write_text((repo / "students" / "presets.toml").read_text())
    monkeypatch.setenv("DISTILL_ROOT", str(root))
    return root


TINY_PRESETS = """default = "mlp_2x256"
[train]
epochs = 2
min_steps = 600
[presets.mlp_2x256]
depth = 2
width = 256
"""
TINY_ROUNDS = 2


def tiny_distill(rounds: int = TINY_ROUNDS) -> str:
    """The tiny runs' [distill] table: `rounds` rounds of 32 envs (1,600 rows each), two evaluation
    batches; round 0 fits 600 steps from scratch, later rounds continue it for 400 (the default
    warm refit)."""
    return f"""[distill]
rounds = {rounds}
envs = {SMALL_ENVS}
eval_episodes = {2 * SMALL_ENVS}
heldout_envs = {SMALL_ENVS}
heldout_rows = 512
refit_steps = 400
"""


TINY_DISTILL = tiny_distill()
"""tiny_run's: two rounds."""


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

    @property
    def dataset(self) -> Path:
        return self.root / "datasets" / "tiny" / "rollouts.h5"

    @property
    def config(self):
        """The run's [distill] config."""
        from distill.pipeline import load_dagger_config

        return load_dagger_config(self.root / "tiny.toml")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> FinishedRun:
    """One `distill run` of the shipped reacher teacher through the real CLI, shared by the CLI and
    DAgger tests: two rounds, a fast-fitting student preset, in a temporary DISTILL_ROOT."""
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
