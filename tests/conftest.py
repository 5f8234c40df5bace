"""Shared fixtures. MJX compiles are slow on CPU, so envs and jit'd functions are built once per
session and reused; tests use the same small env counts so compiled shapes match."""

from __future__ import annotations

import pytest

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
