"""Goal-conditioned environments, built by name and physics backend.

The table maps each name to the module and factory that builds it; modules import lazily so that
building the reacher never pays for the humanoid's model. The paper's tasks (`PAPER_TASKS`) run on
Brax's pipelines, `spring` by default (how scaling-crl trains them) or `mjx` (its MJX branch); our
MuJoCo-native envs (reacher, point mazes, Go2) run on MJX directly (backend "mjx").
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from functools import cache

from distill.envs.base import ActionSemantics, EnvSpec, EnvState, GoalEnv, MjxGoalEnv
from distill.errors import DistillError

ENV_FACTORIES: dict[str, tuple[str, str]] = {
    "reacher": ("distill.envs.reacher", "Reacher"),
    "reacher_egocentric": ("distill.envs.reacher", "make_reacher_egocentric"),
    "ant": ("distill.envs.ant", "make_ant"),
    "ant_u_maze": ("distill.envs.ant", "make_ant_u_maze"),
    "ant_big_maze": ("distill.envs.ant", "make_ant_big_maze"),
    "ant_hardest_maze": ("distill.envs.ant", "make_ant_hardest_maze"),
    "humanoid": ("distill.envs.humanoid", "make_humanoid"),
    "humanoid_u_maze": ("distill.envs.humanoid", "make_humanoid_u_maze"),
    "humanoid_big_maze": ("distill.envs.humanoid", "make_humanoid_big_maze"),
    "humanoid_hardest_maze": ("distill.envs.humanoid", "make_humanoid_hardest_maze"),
    "go2": ("distill.envs.go2", "make_go2"),
    "go2_obstacles": ("distill.envs.go2", "make_go2_obstacles"),
    "point_u_maze": ("distill.envs.point_maze", "make_point_u_maze"),
    "point_u_maze_blind": ("distill.envs.point_maze", "make_point_u_maze_blind"),
    "point_medium_maze": ("distill.envs.point_maze", "make_point_medium_maze"),
    "point_large_maze": ("distill.envs.point_maze", "make_point_large_maze"),
}


PAPER_TASKS = ("ant", "ant_u_maze", "ant_big_maze", "ant_hardest_maze",
               "humanoid", "humanoid_u_maze", "humanoid_big_maze", "humanoid_hardest_maze")
"""scaling-crl's tasks, defined as it defines them, on Brax's pipelines."""
BRAX_BACKENDS = ("spring", "mjx")
NATIVE_BACKEND = "mjx"


def backends(name: str) -> tuple[str, ...]:
    """The physics backends an env runs on; the first is its default."""
    return BRAX_BACKENDS if name in PAPER_TASKS else (NATIVE_BACKEND,)


def default_backend(name: str) -> str:
    return backends(name)[0]


def check_backend(name: str, backend: str | None) -> str:
    """The backend to build `name` on (its default for None); a one-line error if it has none."""
    if name not in ENV_FACTORIES:
        raise DistillError(f"unknown env {name!r}; known envs: {', '.join(ENV_FACTORIES)}")
    if backend is None:
        return default_backend(name)
    if backend not in backends(name):
        raise DistillError(
            f"env {name!r} has no backend {backend!r}: it runs on {', '.join(backends(name))}"
        )
    return backend


def make_env(name: str, backend: str | None = None) -> GoalEnv:
    """One shared instance per (name, backend): envs are stateless, and sharing lets jit caches
    be reused. `backend` None: the env's default (spring for the paper's tasks)."""
    return _make_env(name, check_backend(name, backend))


@cache
def _make_env(name: str, backend: str) -> GoalEnv:
    module_name, factory = ENV_FACTORIES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise DistillError(f"env {name!r} is not implemented yet ({module_name} is missing)") from None
        raise
    build = getattr(module, factory)
    return build(backend=backend) if name in PAPER_TASKS else build()


@cache
def with_episode_length(env: GoalEnv, episode_length: int) -> GoalEnv:
    """The same env with episodes of `episode_length` steps (0: unchanged); one shared copy per
    length, so jit caches are reused. For quick runs of slow teachers: success figures then
    describe the shortened episodes."""
    if episode_length < 0:
        raise DistillError(f"episode_length {episode_length}: must be >= 0 (0 keeps the env's own)")
    if episode_length in (0, env.spec.episode_length):
        return env
    short = copy.copy(env)
    short.spec = dataclasses.replace(env.spec, episode_length=episode_length)
    return short


__all__ = ["BRAX_BACKENDS", "ENV_FACTORIES", "PAPER_TASKS", "ActionSemantics", "EnvSpec", "EnvState",
           "GoalEnv", "MjxGoalEnv", "backends", "check_backend", "default_backend", "make_env",
           "with_episode_length"]
