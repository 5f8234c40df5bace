"""Shared fixtures. MJX compiles are slow on CPU, so envs and jit'd functions are built once per
session and reused; tests use the same small env counts so compiled shapes match."""

from __future__ import annotations

import os
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
